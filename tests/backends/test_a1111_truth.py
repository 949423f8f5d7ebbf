"""Truth check: what the server really ran is compared with what was asked, as plain warnings."""

from __future__ import annotations

import pytest

from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.a1111_truth import Expectation, compare, infotext_params, same_checkpoint
from stablenew.backends.types import ADetailerPass, HiresFix, Sampling, Txt2ImgJob
from tests.fakes.sdwebui import FakeSDWebUI
from tests.fakes.sdwebui_schema import create_infotext


def sampling(**changes) -> Sampling:
    base = {"prompt": "a fox", "steps": 4, "width": 64, "height": 64, "seed": 100, "sampler": "Euler a"}
    base.update(changes)
    return Sampling(**base)


async def run(fake: FakeSDWebUI, s: Sampling, **job) -> tuple[str, ...]:
    async with A1111Backend(fake.url) as backend:
        return (await backend.txt2img(Txt2ImgJob(s, task_id="t", **job))).warnings


async def test_unknown_sampler_falls_back_and_is_reported(fake_sdwebui):
    warnings = await run(fake_sdwebui, sampling(sampler="Euler Ancestral Deluxe"))
    assert warnings == ("Sampler: asked for 'Euler Ancestral Deluxe', the server used 'DPM++ 2M' "
                        "(unknown sampler names fall back silently).",)


async def test_old_style_sampler_with_scheduler_is_not_a_difference(fake_sdwebui):
    assert await run(fake_sdwebui, sampling(sampler="DPM++ 2M Karras")) == ()
    assert await run(fake_sdwebui, sampling(sampler="DPM++ 2M", scheduler="karras")) == ()


async def test_unknown_scheduler_is_reported(fake_sdwebui):
    warnings = await run(fake_sdwebui, sampling(scheduler="Wobbly"))
    assert len(warnings) == 1 and warnings[0].startswith("Schedule type: asked for 'Wobbly'")


async def test_unknown_checkpoint_override_is_dropped_and_reported(fake_sdwebui):
    # The client refuses a model the server does not list (test_a1111_names.py); a server
    # whose list cannot be read gets the name, drops it, and the answer shows it.
    fake_sdwebui.inject("500", path="/sdapi/v1/sd-models", times=10)
    warnings = await run(fake_sdwebui, sampling(checkpoint="not_installed.safetensors"))
    assert warnings == ("Checkpoint: asked for 'not_installed.safetensors', the server used "
                        "'sd_xl_base_1.0' (a checkpoint name the server does not know is ignored silently).",)


@pytest.mark.parametrize("alias", ["SD15/dreamshaper_8.safetensors", "dreamshaper_8", "SD15_dreamshaper_8",
                                   "SD15/dreamshaper_8.safetensors [a36a3a718c]"])
async def test_every_checkpoint_alias_matches(fake_sdwebui, alias):
    assert await run(fake_sdwebui, sampling(checkpoint=alias)) == ()


def test_same_checkpoint_rules():
    assert same_checkpoint("sub/Model.safetensors [0123456789]", "sub_Model")
    assert same_checkpoint("model", "sub_model")
    assert not same_checkpoint("model2", "model")


def info_for(s: Sampling, **changes) -> tuple[dict, list[str]]:
    params = {"Steps": s.steps, "Sampler": s.sampler, "CFG scale": s.cfg_scale, "Seed": s.seed,
              "Size": f"{s.width}x{s.height}"}
    params.update(changes.pop("params", {}))
    text = create_infotext(s.prompt, "", params)
    info = {"sampler_name": s.sampler, "all_seeds": [s.seed], "clip_skip": 1, "sd_model_name": "m",
            "extra_generation_params": {}}
    info.update(changes)
    return info, [text]


