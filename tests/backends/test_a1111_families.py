"""Flux on A1111-style servers: Forge gets CFG 1 and its distilled CFG; A1111 refuses plainly."""

from __future__ import annotations

import pytest

from stablenew.backends.errors import RequestRejected
from stablenew.backends.types import HiresFix, Txt2ImgJob
from tests.backends.test_a1111_client import client, sampling

FLUX_SERVER = {"flavor": "forge", "checkpoints": ("flux1-dev-bnb-nf4-v2.safetensors",
                                                   "sd_xl_base_1.0.safetensors")}


@pytest.mark.parametrize("fake_sdwebui", [FLUX_SERVER], indirect=True)
async def test_a_flux_job_on_forge_sends_distilled_cfg_and_cfg_1(fake_sdwebui):
    job = Txt2ImgJob(sampling(checkpoint="flux1-dev-bnb-nf4-v2", guidance=2.8, cfg_scale=6.0,
                              text_encoders=("clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors"),
                              vae="ae.safetensors"),
                     task_id="flux-1", hires=HiresFix(scale=1.5, steps=2))
    async with client(fake_sdwebui) as backend:
        result = await backend.txt2img(job)
    sent = fake_sdwebui.requests_to("/sdapi/v1/txt2img")[0].payload
    assert sent["cfg_scale"] == 1.0 and sent["distilled_cfg_scale"] == 2.8
    assert sent["hr_cfg"] == 1.0 and sent["hr_distilled_cfg"] == 2.8
    assert sent["negative_prompt"] == ""
    assert sent["override_settings"]["forge_additional_modules"] == [
        "ae.safetensors", "clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors"]
    assert fake_sdwebui.unknown_fields == []
    assert result.warnings == ()  # the hires pass ran at the CFG 1 it was meant to
    text = result.images[0].infotext
    assert "CFG scale: 1.0" in text and "Distilled CFG Scale: 2.8" in text


@pytest.mark.parametrize("fake_sdwebui", [FLUX_SERVER], indirect=True)
async def test_the_servers_current_model_when_it_is_flux_gets_flux_settings(fake_sdwebui):
    # The card's model left as "server's current", and Forge has Flux loaded: the job goes with
    # CFG 1 and the distilled CFG, as it would had the user named the model.
    async with client(fake_sdwebui) as backend:
        result = await backend.txt2img(Txt2ImgJob(sampling(checkpoint="", guidance=3.0), task_id="cur"))
    sent = fake_sdwebui.requests_to("/sdapi/v1/txt2img")[0].payload
    assert fake_sdwebui.options["sd_model_checkpoint"].startswith("flux1-dev")
    assert sent["cfg_scale"] == 1.0 and sent["distilled_cfg_scale"] == 3.0
    assert "sd_model_checkpoint" not in sent.get("override_settings", {})  # no model switch asked
    assert result.warnings == ()


@pytest.mark.parametrize("fake_sdwebui", [{"flavor": "a1111"}], indirect=True)
async def test_on_a1111_the_servers_current_model_costs_no_extra_request(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        await backend.probe()
        asked = len(fake_sdwebui.requests)
        await backend.txt2img(Txt2ImgJob(sampling(checkpoint=""), task_id="plain"))
    assert fake_sdwebui.requests[asked].path == "/sdapi/v1/txt2img"


@pytest.mark.parametrize("fake_sdwebui", [FLUX_SERVER], indirect=True)
async def test_an_sdxl_job_on_forge_is_unchanged(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        result = await backend.txt2img(Txt2ImgJob(sampling(checkpoint="sd_xl_base_1.0"), task_id="xl"))
    sent = fake_sdwebui.requests_to("/sdapi/v1/txt2img")[0].payload
    assert sent["cfg_scale"] == 6.5 and "distilled_cfg_scale" not in sent
    assert sent["negative_prompt"] == "blurry"
    assert "Distilled CFG Scale" not in result.images[0].infotext


@pytest.mark.parametrize("fake_sdwebui", [{"flavor": "a1111"}], indirect=True)
async def test_a1111_refuses_a_flux_job_in_plain_words_before_sending(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        with pytest.raises(RequestRejected) as caught:
            await backend.txt2img(Txt2ImgJob(sampling(checkpoint="myMerge", family="flux"), task_id="f"))
    assert "AUTOMATIC1111 cannot run Flux models" in caught.value.message
    assert fake_sdwebui.requests_to("/sdapi/v1/txt2img") == []
