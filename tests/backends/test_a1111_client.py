"""The A1111/Forge client against the fake WebUI over real HTTP: every endpoint it uses."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from stablenew.backends import Backend
from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.errors import MissingResource
from stablenew.backends.types import (
    ADetailerJob,
    ADetailerPass,
    BackendKind,
    HiresFix,
    Img2ImgJob,
    Progress,
    Refiner,
    ResizeMode,
    Sampling,
    Txt2ImgJob,
    UpscaleJob,
)
from tests.backends.conftest import png
from tests.fakes.sdwebui import FakeSDWebUI


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def parameters_of(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return image.info.get("parameters", "")


def client(fake: FakeSDWebUI, **kwargs) -> A1111Backend:
    kwargs.setdefault("poll_interval", 0.01)
    kwargs.setdefault("timeout", 10.0)
    return A1111Backend(fake.url, **kwargs)


def sampling(**changes) -> Sampling:
    base = {"prompt": "a red fox", "negative_prompt": "blurry", "sampler": "Euler a", "steps": 6,
            "width": 64, "height": 48, "seed": 1234, "cfg_scale": 6.5}
    base.update(changes)
    return Sampling(**base)


async def test_implements_the_backend_protocol(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        assert isinstance(backend, Backend)
        await backend.ping()


async def test_probe_gathers_every_listing(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        caps = await backend.probe()
    assert caps.kind == BackendKind.a1111
    assert caps.checkpoints == ("sd_xl_base_1.0.safetensors", "SD15/dreamshaper_8.safetensors",
                                "sd_xl_refiner_1.0.safetensors")
    assert caps.current_checkpoint == "sd_xl_base_1.0.safetensors"
    assert "DPM++ 2M" in caps.samplers and "Euler a" in caps.samplers
    assert "Karras" in caps.schedulers and "Align Your Steps" in caps.schedulers
    assert "Latent (bicubic)" in caps.upscalers and "R-ESRGAN 4x+" in caps.upscalers
    assert caps.loras == ("add_detail", "film_grain")
    assert caps.embeddings == ("EasyNegative", "bad-hands-5")
    assert "face_yolov8n.pt" in caps.adetailer_models
    assert caps.vram_total == 24 * 1024**3 and caps.vram_free == 20 * 1024**3
    assert caps.device == "cuda"


@pytest.mark.parametrize("fake_sdwebui", [{"adetailer_models": None, "vram_total": None,
                                           "flavor": "sdnext"}], indirect=True)
async def test_probe_tolerates_missing_extensions_and_cpu(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        caps = await backend.probe()
    assert caps.kind == BackendKind.sdnext
    assert caps.adetailer_models == () and caps.schedulers == ()
    assert caps.vram_total is None and caps.device == "cpu"
    assert caps.version  # SD.Next tells its version


async def test_txt2img_batch_seeds_sizes_and_infotext(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        result = await backend.txt2img(Txt2ImgJob(sampling(), task_id="job-1", batch_size=3))
    assert [img.seed for img in result.images] == [1234, 1235, 1236]
    assert all(size_of(img.data) == (64, 48) for img in result.images)
    assert result.warnings == ()
    assert "Seed: 1235" in result.images[1].infotext
    assert parameters_of(result.images[0].data) == result.images[0].infotext
    assert result.info["sampler_name"] == "Euler a"
    assert fake_sdwebui.unknown_fields == []
    sent = fake_sdwebui.requests_to("/sdapi/v1/txt2img")[0].payload
    # Every parameter explicit: the API's defaults (50 steps, Euler) are not the UI's.
    assert sent["steps"] == 6 and sent["sampler_name"] == "Euler a" and sent["n_iter"] == 1
    assert sent["force_task_id"] == "job-1"
    assert sent["override_settings"] == {"CLIP_stop_at_last_layers": 1}


async def test_txt2img_hires_refiner_checkpoint_and_clip_skip(fake_sdwebui):
    job = Txt2ImgJob(sampling(checkpoint="dreamshaper_8", clip_skip=2), task_id="hr",
                     hires=HiresFix(upscaler="Latent (bicubic)", scale=1.5, steps=3, denoise=0.4),
                     refiner=Refiner("sd_xl_refiner_1.0.safetensors", 0.7))
    async with client(fake_sdwebui) as backend:
        result = await backend.txt2img(job)
    assert result.warnings == ()
    assert size_of(result.images[0].data) == (96, 72)
    text = result.images[0].infotext
    for part in ("Hires upscale: 1.5", "Hires steps: 3", "Hires upscaler: Latent (bicubic)",
                 "Denoising strength: 0.4", "Clip skip: 2", "Model: SD15_dreamshaper_8",
                 "Refiner switch at: 0.7"):
        assert part in text
    sent = fake_sdwebui.requests_to("/sdapi/v1/txt2img")[0].payload
    # The bare stem is sent as the server spells the model (see test_a1111_names.py).
    assert sent["override_settings"]["sd_model_checkpoint"] == "SD15/dreamshaper_8.safetensors"
    assert sent["hr_sampler_name"] == "Euler a"  # never the "Use same sampler" placeholder


async def test_txt2img_hires_to_a_fixed_size(fake_sdwebui):
    job = Txt2ImgJob(sampling(), task_id="hr2", hires=HiresFix(resize_width=128, resize_height=0))
    async with client(fake_sdwebui) as backend:
        result = await backend.txt2img(job)
    assert size_of(result.images[0].data) == (128, 96)
    assert result.warnings == ()


async def test_img2img_with_mask_and_resize_mode(fake_sdwebui):
    job = Img2ImgJob(sampling(width=80, height=64), init_image=png(32, 32), task_id="i2i",
                     denoise=0.35, resize_mode=ResizeMode.crop_and_resize, mask=png(32, 32, (255, 255, 255)))
    async with client(fake_sdwebui) as backend:
        result = await backend.img2img(job)
    # The output takes the asked size, not the input's (A1111 does not follow the init image).
    assert size_of(result.images[0].data) == (80, 64)
    assert "Denoising strength: 0.35" in result.images[0].infotext
    sent = fake_sdwebui.requests_to("/sdapi/v1/img2img")[0].payload
    assert sent["resize_mode"] == 1 and sent["mask_blur"] == 4
    assert sent["inpaint_full_res"] is False and sent["inpainting_fill"] == 1
    assert result.warnings == ()


async def test_adetailer_keeps_the_input_size_and_reports_its_keys(fake_sdwebui):
    passes = (ADetailerPass(model="face_yolov8n.pt", prompt="smiling"),
              ADetailerPass(model="hand_yolov8n.pt"))
    async with client(fake_sdwebui) as backend:
        result = await backend.adetailer(ADetailerJob(sampling(), image=png(72, 40), task_id="ad",
                                                      passes=passes))
    assert size_of(result.images[0].data) == (72, 40)
    assert result.warnings == ()
    text = result.images[0].infotext
    assert "ADetailer model: face_yolov8n.pt" in text and "ADetailer model 2nd: hand_yolov8n.pt" in text
    sent = fake_sdwebui.requests_to("/sdapi/v1/img2img")[0].payload
    args = sent["alwayson_scripts"]["ADetailer"]["args"]
    assert args[:2] == [True, True] and args[2]["ad_model"] == "face_yolov8n.pt"
    assert fake_sdwebui.unknown_fields == []


async def test_a_switched_off_middle_pass_is_sent_off_in_its_own_tab(fake_sdwebui):
    passes = (ADetailerPass(model="face_yolov8n.pt"),
              ADetailerPass(model="hand_yolov8n.pt", denoise=0.25, enabled=False),
              ADetailerPass(model="person_yolov8n-seg.pt"))
    async with client(fake_sdwebui) as backend:
        result = await backend.adetailer(ADetailerJob(sampling(), image=png(64, 48), task_id="ad3",
                                                      passes=passes))
    sent = fake_sdwebui.requests_to("/sdapi/v1/img2img")[0].payload
    tabs = sent["alwayson_scripts"]["ADetailer"]["args"][2:]
    assert [t["ad_model"] for t in tabs] == ["face_yolov8n.pt", "hand_yolov8n.pt",
                                             "person_yolov8n-seg.pt"], "pass 3 stays tab 3"
    assert [t["ad_tab_enable"] for t in tabs] == [True, False, True]
    assert tabs[1]["ad_denoising_strength"] == 0.25
    assert fake_sdwebui.unknown_fields == []
    text = result.images[0].infotext
    assert "hand_yolov8n.pt" not in text, "the server skipped the tab that was off"
    # ADetailer names a tab's keys by its place, so the third tab says "3rd" with the 2nd off;
    # both passes that ran are found in it: no "did not run" warning.
    assert "ADetailer model 3rd: person_yolov8n-seg.pt" in text
    assert "ADetailer model 2nd" not in text
    assert result.warnings == ()


async def test_adetailer_that_did_not_run_is_a_warning(fake_sdwebui):
    job = ADetailerJob(sampling(), image=png(40, 40), task_id="ad2",
                       passes=(ADetailerPass(model="face_yolov9_missing.pt"),))
    async with client(fake_sdwebui) as backend:
        result = await backend.adetailer(job)
    assert len(result.warnings) == 1
    assert "face_yolov9_missing.pt" in result.warnings[0] and "did not run" in result.warnings[0]


async def test_upscale_single_image_by_scale_and_to_size(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        gen = await backend.txt2img(Txt2ImgJob(sampling(), task_id="src"))
        by_scale = await backend.upscale(UpscaleJob(gen.images[0].data, task_id="u1", scale=2.5))
        to_size = await backend.upscale(UpscaleJob(gen.images[0].data, task_id="u2", target_width=100,
                                                   target_height=90))
    assert size_of(by_scale.images[0].data) == (160, 120)
    assert by_scale.images[0].seed == 1234  # carried from the source image's infotext
    assert size_of(to_size.images[0].data) == (100, 90)
    assert by_scale.warnings == () and to_size.warnings == ()
    assert fake_sdwebui.unknown_fields == []


async def test_png_info_reads_the_servers_parse(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        gen = await backend.txt2img(Txt2ImgJob(sampling(), task_id="p"))
        info = await backend.png_info(gen.images[0].data)
    assert info["parameters"]["Seed"] == "1234"
    assert info["parameters"]["Size-1"] == "64"
    assert info["info"] == gen.images[0].infotext


async def test_options_read_write_and_checkpoint_switch(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        options = await backend.options()
        assert options["samples_format"] == "png"
        await backend.set_checkpoint("SD15/dreamshaper_8.safetensors")
        caps = await backend.probe()
        assert caps.current_checkpoint == "SD15/dreamshaper_8.safetensors"
        with pytest.raises(MissingResource) as err:
            await backend.set_checkpoint("nope.safetensors")
        assert err.value.what == "checkpoint" and err.value.name == "nope.safetensors"
        assert "SD15/dreamshaper_8.safetensors" in err.value.installed
        await backend.refresh_lists()


async def test_files_added_to_the_server_show_after_refresh_lists(fake_sdwebui):
    # A1111 keeps its folders listed as they were at start-up until asked to read them again.
    async with client(fake_sdwebui) as backend:
        await backend.probe()
        fake_sdwebui.add_files(checkpoints=("juggernautXL_v9.safetensors",), loras=("film_noir",))
        before = await backend.probe()
        await backend.refresh_lists()
        after = await backend.probe()
    assert "juggernautXL_v9.safetensors" not in before.checkpoints and "film_noir" not in before.loras
    assert "juggernautXL_v9.safetensors" in after.checkpoints and "film_noir" in after.loras
    posted = [r.path for r in fake_sdwebui.requests if "/refresh-" in r.path]
    assert posted == ["/sdapi/v1/refresh-checkpoints", "/sdapi/v1/refresh-loras",
                      "/sdapi/v1/refresh-embeddings", "/sdapi/v1/refresh-vae"]


@pytest.mark.parametrize("fake_sdwebui", [{"flavor": "sdnext"}], indirect=True)
async def test_refresh_lists_skips_a_rescan_the_server_lacks(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        await backend.refresh_lists()  # SD.Next has no refresh-embeddings: not an error


async def test_progress_reports_our_task_with_steps_and_previews():
    async with FakeSDWebUI(step_ms=8) as fake, client(fake) as backend:
        seen: list[Progress] = []
        await backend.txt2img(Txt2ImgJob(sampling(steps=30), task_id="prog", batch_size=1), seen.append)
    running = [p for p in seen if 0 < p.fraction < 1]
    assert running, seen
    assert any(p.step and p.steps == 30 for p in running)
    assert any(p.preview and p.preview.startswith(b"\x89PNG") for p in running)
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(r.path == "/internal/progress" and r.payload["id_task"] == "prog" for r in fake.requests)


async def test_progress_falls_back_to_global_without_internal_routes():
    async with FakeSDWebUI(step_ms=8, internal_routes=False) as fake, client(fake) as backend:
        seen: list[Progress] = []
        await backend.txt2img(Txt2ImgJob(sampling(steps=30), task_id="g"), seen.append)
    assert any(0 < p.fraction < 1 and p.step for p in seen)
    assert fake.requests_to("/sdapi/v1/progress")


async def test_after_a_probe_the_first_job_sends_its_request_first(fake_sdwebui):
    # The probe already asked whether the server has per-task progress, so the first job does
    # not wait for that answer before the server can start on it.
    async with client(fake_sdwebui) as backend:
        await backend.probe()
        asked = len(fake_sdwebui.requests)
        await backend.txt2img(Txt2ImgJob(sampling(steps=2), task_id="first", batch_size=1))
    assert fake_sdwebui.requests[asked].path == "/sdapi/v1/txt2img"


async def test_without_a_probe_the_first_job_still_learns_about_task_ids(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        await backend.txt2img(Txt2ImgJob(sampling(steps=2), task_id="first", batch_size=1))
    paths = [r.path for r in fake_sdwebui.requests]
    assert paths.index("/internal/progress") < paths.index("/sdapi/v1/txt2img")


async def test_jpeg_and_webp_outputs_are_detected():
    for fmt, magic in (("jpeg", b"\xff\xd8\xff"), ("webp", b"RIFF")):
        async with FakeSDWebUI(samples_format=fmt) as fake, client(fake) as backend:
            result = await backend.txt2img(Txt2ImgJob(sampling(), task_id=fmt))
        assert result.images[0].data.startswith(magic)
        assert size_of(result.images[0].data) == (64, 48)


async def test_generation_is_serialised_like_the_queue_lock():
    async with FakeSDWebUI(step_ms=3) as fake, client(fake) as backend:
        jobs = [backend.txt2img(Txt2ImgJob(sampling(steps=5, seed=i), task_id=f"s{i}")) for i in range(3)]
        results = await asyncio.gather(*jobs)
    assert [r.images[0].seed for r in results] == [0, 1, 2]
    intervals = sorted(fake.busy_intervals)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(intervals, intervals[1:], strict=False))
    assert fake.images_generated == 3


async def test_missing_upscaler_and_refiner_are_named(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        with pytest.raises(MissingResource) as err:
            await backend.txt2img(Txt2ImgJob(sampling(), "u", hires=HiresFix(upscaler="4x-Ultra")))
        assert (err.value.what, err.value.name) == ("upscaler", "4x-Ultra")
        assert "has no upscaler named '4x-Ultra'" in err.value.message
        with pytest.raises(MissingResource) as err:
            await backend.upscale(UpscaleJob(png(), "u2", upscaler="4x-Ultra"))
        assert err.value.what == "upscaler"
        with pytest.raises(MissingResource) as err:
            await backend.txt2img(Txt2ImgJob(sampling(), "r", refiner=Refiner("nope_refiner")))
        assert (err.value.what, err.value.name) == ("checkpoint", "nope_refiner")


async def test_version_is_learnt_from_a_job(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        assert (await backend.probe()).version == ""
        await backend.txt2img(Txt2ImgJob(sampling(), "v"))
        assert (await backend.probe()).version == "v1.10.1"


@pytest.mark.parametrize("fake_sdwebui", [{"adetailer_models": None}], indirect=True)
async def test_adetailer_on_a_server_without_the_extension(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        with pytest.raises(MissingResource) as err:
            await backend.adetailer(ADetailerJob(sampling(), image=png(), task_id="ad"))
    assert (err.value.what, err.value.name) == ("extension", "ADetailer")
    assert err.value.message.endswith("does not have the ADetailer extension. Install it there, "
                                      "or run this step on another server.")


async def test_missing_init_image_message_is_the_servers(fake_sdwebui):
    from stablenew.backends.errors import RequestRejected

    async with client(fake_sdwebui) as backend:
        reply = await backend._post("/sdapi/v1/img2img", {"prompt": "x"})
        with pytest.raises(RequestRejected) as err:
            backend._check(reply)
    assert err.value.message.endswith("refused the request: Init image not found.")


@pytest.mark.parametrize("inline_limit", [0, 1 << 30], ids=["worker-thread", "inline"])
async def test_job_answers_read_the_same_inline_or_in_a_thread(fake_sdwebui, monkeypatch,
                                                               inline_limit):
    import stablenew.backends.a1111 as a1111

    monkeypatch.setattr(a1111, "INLINE_BODY_BYTES", inline_limit)
    async with client(fake_sdwebui) as backend:
        result = await backend.txt2img(Txt2ImgJob(sampling(), task_id="job-2", batch_size=2))
    assert [img.seed for img in result.images] == [1234, 1235]
    assert all(size_of(img.data) == (64, 48) for img in result.images)
    assert "Seed: 1235" in result.images[1].infotext and result.warnings == ()


async def test_a_lora_is_listed_by_its_file_name_and_its_alias(fake_sdwebui):
    """`<lora:X>` finds a LoRA by either (A1111's available_lora_aliases): the node has both."""
    fake_sdwebui.loras = ("film_grain_v2",)
    fake_sdwebui.lora_metadata["film_grain_v2"] = {"ss_output_name": "filmgrain"}
    async with client(fake_sdwebui) as backend:
        caps = await backend.probe()
    assert caps.loras == ("film_grain_v2", "filmgrain")
