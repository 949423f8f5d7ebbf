"""Shared test setup: offscreen Qt, config/data folders isolated per test, one qasync loop."""

from __future__ import annotations

import asyncio
import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# hypothesis is imported now, not at the end of the session: its pytest plugin imports it lazily
# in its terminal summary, and pytest then parses (assert-rewrites) its modules. After Qt and
# worker threads have run, CPython 3.11.7 can fail that parse with "SystemError: AST constructor
# recursion depth mismatch" (cpython gh-106905), turning a green run's exit code to 1.
import hypothesis  # noqa: E402,F401
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own StableNew config/data/output folders under tmp_path."""
    home = tmp_path / "stablenew-home"
    monkeypatch.setenv("STABLENEW_HOME", str(home))
    return home


@pytest.fixture
def qloop(qapp):
    """A qasync loop marked running, so controller tasks advance whenever Qt processes events
    (qtbot waits). The one loop fixture for every room's Qt tests."""
    import qasync
    import shiboken6

    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    deadline = loop.time() + 30  # a ceiling: cancelled tasks end within a few turns of the loop
    while any(not t.done() for t in pending) and loop.time() < deadline:
        qapp.processEvents()
    asyncio.events._set_running_loop(None)
    loop._QEventLoop__is_running = False  # already_running loops are never "stopped" by qasync
    loop.close()
    asyncio.set_event_loop(None)
    # qasync's close() only flags its timer object as stopped; its Qt timers stay registered.
    # Delete it here, on the Qt thread: if the garbage collector destroyed it later from another
    # thread (a fake server's, a worker's), Qt could not unregister those timers and a later
    # test's event processing would fire one into freed memory (a segfault).
    shiboken6.delete(loop._timer)
    del loop
    gc.collect()


@pytest.fixture(autouse=True)
def _qt_objects_die_on_the_qt_thread(request):
    """After a test that used Qt, collect its garbage now, on the Qt thread.

    Otherwise a cycle holding a QObject may be collected later by whichever thread happens to
    trigger the garbage collector (a fake server's thread in a later test), and Qt objects
    destroyed off their thread crash the process.
    """
    yield
    if {"qapp", "qtbot", "qloop"} & set(request.fixturenames):
        gc.collect()
