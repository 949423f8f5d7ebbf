"""The stall watchdog itself: it catches a blocked Qt thread and says where, and it does not
blame the app for time the test spends in its own code."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QTimer

from tests.journeys.conftest import pump
from tests.journeys.stall_watchdog import StallWatchdog


def _block_the_qt_thread() -> None:
    time.sleep(0.1)  # as a blocking read on the Qt thread would


@pytest.fixture
def watchdog(qtbot, qt_stall_watchdog: StallWatchdog):
    """The journeys' own watchdog; the stalls these tests make on purpose do not fail them."""
    yield qt_stall_watchdog
    qt_stall_watchdog.stalls.clear()


def test_a_slot_blocking_the_qt_thread_100_ms_is_a_stall_with_its_stack(qtbot, watchdog):
    QTimer.singleShot(0, _block_the_qt_thread)
    qtbot.wait(250)

    failures = watchdog.failures()
    assert len(failures) == 1, watchdog.report(watchdog.stalls)
    assert 0.08 < failures[0].seconds < 0.5
    assert "_block_the_qt_thread" in failures[0].describe(), "the report names the blocking call"
    assert "stalled" in watchdog.report(failures)


def test_a_coroutine_blocking_the_loop_is_a_stall(qtbot, qloop, watchdog):
    async def blocking() -> None:
        _block_the_qt_thread()

    task = qloop.create_task(blocking())
    qtbot.waitUntil(task.done, timeout=2000)
    qtbot.wait(50)

    assert [s for s in watchdog.failures() if "_block_the_qt_thread" in s.describe()]


def test_a_slot_run_by_a_click_counts_too(qtbot, watchdog):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QPushButton

    button = QPushButton("Slow")
    qtbot.addWidget(button)
    button.clicked.connect(_block_the_qt_thread)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.wait(30)

    assert len(watchdog.failures()) == 1, "the user's click froze the window for 100 ms"


def test_a_slot_run_by_the_journeys_pump_counts_too(qtbot, watchdog):
    ran: list[bool] = []
    QTimer.singleShot(0, lambda: (_block_the_qt_thread(), ran.append(True)))
    pump(lambda: bool(ran), 2, "the slow slot")

    assert len(watchdog.failures()) == 1


def test_the_tests_own_time_between_waits_is_not_a_stall(qtbot, watchdog):
    qtbot.wait(30)
    time.sleep(0.12)  # the test's own work: nobody runs the loop meanwhile
    qtbot.wait(30)
    qtbot.waitUntil(lambda: time.sleep(0.12) is None, timeout=1000)  # a slow condition: the test's
    pump(lambda: time.sleep(0.12) is None, 1, "a slow condition")  # likewise in the journeys' pump
    qtbot.wait(30)

    assert watchdog.failures() == [], watchdog.report(watchdog.stalls)
    assert watchdog.longest < 0.05


def test_an_allowance_reports_a_stall_under_its_ceiling_and_fails_one_over_it(qtbot, watchdog):
    with watchdog.allow("the first window show", up_to=0.3):
        QTimer.singleShot(0, _block_the_qt_thread)
        qtbot.wait(200)
    assert len(watchdog.stalls) == 1 and watchdog.failures() == []
    assert "during the first window show (allowed up to 300 ms)" in watchdog.stalls[0].describe()

    with watchdog.allow("the first window show", up_to=0.06):
        QTimer.singleShot(0, _block_the_qt_thread)
        qtbot.wait(200)
    assert len(watchdog.failures()) == 1


def test_no_stall_when_the_loop_stays_free(qtbot, watchdog):
    QTimer.singleShot(0, lambda: time.sleep(0.02))  # short work is fine
    qtbot.wait(300)
    assert watchdog.stalls == []
    assert 0.005 < watchdog.longest < 0.05



def test_a_garbage_collection_on_the_qt_thread_is_named_as_one(watchdog):
    """A full collection holds the GIL, so the watchdog looks only once it is over (when it
    sees the stall at all): the stall is still the collector's (a journey with a big heap met
    70 ms ones), and a stall the collection does not explain is still the app's. Judged on
    recorded times, as a real collection's timing against the watching thread is luck."""
    stack = '  File "stablenew/controller/queue_activity.py", line 179, in _show'
    before = time.monotonic()
    watchdog._gc("start", {})
    time.sleep(0.07)
    watchdog._gc("stop", {})
    gap = time.monotonic() - before + 0.005  # the tick came a little before the collection
    stall = watchdog._new_stall(gap, stack, before - 0.005)
    assert (stall.during, stall.ceiling) == ("Python's garbage collection", 0.2)

    after = time.monotonic()
    time.sleep(0.07)  # a block of the app's own, after that collection
    stall = watchdog._new_stall(time.monotonic() - after, stack, after)
    assert stall.ceiling == watchdog.limit and stall.during == ""
