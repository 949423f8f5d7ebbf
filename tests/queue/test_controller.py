"""QueueController and QueuePanel on a qasync loop: model, counts, operations, drag and drop,
a batch finishing against the fake server, and changes made by another process."""

from __future__ import annotations

import asyncio

import pytest
import shiboken6
from PySide6.QtCore import QModelIndex, Qt

from stablenew.cluster.jobs import ItemState
from stablenew.cluster.queue_store import QueueStore
from stablenew.controller.queue_controller import (
    IdRole,
    KindRole,
    ProgressRole,
    QueueController,
    StateRole,
    format_eta,
)
from stablenew.pipeline.config import PipelineConfig

WAIT = 5000


def cfg(count: int = 1, prompt: str = "a fox", steps: int = 4) -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.prompt": prompt, "txt2img.batch_count": count, "txt2img.steps": steps,
        "txt2img.width": 64, "txt2img.height": 64, "txt2img.seed": 1,
        "txt2img.sampler": "Euler a", "txt2img.scheduler": "Automatic"})


@pytest.fixture
def db(tmp_path):
    return tmp_path / "queue.db"


@pytest.fixture
def controller(qloop, qtbot, qapp, db, tmp_path):
    c = QueueController(db_path=db, output_root=tmp_path / "out", poll_ms=50)
    yield c
    c.stop_runner()
    qtbot.waitUntil(lambda: not c.running, timeout=WAIT)
    closing = asyncio.ensure_future(c.aclose())
    qtbot.waitUntil(closing.done, timeout=WAIT)
    # Deleted here, on the Qt thread, not whenever (and wherever) the garbage collector runs.
    shiboken6.delete(c)
    qapp.processEvents()


def close(backend, qtbot) -> None:
    task = asyncio.ensure_future(backend.aclose())
    qtbot.waitUntil(task.done, timeout=WAIT)


def job_ids(controller: QueueController) -> list[str]:
    return [j.id for j in controller.model.jobs()]


def test_add_fills_the_model_and_the_count(controller, qtbot):
    with qtbot.waitSignal(controller.count_changed, timeout=WAIT,
                          check_params_cb=lambda n: n == 3):
        controller.add_config(cfg(3), name="foxes")
    model = controller.model
    assert model.rowCount() == 1
    first = model.index(0, 0)
    assert model.data(first) == "foxes"
    assert model.data(model.index(0, 1)) == "0/3"
    assert model.data(model.index(0, 2)) == "Waiting"
    assert model.data(first, KindRole) == "job" and model.data(first, StateRole) == "queued"
    assert model.data(first, ProgressRole) == 0.0
    assert "foxes" in model.data(first, Qt.ItemDataRole.ToolTipRole)
    # Expanding a job loads its images.
    assert model.canFetchMore(first)
    model.fetchMore(first)
    qtbot.waitUntil(lambda: model.rowCount(first) == 3, timeout=WAIT)
    child = model.index(2, 0, first)
    assert model.parent(child) == first.siblingAtColumn(0)
    assert model.data(child) == "Image 3 · seed 3"
    assert model.data(child, KindRole) == "item"
    assert model.rowCount(child) == 0


def test_operations_reach_the_store(controller, qtbot, db):
    for name in ("a", "b", "c"):
        controller.add_config(cfg(2, prompt=name), name=name)
    qtbot.waitUntil(lambda: controller.model.rowCount() == 3 and controller.count == 6,
                    timeout=WAIT)
    a, b, c = job_ids(controller)
    with qtbot.waitSignal(controller.paused_changed, timeout=WAIT):
        controller.edits.pause()
    assert controller.paused
    controller.edits.resume()
    qtbot.waitUntil(lambda: not controller.paused, timeout=WAIT)
    controller.edits.bump_priority(c)
    qtbot.waitUntil(lambda: job_ids(controller) == [c, a, b], timeout=WAIT)
    controller.edits.move_job(b, 0)  # within the same priority: b before a
    qtbot.waitUntil(lambda: job_ids(controller) == [c, b, a], timeout=WAIT)
    controller.cancel_job(a)
    qtbot.waitUntil(lambda: controller.count == 4, timeout=WAIT)
    controller.edits.retry_job(a)
    qtbot.waitUntil(lambda: controller.count == 6, timeout=WAIT)
    with QueueStore(db) as store:
        item = store.reads.items(b)[0]
    controller.edits.cancel_item(item.id)
    qtbot.waitUntil(lambda: controller.count == 5, timeout=WAIT)
    controller.edits.retry_item(item.id)
    qtbot.waitUntil(lambda: controller.count == 6, timeout=WAIT)
    controller.cancel_job(c)
    qtbot.waitUntil(lambda: controller.count == 4, timeout=WAIT)
    controller.edits.clear_finished()
    qtbot.waitUntil(lambda: job_ids(controller) == [b, a], timeout=WAIT)


