"""Property tests: any valid preset or pack survives a save and a load unchanged."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.presets import Preset, parse_preset
from stablenew.randomizer.packs import NEGATIVE_PREFIX, PackPrompt, PromptPack, parse_text_pack

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text as users type it, including the characters YAML and line splitting get wrong.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)

changes = st.fixed_dictionaries({}, optional={
    "txt2img.prompt": text,
    "txt2img.negative_prompt": text,
    "txt2img.steps": st.integers(1, 150),
    "txt2img.cfg_scale": st.floats(1, 30, allow_nan=False),
    "txt2img.width": st.integers(8, 256).map(lambda n: n * 8),
    "txt2img.sampler": st.sampled_from(["Euler a", "DPM++ 2M", "UniPC", "my custom sampler"]),
    "txt2img.hires.enabled": st.booleans(),
    "txt2img.hires.denoise": st.floats(0, 1, allow_nan=False),
    "img2img.resize_mode": st.sampled_from(["just_resize", "crop_and_resize"]),
    "adetailer.enabled": st.booleans(),
    "upscale.scale": st.floats(0.5, 2, allow_nan=False),
})


@FAST
@given(changes=changes, name=text.filter(lambda t: t.strip() and t.isprintable()),
       tags=st.lists(text, max_size=3), description=text)
def test_any_preset_round_trips(changes, name, tags, description):
    config = PipelineConfig().with_changes(changes)
    preset = Preset.from_config(name, config, tags=tags, description=description, include_prompts=True)
    loaded, _warnings = parse_preset(preset.to_yaml())
    assert loaded == preset
    assert loaded.apply_to(PipelineConfig()) == config


line = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).map(
    lambda t: t.strip(" \t\r")).filter(
    lambda t: t and not t.startswith("#") and not t.casefold().startswith(NEGATIVE_PREFIX))


@FAST
@given(prompts=st.lists(st.tuples(line, st.one_of(st.just(""), line)), min_size=1, max_size=6),
       negative=st.one_of(st.just(""), line))
def test_any_text_pack_round_trips(tmp_path_factory, prompts, negative):
    pack = PromptPack(name="p", negative=negative,
                      prompts=[PackPrompt(prompt=p, negative=n) for p, n in prompts])
    loaded = parse_text_pack(pack.to_text(), tmp_path_factory.mktemp("x") / "p.txt")
    assert loaded.resolved() == pack.resolved()
