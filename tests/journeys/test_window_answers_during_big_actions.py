"""Journeys: the actions whose work grows with what they touch keep the window answering: no
turn of the Qt loop over 50 ms while the biggest learning grid is built and filled, while a
preset that changes every card field is applied, or while the user types into a card with the
variants on (each with the stall watchdog's timing of that action; see stall_watchdog.py)."""

from __future__ import annotations

import re
import threading

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QComboBox, QFrame, QLineEdit

from stablenew.controller import card_fields
from stablenew.gui.panels import learning_comparison
from stablenew.learning.plans import MAX_IMAGES_PER_VALUE, MAX_VALUES
from tests.journeys.conftest import save_server
from tests.journeys.test_preset_after_restart import library_button, preset_row
from tests.journeys.test_ratings_after_restart import type_into

#: Fields a preset saved from the cards leaves out (prompts and seed stay the user's).
_NOT_IN_A_PRESET = re.compile(r"(prompt|negative_prompt|seed)$")


def test_the_biggest_learning_grid_is_built_and_filled_without_freezing(qtbot, journey, fake_process,
                                                                         monkeypatch):
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
    read_on: list[bool] = []  # for each image the grid reads: on the Qt thread?
    read = learning_comparison.read_thumbnail

    def noting_the_thread(source):
        read_on.append(threading.current_thread() is threading.main_thread())
        return read(source)

    monkeypatch.setattr(learning_comparison, "read_thumbnail", noting_the_thread)

    with journey.watchdog.timing(f"building and filling a grid of {cards} cards") as span:
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: learning.runs.running, timeout=5000)
        qtbot.waitUntil(lambda: not view.building, timeout=10000)
        qtbot.waitUntil(lambda: not learning.runs.running, timeout=60000)
        qtbot.waitUntil(lambda: all(not c.image.pixmap().isNull() for c in _cells(view)), timeout=10000)
    assert learning.runs.run_result.state.value == "completed", learning.runs.run_result.message
    assert len(_cells(view)) == cards
    assert not span.failures(), span.describe()
    assert read_on == [False] * cards, "each image is read once, off the Qt thread"

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


def test_a_preset_changing_every_card_field_is_applied_without_freezing(qtbot, journey, fake_process):
    save_server(fake_process(step_ms=5).url)
    window = journey.open()
    pipeline, panel = window.session.pipeline, window.pipeline_panel
    defaults = pipeline.default_values()
    look = _every_field_changed(pipeline, panel)
    assert len(look) > 40, sorted(look)  # nearly every field of the four cards

    qtbot.mouseClick(library_button(window, "Save current…"), Qt.MouseButton.LeftButton)
    dialog = window.sidebar.name_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    name_box = dialog.findChild(QLineEdit)
    qtbot.keyClicks(name_box, "Everything")
    qtbot.keyClick(name_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: preset_row(window, "Everything") >= 0, timeout=5000)
    panel.set_values({path: defaults[path] for path in look})
    assert _shown(panel, look) != look

    presets = window.sidebar.presets
    qtbot.mouseClick(presets.viewport(), Qt.MouseButton.LeftButton,
                     pos=presets.visualItemRect(presets.item(preset_row(window, "Everything"))).center())
    changes: list[str] = []  # what the cards told the rest of the window (each sets work off)
    pipeline.cards_changed.connect(changes.append)
    with journey.watchdog.timing(f"applying a preset of {len(look)} fields") as span:
        qtbot.mouseClick(library_button(window, "Apply"), Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: _shown(panel, look) == look, timeout=5000)
        qtbot.wait(100)  # what the change sets off (the cards' memory, the variant count) runs too
    assert "Applied preset 'Everything'" in window.sidebar.status.text()
    assert not span.failures(), span.describe()
    assert changes == [""], f"{len(changes)} changes told for one preset applied"


def _every_field_changed(pipeline, panel) -> dict:
    """Set each card field a preset keeps to another valid value; the values set, by path."""
    look = {}
    for path, editor in panel.editors.items():
        if _NOT_IN_A_PRESET.search(path):
            continue
        before = editor.value()
        editor.set_value(_another(editor))
        try:
            pipeline.build_config(panel.values())
        except ValueError:  # this field's other value does not go with the rest: left as it was
            editor.set_value(before)
            continue
        if editor.value() != before:
            look[path] = editor.value()
    return look


def _another(editor):
    spec, widget = editor.spec, editor.widget
    value = editor.value()
    if spec.kind == "bool":
        return not value
    if isinstance(widget, QComboBox):
        for index in range(widget.count()):
            data = widget.itemData(index)
            other = data if isinstance(data, str) else widget.itemText(index)
            if other and other != value:
                return other
        return f"{value}-other" if widget.isEditable() else value
    if spec.kind in ("int", "float"):
        step = spec.step
        up = value + step
        return up if spec.maximum is None or up <= spec.maximum else value - step
    return f"{value} and more" if value else "something"


def _shown(panel, look: dict) -> dict:
    values = panel.values()
    return {path: values[path] for path in look}


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


