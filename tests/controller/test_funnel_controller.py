"""FunnelController on a qasync loop with a real queue database: a stage saved but never queued
(a crash in between) is queued again under its id, with its tier and the pictures it starts
from; a step that cannot be queued is taken back; picks and limits are said plainly. With a
real queue on the fake A1111 server: each stage sends the picked picture's own bytes on (refine
and polish to img2img, the final to the upscaler alone), nothing drawn again from the seed."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
import shiboken6
from PIL import Image

from stablenew.cluster.funnel import FunnelSettings, FunnelStage, next_step, start
from stablenew.cluster.funnel_store import FUNNEL_FILE, FunnelFile, FunnelStore
from stablenew.cluster.queue_store import QueueStore
from stablenew.cluster.tiers import NodeTier
from stablenew.controller.funnel_controller import FunnelController
from stablenew.controller.queue_controller import QueueController
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.infotext import read_image_metadata

WAIT = 5000


def cards() -> PipelineConfig:
    return PipelineConfig().with_changes({"txt2img.prompt": "a paper crane", "txt2img.seed": 7,
                                          "txt2img.width": 128, "txt2img.height": 128})


@pytest.fixture
def rooms(qloop, qtbot, qapp, tmp_path):
    queue = QueueController(db_path=tmp_path / "queue.db", output_root=tmp_path / "out", poll_ms=50)
    wanted: list[bool] = []
    funnel = FunnelController(tmp_path, queue, base_config=cards,
                              output_root=lambda: tmp_path / "out",
                              start_queue=lambda: wanted.append(True))
    yield queue, funnel, wanted
    for closer in (funnel.aclose(), queue.aclose()):
        task = asyncio.ensure_future(closer)
        qtbot.waitUntil(task.done, timeout=WAIT)
    shiboken6.delete(funnel)
    shiboken6.delete(queue)
    qapp.processEvents()


def queued(tmp_path) -> dict[str, tuple[NodeTier | None, list[int]]]:
    with QueueStore(tmp_path / "queue.db") as store:
        return {j.id: (j.tier, [i.seed for i in store.reads.items(j.id)])
                for j in store.reads.list_jobs()}


def test_a_stage_saved_before_a_crash_but_never_queued_is_queued_on_the_next_start(
        rooms, qtbot, tmp_path):
    queue, controller, wanted = rooms
    funnel, step = start(cards(), FunnelSettings.model_validate({"counts": {"drafts": 3}}))
    FunnelStore(tmp_path / FUNNEL_FILE).save(FunnelFile(funnel=funnel))  # then the crash
    controller.start()
    qtbot.waitUntil(lambda: step.job_id in queued(tmp_path), timeout=WAIT)
    assert queued(tmp_path) == {step.job_id: (NodeTier.draft, [7, 8, 9])}
    qtbot.waitUntil(lambda: not controller.tasks.busy, timeout=WAIT)
    assert wanted, "the queue is asked to work"
    # A second start finds the job there and queues nothing more.
    controller.start()
    qtbot.waitUntil(lambda: not controller.tasks.busy, timeout=WAIT)
    assert list(queued(tmp_path)) == [step.job_id]
    assert [i.caption for i in controller.images()] == ["Waiting — seed 7", "Waiting — seed 8",
                                                        "Waiting — seed 9"]


def test_starting_queues_the_drafts_and_saves_the_funnel_first(rooms, qtbot, tmp_path):
    queue, controller, _ = rooms
    controller.start()
    qtbot.waitUntil(lambda: controller.loaded, timeout=WAIT)
    controller.start_funnel()
    qtbot.waitUntil(lambda: len(queued(tmp_path)) == 1 and not controller.tasks.busy,
                    timeout=WAIT)
    saved = FunnelStore(tmp_path / FUNNEL_FILE).load().funnel
    assert saved is not None and saved.runs[0].seeds == list(range(7, 27))
    (job,) = queued(tmp_path).items()
    assert job == (saved.runs[0].job_id, (NodeTier.draft, list(range(7, 27))))


def test_picking_nothing_or_an_unmade_image_is_said_plainly(rooms, qtbot):
    _, controller, _ = rooms
    controller.start()
    qtbot.waitUntil(lambda: controller.loaded, timeout=WAIT)
    controller.start_funnel()
    qtbot.waitUntil(lambda: controller.funnel is not None and not controller.tasks.busy,
                    timeout=WAIT)
    controller.go_on()
    assert controller.error.message == "Pick at least one image to refine (up to 8)."
    controller.set_picked(0, True)
    controller.go_on()
    assert "not made yet" in controller.error.message


def test_a_stage_that_cannot_be_queued_is_taken_back(rooms, qtbot, tmp_path):
    queue, controller, _ = rooms
    controller.start()
    qtbot.waitUntil(lambda: controller.loaded, timeout=WAIT)
    store = asyncio.ensure_future(queue.store())
    qtbot.waitUntil(store.done, timeout=WAIT)
    store.result().close()  # the database is gone from under the queue
    controller.start_funnel()
    qtbot.waitUntil(lambda: controller.error is not None and not controller.tasks.busy,
                    timeout=WAIT)
    assert controller.funnel is None
    assert FunnelStore(tmp_path / FUNNEL_FILE).load().funnel is None


def make_all(tmp_path, job_id: str) -> None:
    """A node makes every image of the job (the queue's own moves, a picture per output)."""
    with QueueStore(tmp_path / "queue.db") as store:
        while (claim := store.claim_next("node", can_take=lambda i, _j: i.job_id == job_id)):
            assert store.mark_running(claim.item.id, claim.lease)
            out = tmp_path / f"{claim.item.name_prefix}.png"
            Image.new("RGB", (64, 64), (claim.item.index * 40 % 256, 90, 30)).save(out)
            assert store.complete(claim.item.id, claim.lease, [str(out)])


def test_going_back_and_picking_again_replaces_the_later_stage_and_stops_its_job(
        rooms, qtbot, tmp_path):
    queue, controller, _ = rooms
    controller.start()
    qtbot.waitUntil(lambda: controller.loaded, timeout=WAIT)
    controller.set_settings(FunnelSettings.model_validate({"counts": {"drafts": 4}}))
    controller.start_funnel()
    qtbot.waitUntil(lambda: controller.funnel is not None and not controller.tasks.busy,
                    timeout=WAIT)
    drafts = controller.funnel.runs[0]
    make_all(tmp_path, drafts.job_id)
    queue.refresh()
    qtbot.waitUntil(lambda: controller.funnel.runs[0].ready == 4, timeout=WAIT)
    controller.set_picked(0, True)
    controller.set_picked(2, True)
    controller.go_on()
    qtbot.waitUntil(lambda: len(controller.funnel.runs) == 2 and not controller.tasks.busy,
                    timeout=WAIT)
    first_refine = controller.funnel.runs[1].job_id
    assert queued(tmp_path)[first_refine] == (NodeTier.quality, [drafts.seeds[0], drafts.seeds[2]])

    controller.view_stage(0)
    assert controller.funnel.viewing == 0 and [i.picked for i in controller.images()] == [
        True, False, True, False]
    controller.set_picked(0, False)
    controller.set_picked(3, True)
    controller.go_on()
    qtbot.waitUntil(lambda: controller.funnel.runs[1].job_id != first_refine
                    and not controller.tasks.busy, timeout=WAIT)
    assert controller.funnel.runs[1].seeds == [drafts.seeds[2], drafts.seeds[3]]
    with QueueStore(tmp_path / "queue.db") as store:
        qtbot.waitUntil(lambda: store.reads.get_job(first_refine).state == "cancelled",
                        timeout=WAIT)
    saved = FunnelStore(tmp_path / FUNNEL_FILE).load().funnel
    assert saved is not None and saved.runs[0].picks == [2, 3] and saved.viewing == 1


def test_a_later_stage_saved_but_never_queued_is_queued_again_from_its_kept_pictures(
        rooms, qtbot, tmp_path):
    queue, controller, _ = rooms
    funnel, step = start(cards(), FunnelSettings.model_validate({"counts": {"drafts": 2}}))
    kept = tmp_path / "start_images" / "kept.png"
    kept.parent.mkdir()
    Image.new("RGB", (64, 64)).save(kept)
    funnel = funnel.with_images(0, [str(kept), str(kept)]).pick(0, [1])  # the drafts made
    refine = next_step(funnel, [str(kept)])
    funnel = funnel.advanced(refine.run())
    FunnelStore(tmp_path / FUNNEL_FILE).save(FunnelFile(funnel=funnel))  # then the crash
    controller.start()
    qtbot.waitUntil(lambda: refine.job_id in queued(tmp_path) and not controller.tasks.busy,
                    timeout=WAIT)
    assert queued(tmp_path)[refine.job_id] == (NodeTier.quality, [step.seeds[1]])
    with QueueStore(tmp_path / "queue.db") as store:
        (item,) = store.reads.items(refine.job_id)
        config = store.reads.config_for(item)
    assert config.img2img.init_image == str(kept) and not config.txt2img.enabled


@pytest.fixture
def on_fake(qloop, qtbot, qapp, tmp_path):
    """A funnel whose queue works on the fake A1111 server."""
    from stablenew.backends.a1111 import A1111Backend
    from tests.fakes.sdwebui import FakeSDWebUI

    out = tmp_path / "out"
    queue = QueueController(db_path=tmp_path / "queue.db", output_root=out, poll_ms=50)
    funnel = FunnelController(tmp_path / "data", queue, base_config=cards,
                              output_root=lambda: out, start_queue=lambda: None)
    with FakeSDWebUI(step_ms=0).running_in_thread() as fake:
        backend = A1111Backend(fake.url, timeout=10)
        queue.start_runner(backend, node="fake", backoff_base=0.01)
        yield fake, funnel
        queue.stop_runner()
        qtbot.waitUntil(lambda: not queue.running, timeout=WAIT)
        for closing in (funnel.aclose(), queue.aclose(), backend.aclose()):
            task = asyncio.ensure_future(closing)
            qtbot.waitUntil(task.done, timeout=WAIT)
    shiboken6.delete(funnel)
    shiboken6.delete(queue)
    qapp.processEvents()


def _stage_made(qtbot, controller: FunnelController, stage: FunnelStage, count: int) -> list[str]:
    qtbot.waitUntil(lambda: controller.funnel is not None and controller.funnel.current.stage is stage
                    and controller.funnel.current.ready == count and not controller.tasks.busy,
                    timeout=WAIT)
    return [p for p in controller.funnel.current.images if p]


def test_each_stage_sends_the_picked_picture_and_the_final_only_upscales(on_fake, qtbot, tmp_path):
    fake, controller = on_fake
    controller.start()
    qtbot.waitUntil(lambda: controller.loaded, timeout=WAIT)
    controller.set_settings(FunnelSettings.model_validate({"counts": {"drafts": 3},
                                                           "draft": {"steps": 2}}))
    controller.start_funnel()
    drafts = _stage_made(qtbot, controller, FunnelStage.drafts, 3)
    seeds = controller.funnel.runs[0].seeds
    assert len(fake.requests_to("/sdapi/v1/txt2img")) == 3

    controller.set_picked(2, True)
    controller.go_on()
    (refined,) = _stage_made(qtbot, controller, FunnelStage.refine, 1)
    (sent,) = [r.payload for r in fake.requests_to("/sdapi/v1/img2img")]
    assert base64.b64decode(sent["init_images"][0]) == Path(drafts[2]).read_bytes(), \
        "the picked draft's own bytes are refined"
    assert (sent["seed"], sent["prompt"], sent["width"], sent["height"]) == (
        seeds[2], "a paper crane", 128, 128), "its seed and prompt, at the cards' size"
    assert (sent["steps"], sent["denoising_strength"]) == (20, 0.45)
    assert len(fake.requests_to("/sdapi/v1/txt2img")) == 3, "nothing drawn again from the seed"
    kept = Path(controller.funnel.runs[1].sources[0])
    assert kept.parent == tmp_path / "data" / "start_images"
    assert kept.read_bytes() == Path(drafts[2]).read_bytes()

    controller.set_picked(0, True)
    controller.go_on()
    (polished,) = _stage_made(qtbot, controller, FunnelStage.polish, 1)
    sent = fake.requests_to("/sdapi/v1/img2img")[-1].payload
    assert base64.b64decode(sent["init_images"][0]) == Path(refined).read_bytes()
    assert (sent["seed"], sent["denoising_strength"]) == (seeds[2], 0.3)

    drawn = len(fake.requests_to("/sdapi/v1/txt2img")) + len(fake.requests_to("/sdapi/v1/img2img"))
    controller.set_picked(0, True)
    controller.go_on()
    (final,) = _stage_made(qtbot, controller, FunnelStage.final, 1)
    (request,) = fake.requests_to("/sdapi/v1/extra-single-image")
    assert base64.b64decode(request.payload["image"]) == Path(polished).read_bytes()
    assert drawn == len(fake.requests_to("/sdapi/v1/txt2img")) + len(
        fake.requests_to("/sdapi/v1/img2img")), "the final is an upscale only"
    meta = read_image_metadata(final)
    assert int(meta.parsed["Seed"]) == seeds[2] and meta.parsed["Prompt"] == "a paper crane"
    assert (meta.width, meta.height) == (256, 256)


def test_the_drafts_grid_holds_as_many_tiles_a_row_as_the_tab_is_wide(rooms, qtbot):
    """Four tiles a row ran off the tab's right side in a normal window; now the rows follow
    the width, narrow or wide, and no tile is cut off."""
    from stablenew.gui.panels.funnel_panel import FunnelPanel

    _queue, controller, _ = rooms
    panel = FunnelPanel(controller)
    qtbot.addWidget(panel)
    controller.start()
    qtbot.waitUntil(lambda: controller.loaded, timeout=WAIT)
    controller.start_funnel()
    qtbot.waitUntil(lambda: len(panel.tiles) == 20, timeout=WAIT)
    for width in (420, 900):
        panel.resize(width, 700)
        panel.show()
        qtbot.waitExposed(panel)

        def fits() -> bool:
            right = max(t.geometry().right() for t in panel.tiles if t.isVisible())
            return right <= panel._scroll.viewport().width()

        qtbot.waitUntil(fits, timeout=WAIT)
        columns = len({t.geometry().x() for t in panel.tiles if t.isVisible()})
        assert columns == panel._columns
    assert panel._columns >= 4  # the wide tab holds more than the narrow one did
