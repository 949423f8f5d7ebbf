"""Journey: type a prompt, Run, Stop part-way; restart; what was made is in the gallery, nothing runs."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QPlainTextEdit, QTextEdit

from tests.journeys.conftest import item_states, save_server


def type_into(qtbot, window, path: str, text: str) -> None:
    widget = window.pipeline_panel.editor(path).widget
    assert isinstance(widget, QLineEdit | QPlainTextEdit | QTextEdit), type(widget)
    widget.setFocus()
    widget.clear()
    qtbot.keyClicks(widget, text)


def test_run_then_stop_then_restart(qtbot, journey, fake_process):
    fake = fake_process(step_ms=40)
    save_server(fake.url)
    window = journey.open()
    type_into(qtbot, window, "txt2img.prompt", "a lighthouse in fog")
    window.pipeline_panel.editor("txt2img.steps").set_value(10)
    window.pipeline_panel.editor("txt2img.batch_count").set_value(6)
    window.pipeline_panel.editor("txt2img.width").set_value(64)
    window.pipeline_panel.editor("txt2img.height").set_value(64)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.commands.state_label.text() == "Running…", timeout=5000)
    gallery = window.gallery_panel.model
    qtbot.waitUntil(lambda: gallery.rowCount() >= 2, timeout=20000)
    assert window.commands.stop_button.isEnabled()
    qtbot.mouseClick(window.commands.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=15000)
    made = gallery.rowCount()
    assert 2 <= made < 6, f"Stop stopped nothing: {made} images"
    assert window.commands.run_button.isEnabled() and not window.commands.stop_button.isEnabled()

    window = journey.restart()
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == made, timeout=10000)
    assert window.commands.state_label.text() == "", "nothing runs after a restart"
    assert window.pipeline_panel.values()["txt2img.prompt"] == "a lighthouse in fog", \
        "the prompt the user typed is still there"
    states = item_states()
    assert states.get("running", 0) == 0 and states.get("queued", 0) == 0, states
