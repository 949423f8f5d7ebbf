"""The command bar with queued work: it says what runs (shortening the name before the counts),
Stop offers its two choices there, and a Run's own state takes the bar back."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from stablenew.gui.command_bar import CommandBar

NAME = "a lighthouse on a cliff at dusk, storm clouds, crashing waves"


_hosts: list[QWidget] = []


def _bar(qtbot, width: int) -> CommandBar:
    host = QWidget()
    qtbot.addWidget(host)
    _hosts.append(host)  # held: qtbot keeps only a weak reference
    bar = CommandBar(host, host)
    bar.resize(width, 48)
    host.resize(width, 48)
    host.show()
    qtbot.waitExposed(host)
    return bar


def test_queued_work_fills_the_bar_and_shortens_the_name_first(qtbot):
    bar = _bar(qtbot, 1400)
    bar.show_queue_work(NAME, "image 2 of 5", "about 10 s left")
    full = f"Running “{NAME}” · image 2 of 5 · about 10 s left"
    qtbot.waitUntil(lambda: bar.state_label.text() == full, timeout=2000)
    assert bar.stop_button.isEnabled() and bar.run_button.isEnabled()
    assert bar.state_label.toolTip() == full

    # Widths for the label, from its own font: the rest of the bar keeps its size.
    metrics, label = bar.state_label.fontMetrics(), bar.state_label
    others = bar.width() - label.width()
    bar.resize(others + metrics.horizontalAdvance("Running “” · image 2 of 5 · about 10 s left")
               + 100, 48)
    qtbot.waitUntil(lambda: "…" in bar.state_label.text(), timeout=2000)
    assert bar.state_label.text().endswith("” · image 2 of 5 · about 10 s left")
    assert bar.state_label.toolTip() == full, "the whole of it on hover"

    # Narrower still: the time left goes (the status bar shows it) before the image count.
    bar.resize(others + metrics.horizontalAdvance("Running “” · image 2 of 5") + 70, 48)
    qtbot.waitUntil(lambda: "about 10 s left" not in bar.state_label.text(), timeout=2000)
    assert bar.state_label.text().endswith("” · image 2 of 5"), bar.state_label.text()


def test_stop_offers_two_choices_for_queued_work_and_stays_one_click_for_a_run(qtbot):
    bar = _bar(qtbot, 1400)
    stops, jobs, pauses = [], [], []
    bar.stop_requested.connect(lambda: stops.append(1))
    bar.stop_job_requested.connect(lambda: jobs.append(1))
    bar.pause_queue_requested.connect(lambda: pauses.append(1))
    bar.stop_requested.connect(bar.show_stop_menu)  # as the window does for queued work
    bar.show_queue_work("a fox", "image 1 of 3", "a few seconds left")

    qtbot.mouseClick(bar.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(bar.stop_menu.isVisible, timeout=2000)
    menu = bar.stop_menu
    qtbot.mouseClick(menu, Qt.MouseButton.LeftButton,
                     pos=menu.actionGeometry(bar.stop_job_action).center())
    assert jobs == [1] and pauses == []

    # A Run starts: the bar is the Run's; Stop stops it, no menu.
    bar.set_run_state("running")
    assert bar.state_label.text() == "Running…" and not bar.showing_queue_work
    qtbot.mouseClick(bar.stop_button, Qt.MouseButton.LeftButton)
    assert not bar.stop_menu.isVisible()
    bar.set_run_state("idle")
    assert bar.state_label.text().startswith("Running “a fox”")  # the queue still works
    bar.show_queue_work(None)
    assert bar.state_label.text() == "" and not bar.stop_button.isEnabled()


def test_the_queue_count_says_when_the_queue_is_paused(qtbot):
    bar = _bar(qtbot, 1000)
    bar.set_queue_count(4, paused=True)
    assert bar.queue_count.text() == "Queue: 4 · paused"
    bar.set_queue_count(4)
    assert bar.queue_count.text() == "Queue: 4"