def test_forge_hires_at_cfg_1_is_reported():
    s = sampling(cfg_scale=7)
    info, texts = info_for(s, params={"Hires CFG Scale": 1.0})
    warnings = compare(Expectation(s, 1, (64, 64), hires_cfg=7.0), info, [(64, 64)], texts)
    assert warnings == ["Hires CFG scale: asked for 7, the server used 1 "
                        "(at CFG 1 the hires pass ignores the negative prompt)."]


def test_seeds_sizes_counts_and_clip_skip_are_compared():
    s = sampling(clip_skip=2)
    info, texts = info_for(s, all_seeds=[55, 56], clip_skip=1)
    warnings = compare(Expectation(s, 3, (64, 64)), info, [(64, 64), (32, 32)], texts)
    assert warnings == [
        "Clip skip: asked for 2, the server used 1.",
        "Images: asked for 3, the server returned 2 (a skip or an interrupt from someone else on "
        "the server stops a batch early).",
        "Seeds: asked for 100, 101, the server used 55, 56.",
        "Size: asked for 64x64, the server returned 32x32.",
    ]


def test_adetailer_keys_are_checked_per_pass():
    s = sampling()
    info, texts = info_for(s, params={"ADetailer model": "face_yolov8n.pt",
                                      "ADetailer model 2nd": "hand_yolov8s.pt"})
    passes = (ADetailerPass("face_yolov8n.pt"), ADetailerPass("hand_yolov8n.pt"), ADetailerPass("person.pt"))
    warnings = compare(Expectation(s, 1, (64, 64), adetailer=passes), info, [(64, 64)], texts)
    assert warnings[0] == "ADetailer: pass 2 asked for 'hand_yolov8n.pt', the server used 'hand_yolov8s.pt'."
    assert warnings[1].startswith("ADetailer: pass 3 with 'person.pt' did not run")


def test_a_switched_off_pass_is_not_expected_and_later_passes_keep_their_tab_keys():
    s = sampling()
    info, texts = info_for(s, params={"ADetailer model": "face_yolov8n.pt",
                                      "ADetailer model 3rd": "person.pt"})
    passes = (ADetailerPass("face_yolov8n.pt"), ADetailerPass("hand_yolov8n.pt", enabled=False),
              ADetailerPass("person.pt"))
    assert compare(Expectation(s, 1, (64, 64), adetailer=passes), info, [(64, 64)], texts) == []
    # The third tab reported as the second would be someone else's numbering, not ours.
    info, texts = info_for(s, params={"ADetailer model": "face_yolov8n.pt",
                                      "ADetailer model 2nd": "person.pt"})
    warnings = compare(Expectation(s, 1, (64, 64), adetailer=passes), info, [(64, 64)], texts)
    assert len(warnings) == 1 and warnings[0].startswith("ADetailer: pass 3 with 'person.pt' did not run")


def test_infotext_params_reads_quoted_values():
    text = 'a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler, Lora hashes: "a: 1, b: 2", Seed: 5'
    assert infotext_params(text) == {"Steps": "20", "Sampler": "Euler", "Lora hashes": "a: 1, b: 2",
                                     "Seed": "5"}
    assert infotext_params("just a prompt, with: one colon") == {}


async def test_forge_run_matches_what_was_asked():
    async with FakeSDWebUI(flavor="forge") as fake, A1111Backend(fake.url, kind="forge") as backend:
        result = await backend.txt2img(Txt2ImgJob(sampling(cfg_scale=6), "f", hires=HiresFix(scale=2)))
    assert result.warnings == ()
    assert "Hires CFG Scale: 6" in result.images[0].infotext


async def test_a1111_client_on_forge_hits_the_crash_the_kind_detection_avoids():
    """Told the wrong kind, the client omits Forge's fields and Forge fails: detection matters."""
    from stablenew.backends.errors import ServerError

    async with FakeSDWebUI(flavor="forge") as fake, A1111Backend(fake.url, kind="a1111") as backend:
        with pytest.raises(ServerError) as caught:
            await backend.txt2img(Txt2ImgJob(sampling(), "f", hires=HiresFix()))
    assert "NoneType" in caught.value.message
