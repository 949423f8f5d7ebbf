"""Journey: save the cards as a preset with the real "Save current…" button and a typed name,
change the cards, restart, apply the preset: the cards show its values."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QToolButton

from tests.journeys.conftest import save_server

LOOK = {"txt2img.steps": 14, "txt2img.cfg_scale": 4.5, "txt2img.width": 640, "txt2img.height": 448,
        "txt2img.hires.enabled": True}


def library_button(window, text: str) -> QToolButton:
    panel = window.sidebar
    found = [b for b in panel.findChildren(QToolButton) if b.text() == text and b.isVisibleTo(panel)]
    assert len(found) == 1, [b.text() for b in panel.findChildren(QToolButton)]
    return found[0]


def preset_row(window, name: str) -> int:
    presets = window.sidebar.presets
    rows = [r for r in range(presets.count()) if presets.item(r).text() == name]
    return rows[0] if rows else -1


def cards(window) -> dict:
    values = window.pipeline_panel.values()
    return {path: values[path] for path in LOOK}


def test_save_current_as_a_preset_then_restart_and_apply_it(qtbot, journey, fake_process):
    save_server(fake_process(step_ms=5).url)
    window = journey.open()
    for path, value in LOOK.items():
        window.pipeline_panel.editor(path).set_value(value)

    qtbot.mouseClick(library_button(window, "Save current…"), Qt.MouseButton.LeftButton)
    dialog = window.sidebar.name_dialog
    qtbot.waitUntil(lambda: dialog.isVisible(), timeout=5000)
    name_box = dialog.findChild(QLineEdit)
    qtbot.keyClicks(name_box, "Small and quick")
    qtbot.keyClick(name_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: preset_row(window, "Small and quick") >= 0, timeout=5000)
    assert window.sidebar.notice.isHidden(), window.sidebar.notice.message
    assert "Saved preset 'Small and quick'" in window.sidebar.status.text()

    # Other settings meanwhile: the preset, not the cards' memory, brings the look back.
    window.pipeline_panel.editor("txt2img.steps").set_value(30)
    window.pipeline_panel.editor("txt2img.width").set_value(1024)
    window.pipeline_panel.editor("txt2img.hires.enabled").set_value(False)

    window = journey.restart()
    assert cards(window) != LOOK
    row = preset_row(window, "Small and quick")
    assert row >= 0, "the preset is there after the restart"
    presets = window.sidebar.presets
    qtbot.mouseClick(presets.viewport(), Qt.MouseButton.LeftButton,
                     pos=presets.visualItemRect(presets.item(row)).center())
    qtbot.mouseClick(library_button(window, "Apply"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cards(window) == LOOK, timeout=5000)
    assert "Applied preset 'Small and quick'" in window.sidebar.status.text()
