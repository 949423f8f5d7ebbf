"""PipelineConfig: plain-language validation, safety limits, YAML round-trip, migration."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stablenew.pipeline.config import (
    ConfigInvalid,
    DocumentError,
    PipelineConfig,
    StageName,
    validate_config,
)


def test_defaults_are_a_runnable_txt2img_only_pipeline():
    config = PipelineConfig()
    assert config.enabled_stages() == (StageName.txt2img,)


def test_stage_order_is_fixed_whatever_is_enabled():
    config = PipelineConfig.model_validate(
        {"upscale": {"enabled": True}, "img2img": {"enabled": True}, "adetailer": {"enabled": True}})
    assert [s.value for s in config.enabled_stages()] == ["txt2img", "img2img", "adetailer", "upscale"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"txt2img": {"steps": 0}}, "Steps must be between 1 and 150"),
        ({"txt2img": {"cfg_scale": 99}}, "CFG scale must be between 1 and 30"),
        ({"img2img": {"denoise": 1.5}}, "Denoise must be between 0 and 1"),
        ({"txt2img": {"steps": "many"}}, "Steps must be a whole number"),
        ({"txt2img": {"width": 513}}, "Width"),
        ({"adetailer": {"passes": []}}, "Detector passes"),
    ],
)
def test_validation_messages_name_the_field_in_plain_words(data, expected):
    with pytest.raises(ConfigInvalid) as info:
        validate_config(data)
    assert expected in str(info.value)


def test_output_pixel_limit_is_refused_with_the_limit_named():
    data = {"txt2img": {"width": 2048, "height": 2048, "hires": {"enabled": True, "scale": 2}},
            "upscale": {"enabled": True, "scale": 2}}
    with pytest.raises(ConfigInvalid) as info:
        validate_config(data)
    assert "Largest output" in str(info.value) and "64 MP" in str(info.value)


def test_upscale_factor_limit_is_refused_with_the_limit_named():
    data = {"txt2img": {"hires": {"enabled": True, "scale": 4}}, "upscale": {"enabled": True, "scale": 4},
            "limits": {"max_output_pixels": 10**9}}
    with pytest.raises(ConfigInvalid) as info:
        validate_config(data)
    assert "16×" in str(info.value) and "8×" in str(info.value)


def test_final_size_follows_hires_and_upscale():
    config = PipelineConfig.model_validate({
        "txt2img": {"width": 832, "height": 1216, "hires": {"enabled": True, "scale": 1.5}},
        "upscale": {"enabled": True, "scale": 2}})
    assert config.final_size(832, 1216) == (2496, 3648)


def test_yaml_errors_name_line_and_field():
    with pytest.raises(DocumentError) as info:
        PipelineConfig.from_yaml("txt2img:\n  prompt: a cat\n  steps: 500\n", path="cat.yaml")
    assert info.value.line == 3 and info.value.field == "txt2img.steps"


def test_newer_format_is_refused_with_advice():
    with pytest.raises(DocumentError, match="newer StableNew"):
        PipelineConfig.from_yaml("version: 99\n")


def test_v0_flat_config_migrates():
    config = PipelineConfig.from_yaml("prompt: a cat\nsteps: 33\ncfg: 5\n")
    assert (config.txt2img.prompt, config.txt2img.steps, config.txt2img.cfg_scale) == ("a cat", 33, 5)


def test_with_changes_and_layering_validate():
    base = PipelineConfig()
    assert base.with_changes({"txt2img.steps": 30}).txt2img.steps == 30
    assert base.layered({"upscale": {"enabled": True}}).upscale.enabled
    with pytest.raises(ValueError):
        base.with_changes({"txt2img.steps": 0})


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=60, deadline=None)
@given(
    prompt=_text, negative=_text, steps=st.integers(1, 150), cfg=st.floats(1, 30),
    seed=st.integers(-1, 2**32 - 1), hires=st.booleans(), up=st.booleans(),
    width=st.sampled_from([512, 768, 1024]),
)
def test_yaml_round_trip_keeps_every_value(prompt, negative, steps, cfg, seed, hires, up, width):
    config = PipelineConfig.model_validate({
        "txt2img": {"prompt": prompt, "negative_prompt": negative, "steps": steps, "cfg_scale": cfg,
                    "seed": seed, "width": width, "hires": {"enabled": hires}},
        "upscale": {"enabled": up}})
    assert PipelineConfig.from_yaml(config.to_yaml()) == config
    assert PipelineConfig.from_yaml(config.to_yaml(only_changes=True)) == config
