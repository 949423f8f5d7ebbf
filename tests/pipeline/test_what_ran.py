"""An image says what ran, stage by stage, from each stage's server report (issue 17, items
1, 3 and 5): against the A1111/Forge fake and the ComfyUI fake over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stablenew.backends import types as bt
from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.comfyui import ComfyUIBackend
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.events import RunStatus
from stablenew.pipeline.infotext import read_image_metadata
from stablenew.pipeline.runner import PipelineRunner
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.sdwebui import FakeSDWebUI
from tests.pipeline.conftest import small_config

ROOT = Path(__file__).resolve().parents[2]


async def _run(config, backend, out: Path):
    return await PipelineRunner(out, thumbnails=False).run(config, backend, CancelToken())


async def test_multi_stage_image_names_the_sampler_and_model_the_server_ran(tmp_path):
    """Hires + upscale, an unknown sampler and a checkpoint name A1111 takes for no alias:
    the image says what A1111 ran (its fallback sampler, its loaded model), not the config."""
    async with FakeSDWebUI(step_ms=1) as fake:
        fake.options["sd_model_checkpoint"] = fake._title("SD15/dreamshaper_8.safetensors")
        # A model list the client cannot read, so the name goes as written (else it is
        # refused before anything runs: tests/backends/test_a1111_names.py).
        fake.inject("500", path="/sdapi/v1/sd-models", times=10)
        backend = A1111Backend(fake.url, kind=bt.BackendKind.a1111)
        try:
            config = small_config(**{
                "txt2img.sampler": "Euler Ancestral",  # no such sampler: A1111 runs DPM++ 2M
                "txt2img.checkpoint": "sd_xl_base_1.0.ckpt",  # not an alias: dropped silently
                "txt2img.hires.enabled": True, "txt2img.hires.scale": 2.0,
                "upscale.enabled": True})
            result = await _run(config, backend, tmp_path)
        finally:
            await backend.aclose()
    assert result.status is RunStatus.completed, result.message
    meta = read_image_metadata(result.records[0].path)
    parsed = meta.parsed
    assert parsed["Sampler"] == "DPM++ 2M"
    assert parsed["Model"] == "SD15_dreamshaper_8"
    assert parsed["Model hash"]
    assert parsed["Hires upscale"] == "2.0" and parsed["Postprocess upscaler"] == "R-ESRGAN 4x+"
    assert "Euler Ancestral" not in meta.parameters
    ours = meta.stablenew["config"]["txt2img"]
    assert ours["sampler"] == "DPM++ 2M" and ours["checkpoint"] == "SD15_dreamshaper_8"
    assert meta.stablenew["asked"] == {"txt2img.sampler": "Euler Ancestral",
                                       "txt2img.checkpoint": "sd_xl_base_1.0.ckpt"}
    assert result.records[0].config.txt2img.sampler == "DPM++ 2M"


async def test_forge_hires_cfg_and_img2img_sampling_come_from_their_reports(tmp_path):
    """txt2img with hires on Forge, then img2img with an unknown sampler: the base keeps
    Forge's "Hires CFG Scale"; the img2img stage adds what it ran under "Img2img …"."""
    async with FakeSDWebUI(step_ms=1, flavor="forge") as fake:
        backend = A1111Backend(fake.url, kind=bt.BackendKind.forge)
        try:
            config = small_config(**{
                "txt2img.sampler": "Euler a", "txt2img.cfg_scale": 6.0,
                "txt2img.hires.enabled": True,
                "txt2img.hires.scale": 1.5, "img2img.enabled": True,
                "img2img.sampler": "Nonexistent sampler", "img2img.denoise": 0.3})
            result = await _run(config, backend, tmp_path)
        finally:
            await backend.aclose()
    assert result.status is RunStatus.completed, result.message
    parsed = read_image_metadata(result.records[0].path).parsed
    assert parsed["Hires CFG Scale"] == "6.0"
    assert parsed["Img2img denoising strength"] == "0.3"
    assert parsed["Img2img sampler"] == "DPM++ 2M"
    assert parsed["Sampler"] == "Euler a" and parsed["Version"] == fake.version


async def test_hires_size_follows_a1111_rounding_to_multiples_of_8():
    """512 at scale 1.3 is 665 asked and 664 made: no false "size differs" warning."""
    async with FakeSDWebUI(step_ms=0) as fake:
        backend = A1111Backend(fake.url, kind=bt.BackendKind.a1111)
        try:
            job = bt.Txt2ImgJob(sampling=bt.Sampling(prompt="p", width=512, height=512, steps=2,
                                                     seed=5, sampler="Euler a"),
                                task_id="task(t-1)",
                                hires=bt.HiresFix(upscaler="Latent", scale=1.3, denoise=0.4))
            result = await backend.txt2img(job)
        finally:
            await backend.aclose()
    from stablenew.pipeline.outputs import image_size

    assert image_size(result.images[0].data) == (664, 664)
    assert not [w for w in result.warnings if w.startswith("Size")], result.warnings


