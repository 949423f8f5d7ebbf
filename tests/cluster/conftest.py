"""Cluster tests: a qasync loop for the nodes controller and panel."""

from __future__ import annotations

import asyncio

import pytest


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
