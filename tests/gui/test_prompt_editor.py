"""The prompt editor (Ctrl+E): Esc cancels, Ctrl+Enter applies and runs, Done applies."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt


def _open_editor(qtbot, window):
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    prompt = window.pipeline_panel.editor("txt2img.prompt").widget
    prompt.setFocus()
    qtbot.keyClick(prompt, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    overlay = window.prompt_overlay
    qtbot.waitUntil(overlay.isVisible, timeout=3000)
    qtbot.waitUntil(overlay.editor.hasFocus, timeout=3000)
    return prompt, overlay


def test_escape_closes_the_editor_and_keeps_the_old_prompt(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    window.pipeline_panel.editor("txt2img.prompt").set_value("before")
    prompt, overlay = _open_editor(qtbot, window)
    qtbot.keyClicks(overlay.editor, " and a typo")
    qtbot.keyClick(overlay.editor, Qt.Key.Key_Escape)
    assert not overlay.isVisible(), "Esc closes the editor"
    assert prompt.toPlainText() == "before", "Esc cancels: nothing typed there is applied"
    assert window.session.pipeline.state == "idle"


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 20.0}], indirect=True)
def test_ctrl_enter_in_the_editor_applies_and_runs(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    for path, value in (("txt2img.steps", 4), ("txt2img.width", 64), ("txt2img.height", 64)):
        window.pipeline_panel.editor(path).set_value(value)
    prompt, overlay = _open_editor(qtbot, window)
    qtbot.keyClicks(overlay.editor, "a quiet harbour")
    qtbot.keyClick(overlay.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert not overlay.isVisible()
    assert prompt.toPlainText() == "a quiet harbour", "applied, with no newline typed"
    qtbot.waitUntil(lambda: window.session.pipeline.state == "running", timeout=5000)
    assert window.session.pipeline.config.txt2img.prompt == "a quiet harbour"
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=10000)
    assert fake_sdwebui_thread.images_generated == 1


def test_done_applies_without_running(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    prompt, overlay = _open_editor(qtbot, window)
    qtbot.keyClicks(overlay.editor, "kept")
    qtbot.mouseClick(overlay.done_button, Qt.MouseButton.LeftButton)
    assert not overlay.isVisible() and prompt.toPlainText() == "kept"
    assert window.session.pipeline.state == "idle"
