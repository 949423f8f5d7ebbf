"""Journeys: the actions whose work grows with what they touch keep the window answering: no
turn of the Qt loop over 50 ms while the biggest learning grid is built and filled, or while the
user types into a card with the variants on (each with the stall watchdog's timing of that
action; see stall_watchdog.py)."""

from __future__ import annotations

import threading

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QFrame

from stablenew.controller import card_fields
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


def test_typing_into_a_card_builds_no_config_on_the_qt_thread_and_run_makes_the_count(
        qtbot, journey, fake_process, monkeypatch):
    fake = fake_process(step_ms=3)
    save_server(fake.url)
    window = journey.open()
    for path, value in (("txt2img.steps", 3), ("txt2img.width", 64), ("txt2img.height", 64)):
        window.pipeline_panel.editor(path).set_value(value)
    # Variants on with no template of their own: the card's prompt is the template.
    window.work_tabs.setCurrentWidget(window.variants_panel)
    variants = window.variants_panel
    qtbot.waitUntil(variants.enabled_box.isVisible, timeout=5000)
    box = variants.enabled_box
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    assert box.isChecked() and variants.template.toPlainText() == ""

    built_on: list[bool] = []  # for each config built from the cards: on the Qt thread?
    build = card_fields.build_config

    def noting_the_thread(*args, **kwargs):
        built_on.append(threading.current_thread() is threading.main_thread())
        return build(*args, **kwargs)

    monkeypatch.setattr(card_fields, "build_config", noting_the_thread)
    window.work_tabs.setCurrentWidget(window.pipeline_panel)
    prompt = window.pipeline_panel.editor("txt2img.prompt").widget
    prompt.setFocus()
    prompt.clear()
    text = "a {red|blue} fox, soft light, highly detailed fur"
    with journey.watchdog.timing(f"typing {len(text)} keys into the prompt") as span:
        for key in text:  # one key a turn, as a user types
            qtbot.keyClick(prompt, key)
    assert prompt.toPlainText() == text
    assert not span.failures(), span.describe()
    assert True not in built_on, f"{built_on.count(True)} configs built on the Qt thread for {len(text)} keys"
    qtbot.waitUntil(lambda: "make 2 images in 2 variants" in variants.count_label.text(), timeout=10000)
    assert built_on, "the count's config is built, on its worker"

    # More variants typed, and Run pressed at once: the run makes what the tab then says.
    saved: list = []
    window.session.pipeline.add_record_hook(saved.append)
    qtbot.keyClicks(prompt, " in {snow|rain}")
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "running", timeout=10000)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=60000)
    assert window.session.pipeline.error is None, window.session.pipeline.error
    assert "make 4 images in 4 variants" in variants.count_label.text()
    assert len(saved) == 4
    made = {record.config.txt2img.prompt for record in saved}
    assert made == {f"a {colour} fox, soft light, highly detailed fur in {weather}"
                    for colour in ("red", "blue") for weather in ("snow", "rain")}


