"""What the cards show: names readable from their start, resize modes in A1111's words."""

from __future__ import annotations

from PySide6.QtCore import Qt

LONG = "tiny_random_sd15_checkpoint_used_for_the_tests_only.safetensors"


def test_a_long_model_name_shows_its_start_when_set_and_after_picking(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    editor = window.pipeline_panel.editor("txt2img.checkpoint")
    combo, line = editor.widget, editor.widget.lineEdit()
    editor.set_choices(["SD15/dreamshaper_8.safetensors", LONG])
    editor.set_value(LONG)  # as a preset or the server's loaded model sets it
    assert combo.width() < combo.fontMetrics().horizontalAdvance(LONG), "the name is wider than the box"
    assert line.cursorPosition() == 0, "the start of the name is in view, not its end"
    # The user picks the other model with the keyboard and moves on with Tab.
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Up)
    assert editor.value() == "SD15/dreamshaper_8.safetensors"
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert editor.value() == LONG
    qtbot.keyClick(line, Qt.Key.Key_Tab)
    assert line.cursorPosition() == 0


def test_resize_mode_shows_a1111_words_and_keeps_the_value(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    editor = window.pipeline_panel.editor("img2img.resize_mode")
    combo = editor.widget
    shown = [combo.itemText(i) for i in range(combo.count())]
    assert shown == ["Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)"]
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert combo.currentText() == "Crop and resize"
    assert editor.value() == "crop_and_resize", "the config keeps the value files use"
