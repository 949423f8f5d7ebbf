"""The pipeline's PipelineRunner, unchanged, on a ComfyUI node (the fake, over real HTTP + WS)."""

from __future__ import annotations

import asyncio
import time

import pytest

from stablenew.backends.connect import connect
from stablenew.backends.types import BackendKind
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.events import RunStatus, StageStarted
from stablenew.pipeline.infotext import parse_infotext, read_image_metadata
from stablenew.pipeline.runner import PipelineRunner
from tests.fakes.comfyui import FakeComfyUI


def config(**changes) -> PipelineConfig:
    base = {"txt2img.prompt": "a red fox in the snow <lora:detail_tweaker:0.5>",
            "txt2img.negative_prompt": "blurry", "txt2img.checkpoint": "sd15_base.safetensors",
            "txt2img.sampler": "DPM++ 2M", "txt2img.scheduler": "Karras", "txt2img.width": 64,
            "txt2img.height": 64, "txt2img.steps": 4, "txt2img.seed": 1000, "img2img.steps": 4,
            "upscale.scale": 2.0}
    base.update(changes)
    return PipelineConfig().with_changes(base)


@pytest.fixture
async def comfy_node(tmp_path):
    async with FakeComfyUI(step_ms=2, face_detailer=True) as fake:
        backend = await connect(fake.url, name="den-3060", timeout=20)
        backend._workflows_dir = tmp_path / "workflows"
        try:
            yield fake, backend
        finally:
            await backend.aclose()


async def test_connect_detects_comfyui_by_probing(comfy_node):
    fake, backend = comfy_node
    assert backend.kind is BackendKind.comfyui
    forced = await connect(fake.url, kind="comfyui")
    try:
        assert forced.kind is BackendKind.comfyui
        await forced.ping()
    finally:
        await forced.aclose()


# Plain txt2img and txt2img+upscale also run through the CLI tests.
@pytest.mark.parametrize("chain", [
    ("txt2img", "hires"), ("txt2img", "img2img"), ("txt2img", "adetailer"),
    ("txt2img", "hires", "img2img", "adetailer", "upscale"),
], ids="+".join)
async def test_runner_stages_on_comfyui_write_our_infotext(comfy_node, tmp_path, chain):
    fake, backend = comfy_node
    changes = {f"{s}.enabled": s in chain for s in ("img2img", "adetailer", "upscale")}
    changes["txt2img.hires.enabled"] = "hires" in chain
    changes["txt2img.hires.upscaler"] = "R-ESRGAN 4x+"
    # The hires runs also hand the last steps of the first pass to a refiner.
    changes["txt2img.refiner.enabled"] = "hires" in chain
    changes["txt2img.refiner.checkpoint"] = "sdxl_refiner_1.0.safetensors"
    changes["txt2img.batch_count"] = 2
    runner = PipelineRunner(tmp_path / "out")
    result = await asyncio.wait_for(runner.run(config(**changes), backend, CancelToken()), 20)
    assert result.status is RunStatus.completed, result.errors
    assert [r.image_index for r in result.records] == [0, 1]
    size = 64 * (2 if "hires" in chain else 1) * (2 if "upscale" in chain else 1)
    for record in result.records:
        meta = read_image_metadata(record.path)
        assert (meta.width, meta.height) == (size, size)
        info = parse_infotext(meta.parameters)
        assert info["Seed"] == str(1000 + record.image_index)
        assert info["Sampler"] == "DPM++ 2M" and info["Steps"] == "4"
        assert info["Prompt"].startswith("a red fox in the snow")
        if "hires" in chain:
            assert info["Hires upscaler"] == "R-ESRGAN 4x+"
        if "upscale" in chain:
            assert info["Postprocess upscaler"] == "R-ESRGAN 4x+"
    classes = {n["class_type"] for body in fake.received for n in body["prompt"].values()}
    assert "LoraLoader" in classes
    assert ("FaceDetailer" in classes) == ("adetailer" in chain)
    assert ("KSamplerAdvanced" in classes) == ("hires" in chain)