def test_drag_and_drop_reorders_jobs(controller, qtbot):
    for name in ("a", "b", "c"):
        controller.add_config(cfg(1, prompt=name), name=name)
    qtbot.waitUntil(lambda: controller.model.rowCount() == 3, timeout=WAIT)
    a, b, c = job_ids(controller)
    model = controller.model
    data = model.mimeData([model.index(2, 0)])  # drag c ...
    assert model.canDropMimeData(data, Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    # ... to the top; False tells the view not to delete the dragged row itself.
    assert model.dropMimeData(data, Qt.DropAction.MoveAction, 0, 0, QModelIndex()) is False
    qtbot.waitUntil(lambda: job_ids(controller) == [c, a, b], timeout=WAIT)
    data = model.mimeData([model.index(0, 0)])
    model.dropMimeData(data, Qt.DropAction.MoveAction, -1, -1, QModelIndex())  # to the end
    qtbot.waitUntil(lambda: job_ids(controller) == [a, b, c], timeout=WAIT)
    assert not model.canDropMimeData(data, Qt.DropAction.MoveAction, 0, 0, model.index(0, 0))


def test_changes_from_another_process_show_up(controller, qtbot, db):
    controller.start_polling()
    qtbot.waitUntil(lambda: controller.count == 0 and controller._revision >= 0, timeout=WAIT)
    with QueueStore(db) as other:  # as `stablenew queue add` in a terminal would
        other.add_job(cfg(4), name="from the terminal")
    qtbot.waitUntil(lambda: controller.count == 4, timeout=WAIT)
    assert controller.model.data(controller.model.index(0, 0)) == "from the terminal"


def test_a_batch_runs_to_the_end_and_raises_a_notification(controller, qtbot, db):
    from stablenew.backends.a1111 import A1111Backend
    from tests.fakes.sdwebui import FakeSDWebUI

    with FakeSDWebUI(step_ms=0).running_in_thread() as fake:
        backend = A1111Backend(fake.url, timeout=10)
        controller.add_config(cfg(3), name="foxes")
        qtbot.waitUntil(lambda: controller.count == 3, timeout=WAIT)
        with qtbot.waitSignal(controller.batch_finished, timeout=10_000) as finished:
            controller.start_runner(backend, node="fake", backoff_base=0.01)
        assert finished.args == ["Batch “foxes” finished: 3 images saved."]
        qtbot.waitUntil(lambda: controller.count == 0, timeout=WAIT)
        model = controller.model
        assert model.data(model.index(0, 2)) == "Done"
        # Each finished image says which node made it (which GPU, on a cluster); the items are
        # loaded when the job is unfolded.
        controller.load_items(model.job_at(0).id)
        qtbot.waitUntil(lambda: model.rowCount(model.index(0, 0)) == 3, timeout=WAIT)
        job = model.index(0, 0)
        assert [model.data(model.index(r, 3, job)) for r in range(3)] == ["fake"] * 3
        assert controller.running
        with qtbot.waitSignal(controller.running_changed, timeout=WAIT):
            controller.stop_runner()
        assert fake.images_generated == 3
        close(backend, qtbot)


def test_cancel_in_flight_from_the_window(controller, qtbot, db):
    from stablenew.backends.a1111 import A1111Backend
    from tests.fakes.sdwebui import FakeSDWebUI

    with FakeSDWebUI(step_ms=100).running_in_thread() as fake:
        backend = A1111Backend(fake.url, timeout=10)
        controller.add_config(cfg(1, steps=50), name="slow")
        qtbot.waitUntil(lambda: controller.count == 1, timeout=WAIT)
        controller.start_runner(backend, node="fake")
        qtbot.waitUntil(lambda: fake.current_task is not None, timeout=WAIT)
        # Live progress of the running image moves the job's bar.
        job_row = controller.model.index(0, 1)
        qtbot.waitUntil(lambda: 0 < (controller.model.data(job_row, ProgressRole) or 0) < 1,
                        timeout=WAIT)
        (job_id,) = job_ids(controller)
        controller.cancel_job(job_id)
        qtbot.waitUntil(lambda: len(fake.interrupts) >= 1, timeout=WAIT)
        qtbot.waitUntil(lambda: controller.count == 0, timeout=WAIT)
        with QueueStore(db) as store:
            assert store.reads.items(job_id)[0].state is ItemState.cancelled
        controller.stop_runner()
        qtbot.waitUntil(lambda: not controller.running, timeout=WAIT)
        close(backend, qtbot)


def test_errors_become_visible_state(controller, qtbot):
    with qtbot.waitSignal(controller.error_changed, timeout=WAIT) as raised:
        controller.cancel_job("nope")
    assert "no job nope" in raised.args[0].message
    controller.clear_error()
    assert controller.error is None


@pytest.fixture
def panel(controller, qapp):
    from stablenew.gui.panels.queue_panel import QueuePanel

    view = QueuePanel(controller)
    view.show()
    yield view
    # Views go before the controller they bind to (as the window closes them).
    view.close()
    shiboken6.delete(view)
    qapp.processEvents()


def test_panel_shows_jobs_and_offers_the_operations(controller, panel, qtbot):
    assert panel.empty_label.isVisible()
    controller.add_config(cfg(2), name="foxes")
    qtbot.waitUntil(lambda: panel.tree.isVisible() and "2 images" in panel.count_label.text(),
                    timeout=WAIT)
    index = controller.model.index(0, 0)
    actions = {a.text(): a for a in panel.build_menu(index).actions() if a.text()}
    assert {"Cancel job", "Retry failed images", "Raise priority", "Move to top"} <= set(actions)
    actions["Raise priority"].trigger()
    qtbot.waitUntil(lambda: controller.model.jobs()[0].priority == 1, timeout=WAIT)
    panel.tree.expand(index)
    qtbot.waitUntil(lambda: controller.model.rowCount(controller.model.index(0, 0)) == 2,
                    timeout=WAIT)
    child = controller.model.index(0, 0, controller.model.index(0, 0))
    item_actions = {a.text(): a for a in panel.build_menu(child).actions() if a.text()}
    assert item_actions["Cancel image"].isEnabled() and not item_actions["Retry image"].isEnabled()
    item_actions["Cancel image"].trigger()
    qtbot.waitUntil(lambda: "1 image " in panel.count_label.text(), timeout=WAIT)
    panel.pause_button.click()
    qtbot.waitUntil(lambda: controller.paused, timeout=WAIT)
    assert panel.pause_button.text() == "Resume queue"
    panel.tree.selectAll()
    jobs, items = panel.selected()
    assert jobs == [controller.model.data(controller.model.index(0, 0), IdRole)]
    panel.grab()  # paints the progress bars without error
    actions["Cancel job"].trigger()
    qtbot.waitUntil(lambda: "Nothing waiting" in panel.count_label.text(), timeout=WAIT)


def test_format_eta():
    assert format_eta(None) == ""
    assert format_eta(42) == "42 s"
    assert format_eta(125) == "2 min 05 s"
    assert format_eta(7260) == "2 h 01 min"


def test_two_callers_at_once_share_one_store(controller, qtbot, monkeypatch):
    """The store keeps one connection per process: a refresh and an operation asking for it
    while it is still being opened must get the same one, not open (and leak) a second."""
    import threading

    from stablenew.controller import queue_controller

    opened: list[QueueStore] = []
    first_opening, release = threading.Event(), threading.Event()

    class SlowStore(QueueStore):
        def __init__(self, *args, **kwargs):
            opened.append(self)
            first_opening.set()
            release.wait(5)  # held open until the second caller has asked
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(queue_controller, "QueueStore", SlowStore)
    asked = []

    async def ask():
        asked.append(True)  # set in the same step as store() reaches its first await
        return await controller.store()

    first = asyncio.ensure_future(ask())
    qtbot.waitUntil(first_opening.is_set, timeout=WAIT)
    second = asyncio.ensure_future(ask())
    qtbot.waitUntil(lambda: len(asked) == 2, timeout=WAIT)
    release.set()
    qtbot.waitUntil(lambda: first.done() and second.done(), timeout=WAIT)
    for store in opened:
        if store is not controller._store:
            store.close()  # the one that leaked (closed here so the test leaks nothing)
    assert len(opened) == 1 and first.result() is second.result()
