"""QueueController.aclose leaves nothing behind: no poll or refresh task pending or created
later, no timer restarted by a late runner event (the app printed "coroutine
'QueueController._maybe_refresh' was never awaited" and "Task was destroyed but it is pending"
when it quit while the queue was polling)."""

from __future__ import annotations

import asyncio

import shiboken6

from stablenew.controller.queue_controller import QueueController
from stablenew.pipeline.config import PipelineConfig

WAIT = 5000


def _ours(loop) -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks(loop)
            if not t.done() and (t.get_name() or "").startswith("queue-")]


def test_aclose_while_polling_leaves_no_task_and_starts_none(qloop, qtbot, qapp, tmp_path):
    c = QueueController(db_path=tmp_path / "queue.db", output_root=tmp_path / "out", poll_ms=5)
    spawned: list[str] = []
    spawn = c.tasks.spawn

    def counting_spawn(coro, *, name="", on_error=None):
        spawned.append(name)
        return spawn(coro, name=name, on_error=on_error)

    c.tasks.spawn = counting_spawn  # type: ignore[method-assign]
    config = PipelineConfig().with_changes({"txt2img.prompt": "a fox", "txt2img.batch_count": 2})
    with qtbot.waitSignal(c.count_changed, timeout=WAIT):
        c.add_config(config, name="foxes")
    c.start_polling()
    qtbot.waitUntil(lambda: spawned.count("queue-poll") >= 3, timeout=WAIT)

    # Another process changes the queue, so a poll in flight now wants a refresh.
    c.add_config(config, name="more foxes")
    closing = asyncio.ensure_future(c.aclose())
    qtbot.waitUntil(closing.done, timeout=WAIT)
    assert closing.exception() is None
    assert not c.tasks.busy and _ours(qloop) == []
    after_close = len(spawned)

    # A late runner event, a poll tick or a refresh request after close starts nothing.
    c._on_queue_event(object())
    c._check_revision()
    c.refresh()
    c.start_polling()
    qtbot.wait(60)  # a dozen poll intervals and a coalescing interval
    assert len(spawned) == after_close and _ours(qloop) == []
    assert not c._poll.isActive() and not c._coalesce.isActive()
    shiboken6.delete(c)
    qapp.processEvents()


def test_quitting_the_app_stops_polling_at_once(qloop, qtbot, qapp, tmp_path):
    c = QueueController(db_path=tmp_path / "queue.db", output_root=tmp_path / "out", poll_ms=5)
    c.start_polling()
    qtbot.waitUntil(lambda: c._store is not None and c._poll.isActive(), timeout=WAIT)
    before = set(_ours(qloop))  # a poll may be in flight; aclose awaits it
    qapp.aboutToQuit.emit()  # what QApplication.quit() sends before the loop stops
    assert not c._poll.isActive()
    c._check_revision()
    c.refresh()
    assert set(_ours(qloop)) <= before
    closing = asyncio.ensure_future(c.aclose())
    qtbot.waitUntil(closing.done, timeout=WAIT)
    assert closing.exception() is None and _ours(qloop) == []
    shiboken6.delete(c)
    qapp.processEvents()


def test_aclose_still_closes_the_store_when_the_loop_has_stopped(qapp, tmp_path):
    # What QApplication.quit() leaves: qasync steps the shutdown with no running loop.
    from stablenew.cluster.queue_store import QueueStore

    c = QueueController(db_path=tmp_path / "queue.db", output_root=tmp_path / "out")
    store = QueueStore(tmp_path / "queue.db")
    c._store = store
    closing = c.aclose()
    try:
        closing.send(None)
    except StopIteration:
        pass
    else:  # pragma: no cover - it must finish without a loop
        closing.close()
        raise AssertionError("aclose waited on a loop that is not running")
    assert c._store is None
    closed = False
    try:
        store.reads.revision()
    except Exception:
        closed = True
    assert closed
    shiboken6.delete(c)