@pytest.mark.parametrize("stage", ["txt2img", "img2img", "upscale"])
async def test_cancel_through_the_runner_stops_only_our_prompt(comfy_node, tmp_path, stage):
    fake, backend = comfy_node
    chain = ("txt2img", "img2img", "upscale")
    changes = {f"{s}.enabled": s in chain for s in ("img2img", "adetailer", "upscale")}
    token = CancelToken()
    cancelled_at: list[float] = []
    pending: list[asyncio.Future] = []

    async def trip_once_running():
        async with asyncio.timeout(5):
            while not fake.queue_snapshot()["queue_running"]:
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.03)
        cancelled_at.append(time.monotonic())
        token.cancel()

    def on_event(event):
        if isinstance(event, StageStarted) and event.image_index == 1 and event.stage == stage:
            fake.step_ms = 40
            if stage == "upscale":
                fake.step_ms = 2
                pending.append(asyncio.ensure_future(_cancel_soon(token, cancelled_at)))
            else:
                pending.append(asyncio.ensure_future(trip_once_running()))

    result = await asyncio.wait_for(runner_run(tmp_path, config(**changes, **{
        "txt2img.batch_count": 2, "txt2img.steps": 30, "img2img.steps": 30}), backend, token, on_event), 20)
    assert result.status is RunStatus.cancelled
    assert time.monotonic() - cancelled_at[0] < 1.0
    assert [r.image_index for r in result.records] == [0]
    assert None not in fake.interrupts  # never a bare interrupt


async def _cancel_soon(token, cancelled_at):
    await asyncio.sleep(0.005)
    cancelled_at.append(time.monotonic())
    token.cancel()


async def runner_run(tmp_path, cfg, backend, token, on_event):
    return await PipelineRunner(tmp_path / "out").run(cfg, backend, token, on_event)


async def test_one_failing_image_does_not_stop_the_batch(comfy_node, tmp_path):
    fake, backend = comfy_node
    runner = PipelineRunner(tmp_path / "out")
    fake.fail_next(1, "torch.OutOfMemoryError", "Allocation on device")
    result = await asyncio.wait_for(
        runner.run(config(**{"txt2img.batch_count": 3}), backend, CancelToken()), 20)
    assert [r.image_index for r in result.records] == [1, 2]
    assert len(result.errors) == 1 and "out of GPU memory" in result.errors[0].message
    assert len(fake.prompts_of("txt2img")) == 3 and fake.current_task is None


async def test_vanishing_node_stops_the_run_with_a_clear_reason(comfy_node, tmp_path):
    fake, backend = comfy_node
    fake.step_s = 0.02
    token = CancelToken()
    stopping: list[asyncio.Future] = []

    def on_event(event):
        if isinstance(event, StageStarted) and event.image_index == 1 and not stopping:
            stopping.append(asyncio.ensure_future(fake.stop()))

    result = await asyncio.wait_for(PipelineRunner(tmp_path / "out").run(
        config(**{"txt2img.batch_count": 3, "txt2img.steps": 20}), backend, token, on_event), 20)
    await stopping[0]
    assert result.status is not RunStatus.completed
    assert [r.image_index for r in result.records] == [0]
    assert any("den-3060" in e.message for e in result.errors)


async def test_the_scheduler_accepts_a_probed_comfyui_node_for_a1111_worded_configs(comfy_node):
    from stablenew.cluster.scheduler import NodeView, ineligibility
    from stablenew.cluster.work import requirements_for

    fake, backend = comfy_node
    caps = await backend.probe()
    cfg = config(**{"upscale.enabled": True, "adetailer.enabled": True, "txt2img.hires.enabled": True,
                    "txt2img.hires.upscaler": "R-ESRGAN 2x+"})
    assert ineligibility(requirements_for(cfg), NodeView("den-3060", caps)) is None
    missing = config(**{"upscale.enabled": True, "upscale.upscaler": "R-ESRGAN 4x+ Anime6B"})
    assert "Anime6B" in ineligibility(requirements_for(missing), NodeView("den-3060", caps))
