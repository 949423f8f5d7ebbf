"""PipelineRunner against a started node: stages, batches, re-runs, cancel, faults, ETA, outputs."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.events import (
    ImageSaved,
    ProgressUpdate,
    RunError,
    RunFinished,
    RunStarted,
    RunStatus,
    StageFinished,
    StageStarted,
)
from stablenew.pipeline.infotext import parse_infotext, read_image_metadata
from stablenew.pipeline.outputs import png_crc_ok
from stablenew.pipeline.records import RunTags
from stablenew.pipeline.runner import PipelineRunner
from tests.pipeline.conftest import small_config
from tests.pipeline.memory_backend import png

STAGE_SETS = [
    ("txt2img",),
    ("txt2img", "img2img"),
    ("txt2img", "adetailer"),
    ("txt2img", "upscale"),
    ("txt2img", "img2img", "adetailer", "upscale"),
]


def _enable(stages: tuple[str, ...], **extra) -> dict:
    changes = {f"{s}.enabled": s in stages for s in ("img2img", "adetailer", "upscale")}
    changes.update(extra)
    return changes


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


async def _run(runner, config, node, token=None, **kwargs):
    events: list = []
    token = token or CancelToken()
    result = await asyncio.wait_for(
        runner.run(config, node.backend, token, events.append, **kwargs), 20)
    return result, events


@pytest.mark.parametrize("chain", STAGE_SETS, ids="+".join)
async def test_every_stage_on_and_off(node, tmp_path, chain):
    hooked = []
    runner = PipelineRunner(tmp_path / "out", record_hooks=[hooked.append], log_dir=tmp_path / "logs")
    config = small_config(**_enable(chain), **{"txt2img.batch_count": 2})
    tags = RunTags(pack="pack-1", variant_id="v3")
    result, events = await _run(runner, config, node, tags=tags)

    assert result.status is RunStatus.completed, result.errors
    assert [r.image_index for r in result.records] == [0, 1]
    assert hooked == [e.record for e in events if isinstance(e, ImageSaved)]
    assert sorted(r.image_index for r in hooked) == [0, 1]
    assert node.calls("txt2img") == 2
    assert node.calls("upscale") == (2 if "upscale" in chain else 0)
    if node.kind != "a1111":  # on A1111, ADetailer is an img2img request too
        assert node.calls("img2img") == (2 if "img2img" in chain else 0)
        assert node.calls("adetailer") == (2 if "adetailer" in chain else 0)
    else:
        assert node.calls("img2img") == sum(s in chain for s in ("img2img", "adetailer")) * 2
    size = 128 if "upscale" in chain else 64
    for record in result.records:
        assert record.stages == chain and record.seed == 1000 + record.image_index
        assert record.path.parent == result.output_dir and record.path.parent.parent == tmp_path / "out"
        assert record.tags == tags and set(chain) <= set(record.timings)
        assert record.config.txt2img.seed == record.seed
        data = record.path.read_bytes()
        assert png_crc_ok(data)
        meta = read_image_metadata(record.path)
        assert (meta.width, meta.height) == (size, size)
        assert meta.parsed["Prompt"] == "a red fox in the snow"
        assert meta.parsed["Seed"] == str(record.seed)
        assert meta.stablenew["stages"] == list(chain)
        assert meta.stablenew["tags"] == {"pack": "pack-1", "variant_id": "v3"}
        assert meta.stablenew["config"]["txt2img"]["seed"] == record.seed
        assert record.thumbnail is not None and record.thumbnail.exists()
    # Events: started first, finished last, stages announced in order for each image.
    assert isinstance(events[0], RunStarted) and events[0].stages == chain
    assert isinstance(events[-1], RunFinished) and events[-1].images_saved == 2
    started = [(e.stage, e.index, e.count) for e in events if isinstance(e, StageStarted)]
    assert started[: len(chain)] == [(s, i + 1, len(chain)) for i, s in enumerate(chain)]
    assert sum(isinstance(e, StageFinished) for e in events) == 2 * len(chain)
    overall = [e.overall_fraction for e in events if isinstance(e, ProgressUpdate)]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)
    log_lines = [json.loads(line) for line in (tmp_path / "logs" / f"{result.run_id}.jsonl")
                 .read_text(encoding="utf-8").splitlines()]
    assert log_lines[0]["event"] == "RunStarted" and log_lines[-1]["event"] == "RunFinished"
    assert no_temp_files(tmp_path)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*.tmp")]


@pytest.mark.parametrize("chain", [("txt2img",), ("txt2img", "img2img", "upscale")], ids="+".join)
async def test_next_image_is_queued_before_the_current_one_ends(tmp_path, chain):
    from tests.pipeline.memory_backend import MemoryBackend

    backend = MemoryBackend(step_s=0.005)
    config = small_config(**_enable(chain), **{"txt2img.batch_count": 3})
    result = await asyncio.wait_for(PipelineRunner(tmp_path).run(config, backend, CancelToken()), 20)
    assert result.status is RunStatus.completed
    calls = backend.calls
    assert [c.method for c in calls][:len(chain)] == list(chain)
    firsts = [c for c in calls if c.method == "txt2img"]
    lasts = [c for c in calls if c.method == chain[-1]]
    # Image i+1's first request reached the node before image i's last job had ended, and
    # the node ran them strictly one after the other.
    for last, nxt in zip(lasts, firsts[1:], strict=False):
        assert nxt.sent_at < last.ended_at
    ordered = sorted(calls, key=lambda c: c.ended_at)
    assert ordered == calls


async def test_batches_resolve_a_random_seed_once_and_record_each(node, tmp_path):
    runner = PipelineRunner(tmp_path)
    config = small_config(**{"txt2img.seed": -1, "txt2img.batch_size": 2,
                             "txt2img.batch_count": 2})
    result, _ = await _run(runner, config, node)
    assert result.status is RunStatus.completed
    seeds = [r.seed for r in result.records]
    assert seeds == [seeds[0] + i for i in range(4)] and seeds[0] >= 0
    # One request per batch; ComfyUI gets one prompt per image so each seed is reproducible.
    assert node.calls("txt2img") == (4 if node.kind == "comfyui" else 2)
    names = [r.path.name for r in result.records]
    assert len(set(names)) == 4 and all(str(r.seed) in r.path.name for r in result.records)


async def test_txt2img_off_without_images_fails_clearly(node, tmp_path):
    result, events = await _run(PipelineRunner(tmp_path), small_config(**{"txt2img.enabled": False}),
                                node)
    assert result.status is RunStatus.failed
    assert "Text to image is switched off" in result.message
    assert isinstance(events[-1], RunFinished) and node.calls("txt2img") == 0


async def test_rerun_one_stage_from_input_images(node, tmp_path):
    source = tmp_path / "favourite.png"
    source.write_bytes(png(96, 80, 1, text={"parameters": "old"}))
    config = small_config(**_enable(("img2img",)), **{"img2img.prompt_override": "sharper fox"})
    runner = PipelineRunner(tmp_path / "out")
    result, events = await _run(runner, config, node, input_images=[source, png(48, 64, 2)])
    assert result.status is RunStatus.completed, result.errors
    assert node.calls("txt2img") == 0 and node.calls("img2img") == 2
    assert events[0].stages == ("img2img",)
    assert [r.stages for r in result.records] == [("img2img",), ("img2img",)]
    sizes = [read_image_metadata(r.path) for r in result.records]
    sizes = [(m.width, m.height) for m in sizes]
    assert sizes == [(96, 80), (48, 64)]
    assert [r.source for r in result.records] == [source, None]
    meta = read_image_metadata(result.records[0].path)
    assert meta.stablenew["source"] == str(source)
    assert meta.parsed["Prompt"] == "sharper fox"
    assert meta.parsed["Denoising strength"] == "0.5"


async def test_img2img_redraws_at_its_own_size_when_set(node, tmp_path):
    config = small_config(**_enable(("img2img",)), **{"img2img.width": 96, "img2img.height": 64,
                                                      "limits.max_output_pixels": 5000})
    result, _ = await _run(PipelineRunner(tmp_path), config, node,
                           input_images=[png(48, 32, 1)])
    assert result.status is RunStatus.failed, "the size limit counts the redrawn size"
    assert "96×64" in result.errors[0].message
    config = config.with_changes({"limits.max_output_pixels": 64_000_000})
    result, _ = await _run(PipelineRunner(tmp_path), config, node, input_images=[png(48, 32, 1)])
    assert result.status is RunStatus.completed, result.errors
    meta = read_image_metadata(result.records[0].path)
    assert (meta.width, meta.height) == (96, 64)
    assert (meta.parsed["Size-1"], meta.parsed["Size-2"]) == ("96", "64")


async def test_input_images_with_nothing_after_txt2img_is_refused(node, tmp_path):
    result, _ = await _run(PipelineRunner(tmp_path), small_config(), node,
                           input_images=[png(8, 8, 1)])
    assert result.status is RunStatus.failed and "nothing to do" in result.message


async def test_input_that_would_exceed_the_size_limit_is_refused_before_sending(node, tmp_path):
    config = small_config(**_enable(("upscale",)), **{"upscale.scale": 4.0,
                                                      "limits.max_output_pixels": 200_000})
    result, _ = await _run(PipelineRunner(tmp_path), config, node,
                           input_images=[png(200, 200, 1), png(64, 64, 2)])
    assert result.status is RunStatus.partial and len(result.records) == 1
    assert "800×800" in result.errors[0].message and "Largest output" in result.errors[0].message
    assert node.calls("upscale") == 1


async def test_unreadable_input_image_fails_alone(node, tmp_path):
    result, _ = await _run(PipelineRunner(tmp_path), small_config(**_enable(("upscale",))), node,
                           input_images=[tmp_path / "missing.png", png(16, 16, 1)])
    assert result.status is RunStatus.partial
    assert [e.image_index for e in result.errors] == [0] and len(result.records) == 1


@pytest.mark.parametrize("stage", ["txt2img", "img2img", "adetailer", "upscale"])
async def test_cancel_during_each_stage(node, tmp_path, stage):
    chain = ("txt2img", "img2img", "adetailer", "upscale")
    config = small_config(**_enable(chain), **{"txt2img.batch_count": 3, "img2img.steps": 8})
    token = CancelToken()
    cancelled_at: list[float] = []
    pending: list[asyncio.Future] = []
    loop = asyncio.get_running_loop()

    def trip():
        if not cancelled_at:
            cancelled_at.append(time.monotonic())
            token.cancel()

    async def trip_once_running():
        # Cancel only once the job surely runs on the node, then a little into it.
        deadline = time.monotonic() + 5
        while not node.running() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.03)
        trip()

    def on_event(event):
        if isinstance(event, StageStarted) and event.image_index == 1 and event.stage == stage:
            node.slow(stage, 0.08)  # image 0 ran fast; this stage of image 1 takes a while
            if stage == "upscale" and node.kind == "a1111":
                loop.call_later(0.1, trip)  # A1111 extras hold no task we could watch
            else:
                pending.append(asyncio.ensure_future(trip_once_running()))

    runner = PipelineRunner(tmp_path / "out")
    events: list = []
    result = await asyncio.wait_for(
        runner.run(config, node.backend, token, lambda e: (events.append(e), on_event(e))), 20)
    returned = time.monotonic()
    assert result.status is RunStatus.cancelled
    assert returned - cancelled_at[0] < 1.0
    if not (node.kind == "a1111" and stage == "upscale"):  # A1111 extras cannot be interrupted
        assert node.interrupts, "the backend was not interrupted"
    # Image 0 finished before the cancel and is kept whole; image 1 left nothing behind.
    assert [r.image_index for r in result.records] == [0]
    images = [p for p in _files(tmp_path / "out") if p.suffix == ".png"]
    assert images == [result.records[0].path]
    assert no_temp_files(tmp_path)
    assert isinstance(events[-1], RunFinished) and events[-1].status is RunStatus.cancelled


async def test_cancel_also_stops_the_request_queued_behind(node, tmp_path):
    # txt2img only: the next image's request is already queued on the node while one runs.
    config = small_config(**{"txt2img.batch_count": 5, "txt2img.steps": 6})
    token = CancelToken()

    async def trip_when_second_runs():
        deadline = time.monotonic() + 5
        while node.finished_jobs() < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        node.slow("txt2img", 0.2)  # a whole job now takes 1.2 s
        while not node.running() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        token.cancel()

    tripper = asyncio.ensure_future(trip_when_second_runs())
    result = await asyncio.wait_for(
        PipelineRunner(tmp_path).run(config, node.backend, token), 20)
    await asyncio.wait_for(tripper, 5)
    assert result.status is RunStatus.cancelled
    assert node.calls("txt2img") >= 2
    cancelled_at = time.perf_counter()
    done = node.finished_jobs()
    if node.kind != "a1111":  # memory and ComfyUI drop the queued job itself
        await asyncio.sleep(0.3)  # a queued job that escaped would run now
        assert node.finished_jobs() == done and not node.running()
    else:
        # A1111 cannot drop a queued request: the client interrupts it once it starts (it
        # polls every 0.5 s). The fake counts partial images, so look at how long jobs ran.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and (node.running() or not node.server.busy_intervals
                                               or node.server.busy_intervals[-1][1] < cancelled_at):
            await asyncio.sleep(0.02)
        late = [end - start for start, end in node.server.busy_intervals if end > cancelled_at]
        assert late and all(length < 0.9 for length in late), late


async def test_cancel_returns_fast_even_when_the_node_is_slow_to_interrupt(tmp_path):
    from tests.pipeline.memory_backend import MemoryBackend

    backend = MemoryBackend(step_s=0.05, interrupt_delay_s=1.5)
    token = CancelToken()
    loop = asyncio.get_running_loop()
    cancel_at = loop.time() + 0.1
    loop.call_at(cancel_at, token.cancel)
    result = await asyncio.wait_for(PipelineRunner(tmp_path).run(
        small_config(**{"txt2img.steps": 40}), backend, token), 20)
    returned = time.monotonic()
    assert loop.time() - cancel_at < 1.0
    assert result.status is RunStatus.cancelled and backend.interrupts == []
    # The interrupt was not cut off: it reaches the node after the run has returned.
    while not backend.interrupts and time.monotonic() - returned < 5:
        await asyncio.sleep(0.02)
    assert len(backend.interrupts) == 1
    assert backend.calls[0].interrupted or not backend.calls[0].finished


async def test_cancel_before_start_sends_nothing(node, tmp_path):
    token = CancelToken()
    token.cancel()
    result, _ = await _run(PipelineRunner(tmp_path), small_config(), node, token)
    assert result.status is RunStatus.cancelled and node.calls("txt2img") == 0


async def test_an_image_failing_mid_batch_does_not_stop_the_rest(node, tmp_path):
    config = small_config(**_enable(("upscale",)), **{"txt2img.batch_count": 4})
    failing = {"done": False}

    def on_event(event):
        if isinstance(event, StageStarted) and event.image_index == 2 and event.stage == "upscale" \
                and not failing["done"]:
            failing["done"] = True
            node.fail_next("upscale")

    runner = PipelineRunner(tmp_path)
    result = await asyncio.wait_for(runner.run(config, node.backend, CancelToken(), on_event), 20)
    assert result.status is RunStatus.partial
    assert [r.image_index for r in result.records] == [0, 1, 3]
    assert [(e.image_index, e.fatal) for e in result.errors] == [(2, False)]
    assert result.errors[0].message and "upscale" in result.errors[0].detail
    assert node.calls("txt2img") == 4


async def test_node_vanishing_mid_run_stops_with_a_clear_reason(node, tmp_path):
    config = small_config(**{"txt2img.batch_count": 12})
    events: list = []

    def on_event(event):
        events.append(event)
        if isinstance(event, ImageSaved) and event.record.image_index == 1:
            node.vanish()

    runner = PipelineRunner(tmp_path)
    started = time.monotonic()
    result = await asyncio.wait_for(runner.run(config, node.backend, CancelToken(), on_event), 20)
    assert time.monotonic() - started < 10
    assert result.status is RunStatus.partial
    fatal = [e for e in result.errors if e.fatal]
    assert len(fatal) == 1 and fatal[0].message
    assert "Stopped after" in result.message
    assert 2 <= len(result.records) <= 4
    assert len(result.records) + len({e.image_index for e in result.errors}) <= 7
    # A request in flight when the server went down may fail on its own (HTTP 500 while
    # shutting down); the run then stops at the first sign the node is gone.
    errors = [e for e in events if isinstance(e, RunError)]
    assert errors[-1].fatal and errors == result.errors


async def test_a_node_failing_every_image_stops_the_run(node, tmp_path):
    config = small_config(**{"txt2img.batch_count": 10})

    def on_event(event):
        if isinstance(event, StageStarted) and event.image_index >= 3:
            node.fail_next("txt2img")

    result = await asyncio.wait_for(
        PipelineRunner(tmp_path).run(config, node.backend, CancelToken(), on_event), 20)
    assert result.status is RunStatus.partial
    assert [e.fatal for e in result.errors] == [False, False, True]
    assert "3 images in a row failed" in result.errors[-1].message
    assert node.calls("txt2img") < 10  # the rest of the batch was never sent


async def test_eta_is_present_and_falls_on_a_steady_run(node, tmp_path):
    # Steps long enough that scheduler jitter on a loaded 2-core machine stays well under the
    # 10% slack below (at 10 ms a step, 20 ms of jitter broke it).
    node.slow("txt2img", 0.03)
    config = small_config(**{"txt2img.batch_count": 6, "txt2img.steps": 5})
    result, events = await _run(PipelineRunner(tmp_path, thumbnails=False), config, node)
    assert result.status is RunStatus.completed
    updates = [e for e in events if isinstance(e, ProgressUpdate)]
    after_first = [e for e in updates if e.image_index >= 1]
    assert after_first and all(e.eta_seconds is not None for e in after_first)
    at_start = [e.eta_seconds for e in after_first if e.stage_fraction == 0.0]
    assert len(at_start) == 5
    # Falls image after image (a little slack: a busy test machine is not a steady run).
    assert all(b < a * 1.1 for a, b in zip(at_start, at_start[1:], strict=False)), at_start
    assert at_start[-1] < at_start[0] / 2, at_start
    assert updates[-1].eta_seconds == pytest.approx(0.0, abs=0.05)


async def test_fixed_folder_and_prefix_overwrite_instead_of_copying(node, tmp_path):
    folder = tmp_path / "item-7"
    config = small_config(**{"txt2img.seed": -1, "txt2img.batch_count": 2})
    runner = PipelineRunner(tmp_path / "unused")
    first, _ = await _run(runner, config, node, output_dir=folder, name_prefix="job 7/../x")
    second, _ = await _run(runner, config, node, output_dir=folder, name_prefix="job 7/../x")
    assert [r.path for r in first.records] == [r.path for r in second.records]
    assert all(r.path.parent == folder for r in second.records)
    assert len([p for p in folder.iterdir() if p.suffix == ".png"]) == 2
    assert not (tmp_path / "unused").exists()


async def test_hostile_prompt_stays_inside_the_run_folder(node, tmp_path):
    prompt = "../../CON\\..\\NUL " + "🦊" * 200 + " x" * 300
    config = small_config(**{"txt2img.prompt": prompt})
    result, _ = await _run(PipelineRunner(tmp_path / "out"), config, node)
    assert result.status is RunStatus.completed
    path = result.records[0].path
    assert path.parent.parent == tmp_path / "out" and len(path.name) < 100
    assert read_image_metadata(path).parsed["Prompt"] == prompt


async def test_a_failing_record_hook_loses_nothing(node, tmp_path):
    def broken(record):
        raise RuntimeError("learning store is down")

    seen = []
    runner = PipelineRunner(tmp_path, record_hooks=[broken])
    runner.add_record_hook(seen.append)
    result, events = await _run(runner, small_config(), node)
    assert result.status is RunStatus.completed and len(seen) == 1
    assert any("could not be recorded" in w for w in result.warnings)


async def test_server_infotext_is_kept_for_a_plain_txt2img_image(node, tmp_path):
    result, _ = await _run(PipelineRunner(tmp_path), small_config(), node)
    text = read_image_metadata(result.records[0].path).parameters
    if node.kind == "memory":
        assert text.endswith("Version: v1.10.1")
    assert parse_infotext(text)["Seed"] == "1000"
    chained, _ = await _run(PipelineRunner(tmp_path), small_config(**_enable(("upscale",))), node)
    text = read_image_metadata(chained.records[0].path).parameters
    # The server's own text stays the base (what ran); the upscale adds its keys to it.
    assert "Postprocess upscaler: R-ESRGAN 4x+" in text
    assert parse_infotext(text)["Seed"] == "1000"
    if node.kind == "memory":
        assert "Version: v1.10.1" in text


async def test_a_failing_event_callback_does_not_stop_the_run(node, tmp_path):
    def broken(event):
        raise ValueError("GUI bug")

    result = await asyncio.wait_for(PipelineRunner(tmp_path).run(
        small_config(), node.backend, CancelToken(), broken), 20)
    assert result.status is RunStatus.completed


async def test_a_server_sending_jpeg_still_gives_png_with_metadata(tmp_path):
    from stablenew.backends.connect import connect
    from tests.fakes.sdwebui import FakeSDWebUI

    async with FakeSDWebUI(step_ms=1, samples_format="jpg") as fake:
        backend = await connect(fake.url, kind="a1111", timeout=20)
        try:
            result = await asyncio.wait_for(PipelineRunner(tmp_path).run(
                small_config(**_enable(("upscale",))), backend, CancelToken()), 20)
        finally:
            await backend.aclose()
    assert result.status is RunStatus.completed, result.errors
    meta = read_image_metadata(result.records[0].path)
    assert meta.format == "PNG" and (meta.width, meta.height) == (128, 128)
    assert meta.parsed["Seed"] == "1000" and meta.stablenew["stages"] == ["txt2img", "upscale"]


async def test_a_fixed_folder_deleted_between_runs_is_made_again(node, tmp_path):
    # The runner remembers fixed folders it created (the queue runs one image per run); a
    # folder the user deleted meanwhile must not lose the next image.
    folder = tmp_path / "job"
    runner = PipelineRunner(tmp_path / "unused")
    first, _ = await _run(runner, small_config(), node, output_dir=folder, name_prefix="a")
    assert first.status is RunStatus.completed
    for path in folder.rglob("*"):
        if path.is_file():
            path.unlink()
    for path in sorted(folder.rglob("*"), reverse=True):
        path.rmdir()
    folder.rmdir()
    second, _ = await _run(runner, small_config(), node, output_dir=folder, name_prefix="b")
    assert second.status is RunStatus.completed
    record = second.records[0]
    assert record.path.exists() and record.path.parent == folder
    assert record.thumbnail is not None and record.thumbnail.exists()