def test_expected_hires_size_in_the_config_is_floored_to_8():
    from stablenew.pipeline.config import HiresSettings, hires_size

    assert hires_size(512, 512, HiresSettings(scale=1.3)) == (664, 664)
    assert hires_size(512, 768, HiresSettings(resize_width=1000)) == (1000, 1496)


async def test_comfyui_image_names_the_checkpoint_it_loaded(tmp_path):
    """No checkpoint named: the node loads one of its own, and the image says which."""
    async with FakeComfyUI(step_ms=1) as fake:
        backend = ComfyUIBackend(fake.url, workflows_dir=tmp_path / "wf")
        try:
            result = await _run(small_config(**{"txt2img.checkpoint": ""}), backend, tmp_path)
        finally:
            await backend.aclose()
    assert result.status is RunStatus.completed, result.message
    meta = read_image_metadata(result.records[0].path)
    loaded = fake.checkpoints[0]
    assert meta.parsed["Model"] == loaded.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    assert meta.stablenew["config"]["txt2img"]["checkpoint"] == loaded
    assert meta.stablenew["asked"] == {"txt2img.checkpoint": ""}


async def test_a1111_image_chunk_names_the_current_model_when_none_was_asked(tmp_path):
    async with FakeSDWebUI(step_ms=1) as fake:
        backend = A1111Backend(fake.url, kind=bt.BackendKind.a1111)
        try:
            result = await _run(small_config(**{"upscale.enabled": True}), backend, tmp_path)
        finally:
            await backend.aclose()
    meta = read_image_metadata(result.records[0].path)
    assert meta.parsed["Model"] == "sd_xl_base_1.0" and meta.parsed["Model hash"]
    assert meta.stablenew["config"]["txt2img"]["checkpoint"] == "sd_xl_base_1.0"


