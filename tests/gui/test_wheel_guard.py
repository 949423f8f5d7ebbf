"""The mouse wheel over the cards scrolls them: a field the pointer passes over keeps its value
unless the user clicked into it first."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication


def wheel_down(widget) -> bool:
    """One notch of the wheel over *widget* (a delivered event; True when it was accepted)."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                        QPoint(0, -120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)
    return event.isAccepted()


def test_the_wheel_changes_only_a_field_the_user_clicked_into(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    panel = window.pipeline_panel
    steps = panel.editor("txt2img.steps").widget
    sampler = panel.editor("txt2img.sampler").widget
    qtbot.waitExposed(window)
    before = (steps.value(), sampler.currentIndex())
    assert steps.focusPolicy() == Qt.FocusPolicy.StrongFocus  # the wheel alone gives no focus
    assert not wheel_down(steps) and not wheel_down(sampler)  # passed on to the cards' scroll area
    assert (steps.value(), sampler.currentIndex()) == before
    window.activateWindow()
    steps.setFocus()
    qtbot.waitUntil(steps.hasFocus, timeout=3000)
    wheel_down(steps)
    assert steps.value() == before[0] - 1
