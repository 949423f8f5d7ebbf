"""Payloads use only field names the server reads: a misspelled field is a silent bug in A1111."""

from __future__ import annotations

import pytest

from stablenew.backends import a1111_fields as F
from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.a1111_payloads import (
    adetailer_payload,
    img2img_payload,
    txt2img_payload,
    upscale_payload,
)
from stablenew.backends.types import (
    ADetailerJob,
    ADetailerPass,
    BackendKind,
    HiresFix,
    Img2ImgJob,
    Refiner,
    Sampling,
    Txt2ImgJob,
    UpscaleJob,
)
from tests.backends.conftest import png
from tests.fakes.sdwebui import FakeSDWebUI
from tests.fakes.sdwebui_schema import ADETAILER_TAB_FIELDS, REQUEST_MODELS

KINDS = (BackendKind.a1111, BackendKind.forge, BackendKind.sdnext)
S = Sampling(prompt="p", checkpoint="sd_xl_base_1.0.safetensors", clip_skip=2, width=64, height=64, seed=9)


def every_payload(kind: BackendKind) -> list[tuple[str, dict]]:
    """One payload of every shape the client builds for this kind."""
    return [
        (F.TXT2IMG, txt2img_payload(Txt2ImgJob(S, "a"), kind)),
        (F.TXT2IMG, txt2img_payload(Txt2ImgJob(S, "b", hires=HiresFix(cfg_scale=5), refiner=Refiner("r")),
                                    kind)),
        (F.TXT2IMG, txt2img_payload(Txt2ImgJob(S, "c", hires=HiresFix(resize_width=128, resize_height=96)),
                                    kind)),
        (F.IMG2IMG, img2img_payload(Img2ImgJob(S, png(), "d"), kind)),
        (F.IMG2IMG, img2img_payload(Img2ImgJob(S, png(), "e", mask=png()), kind)),
        (F.IMG2IMG, adetailer_payload(ADetailerJob(S, png(), "f", passes=(ADetailerPass(), ADetailerPass(
            model="hand_yolov8n.pt", prompt="hands"))), kind, (64, 48))),
        (F.EXTRAS_SINGLE, upscale_payload(UpscaleJob(png(), "g"))),
        (F.EXTRAS_SINGLE, upscale_payload(UpscaleJob(png(), "h", target_width=100, target_height=80))),
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_every_payload_uses_only_accepted_names(kind):
    for endpoint, payload in every_payload(kind):
        assert F.unknown_fields(endpoint, kind, payload) == [], (endpoint, payload.keys())


def test_a_misspelling_is_caught():
    payload = txt2img_payload(Txt2ImgJob(S, "x"), BackendKind.a1111)
    payload["clip_skip"] = 2
    payload["override_settings"]["sd_vae_name"] = "x"
    assert F.unknown_fields(F.TXT2IMG, BackendKind.a1111, payload) == [
        "clip_skip", "override_settings.sd_vae_name"]
    forge_only = txt2img_payload(Txt2ImgJob(S, "y", hires=HiresFix()), BackendKind.forge)
    assert F.unknown_fields(F.TXT2IMG, BackendKind.a1111, forge_only) == ["hr_additional_modules", "hr_cfg"]


@pytest.mark.parametrize("kind", KINDS)
def test_client_names_exist_in_the_fakes_independent_schema(kind):
    """Two lists written separately from the reference must agree on every name we send."""
    for endpoint in (F.TXT2IMG, F.IMG2IMG, F.EXTRAS_SINGLE, F.PNG_INFO, F.INTERNAL_PROGRESS):
        fake_fields = set(REQUEST_MODELS[kind.value][endpoint].model_fields)
        assert F.accepted_fields(endpoint, kind) <= fake_fields, endpoint
    assert set(ADETAILER_TAB_FIELDS) >= F.ADETAILER_TAB


def test_forge_hires_traps_are_always_avoided():
    hires = txt2img_payload(Txt2ImgJob(S, "f", hires=HiresFix(denoise=0.3)), BackendKind.forge)
    assert hires["hr_additional_modules"] == ["Use same choices"]
    assert hires["hr_cfg"] == S.cfg_scale
    assert hires["denoising_strength"] == 0.3
    assert hires["hr_sampler_name"] != "Use same sampler"
    a1111 = txt2img_payload(Txt2ImgJob(S, "a", hires=HiresFix(denoise=0.3)), BackendKind.a1111)
    assert a1111["denoising_strength"] == 0.3 and "hr_cfg" not in a1111


@pytest.mark.parametrize("flavor", ["a1111", "forge", "sdnext"])
async def test_the_fake_records_no_unknown_field_from_a_full_session(flavor):
    async with FakeSDWebUI(flavor=flavor) as fake, A1111Backend(fake.url, poll_interval=0.01) as backend:
        await backend.probe()
        gen = await backend.txt2img(Txt2ImgJob(S, "t", batch_size=2, hires=HiresFix(scale=1.5),
                                               refiner=Refiner("sd_xl_refiner_1.0.safetensors")),
                                    on_progress=lambda p: None)
        await backend.img2img(Img2ImgJob(S, gen.images[0].data, "i", mask=png(96, 96)))
        await backend.adetailer(ADetailerJob(S, gen.images[0].data, "ad"))
        await backend.upscale(UpscaleJob(gen.images[0].data, "u"))
        await backend.png_info(gen.images[0].data)
    assert fake.unknown_fields == []
    assert len(fake.requests_to(F.TXT2IMG)) == 1


async def test_the_fake_does_record_a_misspelled_field():
    import httpx

    async with FakeSDWebUI() as fake, httpx.AsyncClient(base_url=fake.url) as raw:
        reply = await raw.post(F.TXT2IMG, json={"prompt": "x", "steps": 2, "clip_skip": 2, "hires_fix": True})
    assert reply.status_code == 200  # the real server says nothing either
    assert sorted(fake.unknown_fields) == [(F.TXT2IMG, "clip_skip"), (F.TXT2IMG, "hires_fix")]
