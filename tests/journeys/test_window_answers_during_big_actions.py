"""Journeys: the actions whose work grows with what they touch keep the window answering: no
turn of the Qt loop over 50 ms while the biggest learning grid is built and filled (with the
stall watchdog's timing of that action; see stall_watchdog.py)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame

from stablenew.learning.plans import MAX_IMAGES_PER_VALUE, MAX_VALUES
from tests.journeys.conftest import save_server
from tests.journeys.test_ratings_after_restart import type_into


def test_the_biggest_learning_grid_is_built_and_filled_without_freezing(qtbot, journey, fake_process):
    save_server(fake_process(step_ms=2).url)
    window = journey.open()
    type_into(qtbot, window, "txt2img.prompt", "a fox in snow")
    window.pipeline_panel.editor("txt2img.width").set_value(64)
    window.pipeline_panel.editor("txt2img.height").set_value(64)
    panel = window.learning_panel
    window.work_tabs.setCurrentWidget(panel)
    panel.mode_box.setCurrentIndex(panel.mode_box.findData("active"))
    panel.parameter_box.setCurrentIndex(panel.parameter_box.findData("steps"))
    values = [str(steps) for steps in range(2, 2 + MAX_VALUES)]
    panel.values_edit.clear()
    qtbot.keyClicks(panel.values_edit, ", ".join(values))
    panel.images_spin.setValue(MAX_IMAGES_PER_VALUE)
    learning, view = window.session.learning, panel.comparison
    cards = MAX_VALUES * MAX_IMAGES_PER_VALUE  # 10 × 3: the largest grid a learning run has

    with journey.watchdog.timing(f"building and filling a grid of {cards} cards") as span:
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: learning.runs.running, timeout=5000)
        qtbot.waitUntil(lambda: not view.building, timeout=10000)
        qtbot.waitUntil(lambda: not learning.runs.running, timeout=60000)
        qtbot.waitUntil(lambda: all(not c.image.pixmap().isNull() for c in _cells(view)), timeout=10000)
    assert learning.runs.run_result.state.value == "completed", learning.runs.run_result.message
    assert len(_cells(view)) == cards
    assert not span.failures(), span.describe()

    # Across the whole first row and back by keyboard, rating each image on the way.
    view.setFocus()
    with journey.watchdog.timing("moving over the grid and rating") as span:
        for column in range(MAX_VALUES):
            qtbot.keyClick(view, Qt.Key.Key_4)
            if column < MAX_VALUES - 1:
                qtbot.keyClick(view, Qt.Key.Key_Right)
        qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.selected == (1, MAX_VALUES - 1)
    assert [c for c in _cells(view) if c.property("selected")] == [view._cards[(1, MAX_VALUES - 1)]]
    qtbot.waitUntil(lambda: all(learning.runs.run_result.cell(0, c).rating == 4 for c in range(MAX_VALUES)),
                    timeout=10000)
    assert not span.failures(), span.describe()


def _cells(view) -> list[QFrame]:
    return view.findChildren(QFrame, "LearningCell")