def test_cli_prints_each_difference_once(tmp_path):
    """The runner's warning is the one the user reads; the backend's log line must not be
    printed beside it by Python's last-resort handler (the CLI sets up no logging)."""
    config = tmp_path / "cfg.yaml"
    config.write_text("version: 1\ntxt2img:\n  prompt: a boat\n  width: 64\n  height: 64\n"
                      "  steps: 2\n  seed: 3\n  sampler: Euler Ancestral\n", encoding="utf-8")
    with FakeSDWebUI(step_ms=1).running_in_thread() as fake:
        proc = subprocess.run(
            [sys.executable, "-m", "stablenew", "run", str(config), "--node", fake.url,
             "--kind", "a1111", "--out", str(tmp_path / "out")],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("Euler Ancestral") == 1, proc.stderr
    assert "1 image saved." in proc.stderr
    assert "1 images" not in proc.stderr



async def test_someone_elses_interrupt_in_the_hires_pass_is_kept_only_as_incomplete(tmp_path):
    """A1111 answers 200 with the half-done image after a foreign Interrupt; /progress said
    interrupted. The image is kept, named and described as incomplete, and not counted."""
    import asyncio

    import httpx

    async with FakeSDWebUI(step_ms=40) as fake:
        backend = A1111Backend(fake.url, kind=bt.BackendKind.a1111, poll_interval=0.01)

        async def interrupt_in_hires_pass() -> None:
            while fake._job is None or fake._job.job_no < 1:  # the first pass is done
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            async with httpx.AsyncClient() as other:  # another user of the same server
                await other.post(f"{fake.url}/sdapi/v1/interrupt")

        someone = asyncio.ensure_future(interrupt_in_hires_pass())
        try:
            config = small_config(**{"txt2img.steps": 3, "txt2img.hires.enabled": True,
                                     "txt2img.hires.steps": 20, "upscale.enabled": True})
            result = await asyncio.wait_for(_run(config, backend, tmp_path), 30)
        finally:
            someone.cancel()
            await backend.aclose()
    assert fake.interrupts and fake.interrupts[0] is not None
    assert result.status is RunStatus.failed and not result.records
    assert "not finished" in result.errors[0].message
    [kept] = list(tmp_path.rglob("*.png"))
    assert kept.name.endswith("-incomplete.png")
    meta = read_image_metadata(kept)
    assert "Interrupt" in meta.parsed["Incomplete"] and "Interrupt" in meta.stablenew["incomplete"]
    assert meta.stablenew["stages"] == ["txt2img"]  # the upscale did not run on it
    assert not fake.requests_to("/sdapi/v1/extra-single-image")


def test_a_run_that_saves_nothing_leaves_no_folder_and_names_none(tmp_path, capsys):
    from stablenew.cli import main

    config = tmp_path / "cfg.yaml"
    config.write_text("version: 1\ntxt2img:\n  prompt: a boat\n  width: 64\n  height: 64\n"
                      "  steps: 2\n  seed: 3\n", encoding="utf-8")
    out = tmp_path / "out"
    with FakeSDWebUI(step_ms=1).running_in_thread() as fake:
        fake.inject("500", path="/sdapi/v1/txt2img", times=5)
        code = main(["run", str(config), "--node", fake.url, "--kind", "a1111",
                     "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "No image was saved" in err
    assert "Folder:" not in err
    assert not out.exists() or not any(out.iterdir())


async def test_a_queued_run_that_saves_nothing_makes_no_folder(tmp_path):
    async with FakeSDWebUI(step_ms=1) as fake:
        fake.inject("500", path="/sdapi/v1/txt2img", times=1)
        backend = A1111Backend(fake.url, kind=bt.BackendKind.a1111)
        try:
            folder = tmp_path / "out" / "queue-job"
            result = await PipelineRunner(tmp_path / "out").run(
                small_config(), backend, CancelToken(), output_dir=folder)
            assert result.status is RunStatus.failed and not result.folder_made
            assert not folder.exists()
            ok = await PipelineRunner(tmp_path / "out").run(
                small_config(), backend, CancelToken(), output_dir=folder)
        finally:
            await backend.aclose()
    assert ok.status is RunStatus.completed and ok.folder_made
    assert ok.records[0].path.parent == folder


async def test_comfyui_without_facedetailer_fails_before_anything_is_sent(tmp_path):
    """The missing FaceDetailer node is reported before txt2img runs, not after it."""
    async with FakeComfyUI(step_ms=1, face_detailer=False) as fake:
        backend = ComfyUIBackend(fake.url, workflows_dir=tmp_path / "wf")
        try:
            config = small_config(**{"adetailer.enabled": True})
            result = await _run(config, backend, tmp_path / "out")
        finally:
            await backend.aclose()
    assert result.status is RunStatus.failed and not fake.received
    assert "FaceDetailer" in result.message and "Nothing was sent" in result.message
    assert result.errors[0].fatal and not (tmp_path / "out").exists()


async def test_an_upscaler_the_server_lacks_fails_before_txt2img(tmp_path):
    async with FakeSDWebUI(step_ms=1, upscalers=("None", "Lanczos", "Nearest")) as fake:
        backend = A1111Backend(fake.url, kind=bt.BackendKind.a1111)
        try:
            config = small_config(**{"upscale.enabled": True})  # the default R-ESRGAN 4x+
            result = await _run(config, backend, tmp_path / "out")
        finally:
            await backend.aclose()
    assert result.status is RunStatus.failed
    assert "R-ESRGAN 4x+" in result.message and "Lanczos" in result.message
    assert not fake.requests_to("/sdapi/v1/txt2img")


async def test_when_a_later_stage_fails_anyway_the_earlier_image_is_kept_and_labelled(tmp_path):
    """ADetailer's extension is missing (A1111 lists nothing to check against): the stage
    fails after txt2img ran, and the txt2img image is kept, named and described as such."""
    async with FakeSDWebUI(step_ms=1, adetailer_models=None) as fake:
        backend = A1111Backend(fake.url, kind=bt.BackendKind.a1111)
        try:
            config = small_config(**{"adetailer.enabled": True, "upscale.enabled": True})
            result = await _run(config, backend, tmp_path / "out")
        finally:
            await backend.aclose()
    assert result.status is RunStatus.failed and not result.records
    assert "ADetailer" in result.errors[0].message
    [kept] = list((tmp_path / "out").rglob("*.png"))
    assert kept.name.endswith("-txt2img-only.png")
    meta = read_image_metadata(kept)
    assert meta.parsed["Stopped before"] == "adetailer"
    assert meta.stablenew["stages"] == ["txt2img"] and meta.stablenew["stopped_before"] == "adetailer"
    assert any("kept as" in w for w in result.warnings)
    assert not fake.requests_to("/sdapi/v1/extra-single-image")


def test_the_img2img_keys_a_chained_image_carries_load_back():
    from stablenew.pipeline.infotext import parse_infotext
    from stablenew.pipeline.infotext_config import config_from_infotext

    text = ("a fox\nSteps: 4, Sampler: Euler a, CFG scale: 6, Seed: 1, Size: 64x64, "
            "Img2img denoising strength: 0.3, Img2img steps: 9, Img2img sampler: DPM++ 2M, "
            "Img2img schedule type: Karras, Img2img CFG scale: 5, Img2img model: other, "
            "Stopped before: upscale")
    config, _loaded, unknown = config_from_infotext(parse_infotext(text))
    i = config.img2img
    assert (i.sampler, i.scheduler, i.cfg_scale, i.steps) == ("DPM++ 2M", "Karras", 5.0, 9)
    assert unknown == []


async def test_an_output_folder_that_cannot_be_made_fails_before_anything_is_sent(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should go", encoding="utf-8")
    async with FakeSDWebUI(step_ms=1) as fake:
        backend = A1111Backend(fake.url, kind=bt.BackendKind.a1111)
        try:
            result = await _run(small_config(), backend, blocker / "out")
        finally:
            await backend.aclose()
    assert result.status is RunStatus.failed and "cannot be created" in result.message
    assert not fake.requests_to("/sdapi/v1/txt2img")
