"""A Flux job and a ControlNet job through the PipelineRunner on a ComfyUI node and on Forge,
checked on what the fake received and on the saved image's metadata."""

from __future__ import annotations

import asyncio
import io

from PIL import Image

from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.connect import connect
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.events import RunStatus
from stablenew.pipeline.infotext import parse_infotext, read_image_metadata
from stablenew.pipeline.references import store_reference
from stablenew.pipeline.runner import PipelineRunner
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.sdwebui import FakeSDWebUI

FLUX = {"checkpoints": ("sd15_base.safetensors",), "diffusion_models": ("flux1-dev.safetensors",),
        "text_encoders": ("clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors"),
        "vaes": ("ae.safetensors",), "controlnets": ("control_v11p_sd15_canny.pth",)}


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (240, 240, 10)).save(buf, format="PNG")
    return buf.getvalue()


def flux_config() -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.prompt": "a lighthouse at dusk", "txt2img.checkpoint": "flux1-dev.safetensors",
        "txt2img.sampler": "Euler", "txt2img.scheduler": "Simple", "txt2img.guidance": 2.5,
        "txt2img.cfg_scale": 7.0, "txt2img.width": 64, "txt2img.height": 64, "txt2img.steps": 4,
        "txt2img.seed": 77})


def canny_config(tmp_path, checkpoint: str) -> PipelineConfig:
    ref = store_reference(png(), tmp_path / "references")
    return PipelineConfig.model_validate({"txt2img": {
        "prompt": "a castle", "checkpoint": checkpoint, "sampler": "Euler a", "scheduler": "Automatic",
        "width": 64, "height": 64, "steps": 4, "seed": 5,
        "references": [{**ref.model_dump(), "kind": "canny", "strength": 0.75}]}})


async def run(config: PipelineConfig, backend, out):
    runner = PipelineRunner(out)
    result = await asyncio.wait_for(runner.run(config, backend, CancelToken()), 20)
    assert result.status is RunStatus.completed, result.errors
    return read_image_metadata(result.records[0].path)


async def test_flux_and_controlnet_jobs_on_comfyui(tmp_path):
    async with FakeComfyUI(step_ms=2, **FLUX) as fake:
        backend = await connect(fake.url, name="den-3090", timeout=20)
        backend._workflows_dir = tmp_path / "workflows"
        try:
            meta = await run(flux_config(), backend, tmp_path / "out")
            graph = fake.received[-1]["prompt"]
            classes = {n["class_type"] for n in graph.values()}
            assert {"UNETLoader", "DualCLIPLoader", "VAELoader", "FluxGuidance"} <= classes
            info = parse_infotext(meta.parameters)
            assert float(info["CFG scale"]) == 1.0 and float(info["Distilled CFG Scale"]) == 2.5
            assert meta.stablenew["config"]["txt2img"]["guidance"] == 2.5

            meta = await run(canny_config(tmp_path, "sd15_base.safetensors"), backend, tmp_path / "out2")
            graph = fake.received[-1]["prompt"]
            apply = next(n for n in graph.values() if n["class_type"] == "ControlNetApplyAdvanced")
            assert apply["inputs"]["strength"] == 0.75
            info = parse_infotext(meta.parameters)
            assert info["ControlNet 0"].startswith("Module: canny, Model: automatic, Weight: 0.75")
            (ref,) = meta.stablenew["config"]["txt2img"]["references"]
            assert ref["image"].endswith(f"{ref['sha256']}.png")  # our chunk names it by hash and path
        finally:
            await backend.aclose()


async def test_flux_and_controlnet_jobs_on_forge(tmp_path):
    fake = FakeSDWebUI(flavor="forge",
                       checkpoints=("flux1-dev-fp8.safetensors", "dreamshaper_8.safetensors"),
                       controlnet_models=("control_v11p_sd15_canny [d14c016b]",))
    async with fake, A1111Backend(fake.url, poll_interval=0.01, timeout=10.0) as backend:
        config = flux_config().with_changes({"txt2img.checkpoint": "flux1-dev-fp8.safetensors"})
        meta = await run(config, backend, tmp_path / "out")
        sent = fake.requests_to("/sdapi/v1/txt2img")[-1].payload
        assert sent["cfg_scale"] == 1.0 and sent["distilled_cfg_scale"] == 2.5
        assert parse_infotext(meta.parameters)["Distilled CFG Scale"] == "2.5"

        meta = await run(canny_config(tmp_path, "dreamshaper_8"), backend, tmp_path / "out2")
        unit = fake.requests_to("/sdapi/v1/txt2img")[-1].payload["alwayson_scripts"]["controlnet"]["args"][0]
        assert (unit["module"], unit["model"], unit["weight"]) == (
            "canny", "control_v11p_sd15_canny [d14c016b]", 0.75)
        info = parse_infotext(meta.parameters)
        assert info["ControlNet 0"].startswith("Module: canny, Model: control_v11p_sd15_canny [d14c016b]")
        assert meta.stablenew["config"]["txt2img"]["references"][0]["strength"] == 0.75
