"""A learning run from the window's session is a queue job like Run: in the queue store with its
learning run id, interactive (a pause does not hold it back), each image recorded once, and its
Cancel stops the job down to the server."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from PySide6.QtWidgets import QApplication

from stablenew.cluster.jobs import INTERACTIVE_PRIORITY, ItemState, JobKind
from stablenew.cluster.queue_store import QueueStore
from stablenew.learning.runs import RunState
from stablenew.learning.store import LearningStore
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, save_settings
from tests.learning.conftest import small_config


def _session(qtbot, url: str):
    from stablenew.controller.app_controller import start_up
    from stablenew.controller.session import Session

    save_settings(AppPaths.default(), AppSettings(server_url=url, learning_mode="active"))
    session = Session(start_up())
    session.start()
    session.open_rooms()
    qtbot.waitUntil(lambda: session.server.state == "connected", timeout=60000)
    assert session.learning is not None and session.queue is not None
    return session


def _close(qtbot, session) -> None:
    closing = asyncio.ensure_future(session.aclose())
    qtbot.waitUntil(closing.done, timeout=15000)
    closing.result()


def _queue_store() -> QueueStore:
    return QueueStore(AppPaths.default().database_file)


def _learning_store() -> LearningStore:
    return LearningStore(AppPaths.default().database_file)


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 2.0}], indirect=True)
def test_a_learning_run_is_an_interactive_queue_job_recorded_once(qtbot, qloop,
                                                                 fake_sdwebui_thread):
    session = _session(qtbot, fake_sdwebui_thread.url)
    learning = session.learning
    try:
        stored = []
        learning.record_stored.connect(stored.append)
        gallery_paths = []
        session.queued_image_saved.connect(lambda r: gallery_paths.append(str(r.path)))
        session.queue.edits.pause()  # a pause holds batches back, not the comparison the user waits for
        qtbot.waitUntil(lambda: session.queue.paused, timeout=5000)
        assert learning.runs.start_learning_run("steps", "3, 5, 7", images_per_value=2, pack="Foxes",
                                           base=small_config())
        qtbot.waitUntil(lambda: not learning.runs.running, timeout=20000)
        result = learning.runs.run_result
        assert result.state is RunState.completed, (result.message, learning.error)
        assert all(c.path for c in result.cells) and len(result.cells) == 6
        assert fake_sdwebui_thread.images_generated == 6

        with _queue_store() as store:
            (job,) = store.reads.list_jobs()
            items = store.reads.items(job.id)
        assert job.id == result.job_id and job.kind is JobKind.learning
        assert job.origin.learning_run_id == result.run_id and job.origin.pack == "Foxes"
        assert job.priority == INTERACTIVE_PRIORITY
        assert job.node_pin == session.server.node_name, "pinned to the window's server"
        assert [i.state for i in items] == [ItemState.done] * 6
        # Every planned cell is one item with its exact seed and its place in the grid.
        assert [(i.seed, i.variant.id) for i in items] == [
            (result.seeds[row], f"{column}:{row}") for column in range(3) for row in range(2)]
        outputs = sorted(o for i in items for o in i.outputs)
        assert sorted(c.path for c in result.cells) == outputs

        # Each saved image is ONE learning record, tagged with the run and its cell.
        qtbot.waitUntil(lambda: len(stored) >= 6, timeout=5000)
        # The job is over, so every record hook has been called. A no-op through the store's
        # writer (first in, first out) finishes after every write they queued; what those
        # writes announced is then delivered by one pass of the event loop.
        learning.worker.submit(lambda _store: None).result(timeout=5)
        QApplication.processEvents()
        assert Counter(r.path for r in stored) == Counter({path: 1 for path in outputs})
        with _learning_store() as store:
            records = store.records(learning_run_id=result.run_id)
            every = store.records()
            saved = store.load_run(result.run_id)
        assert len(every) == 6 and sorted(r.path for r in records) == outputs
        by_path = {r.path: r for r in records}
        for cell in result.cells:
            record = by_path[cell.path]
            assert record.variant_id == f"{cell.column}:{cell.row}" and record.pack == "Foxes"
            assert record.seed == cell.seed and record.config.txt2img.steps == int(cell.value)
            assert record.job_id and record.job_id.startswith(f"{job.id}/")
        assert saved["state"] == "completed" and saved["job_id"] == job.id
        assert sorted(gallery_paths) == outputs, "the gallery shows them as any queued image"
        # A pick in the grid rates the record the queue made.
        learning.runs.pick_best(1, 2)
        qtbot.waitUntil(lambda: learning.runs.run_result.cell(1, 2).rating == 5, timeout=5000)
        with _learning_store() as store:
            assert store.get(result.cell(1, 2).path).rating == 5
    finally:
        _close(qtbot, session)


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 40.0}], indirect=True)
def test_cancel_in_the_learning_panel_stops_the_job_and_interrupts_the_server(
        qtbot, qloop, fake_sdwebui_thread):
    from stablenew.gui.panels.learning_panel import LearningPanel

    session = _session(qtbot, fake_sdwebui_thread.url)
    learning = session.learning
    panel = LearningPanel(learning)
    qtbot.addWidget(panel)
    try:
        base = small_config(**{"txt2img.steps": 30})
        assert learning.runs.start_learning_run("cfg", "3, 5, 7, 9", images_per_value=2, base=base)
        # Once the first image is done (the bar moved), the second one is at the server.
        qtbot.waitUntil(lambda: learning.runs.progress[1] > 0, timeout=15000)
        started = time.monotonic()
        panel.stop_button.click()
        qtbot.waitUntil(lambda: not learning.runs.running, timeout=10000)
        assert time.monotonic() - started < 5, "the image at the server was not waited for"
        assert fake_sdwebui_thread.interrupts, "the interrupt reached the server"
        result = learning.runs.run_result
        assert result.state is RunState.cancelled
        assert 1 <= sum(1 for c in result.cells if c.path) < 8
        with _queue_store() as store:
            (job,) = store.reads.list_jobs()
            states = Counter(i.state for i in store.reads.items(job.id))
        assert job.origin.learning_run_id == result.run_id
        assert states[ItemState.cancelled] >= 1 and not states[ItemState.queued]
        assert states[ItemState.done] == sum(1 for c in result.cells if c.path)
        with _learning_store() as store:
            assert store.load_run(result.run_id)["state"] == "cancelled"
    finally:
        _close(qtbot, session)
