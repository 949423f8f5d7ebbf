"""Queue tests: the fake SD WebUI fixtures and a qasync loop for the controller and panel."""

from __future__ import annotations

import asyncio
import gc

import pytest
import shiboken6

from tests.fakes.sdwebui import fake_sdwebui, fake_sdwebui_thread  # noqa: F401  (fixtures)


@pytest.fixture
def qloop(qapp):
    """A qasync loop marked running, so tasks advance whenever Qt processes events (qtbot waits)."""
    import qasync

    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    deadline = loop.time() + 3
    while any(not t.done() for t in pending) and loop.time() < deadline:
        qapp.processEvents()
    asyncio.events._set_running_loop(None)
    loop._QEventLoop__is_running = False  # already_running loops are never "stopped" by qasync
    loop.close()
    asyncio.set_event_loop(None)
    # qasync's close() only flags its timer object as stopped; its Qt timers stay registered.
    # Delete it here, on the Qt thread: if the garbage collector happened to destroy it from
    # another thread (a fake server's, a worker's), Qt could not unregister those timers and
    # a later test's event processing would fire one into freed memory (a segfault).
    shiboken6.delete(loop._timer)
    del loop
    gc.collect()  # other Qt objects of this test die now, on this thread, too
