"""Scrolling a form with the mouse wheel scrolls the form.

Qt turns the wheel into a new value for whatever spin box, combo box or slider is under the
pointer, focused or not: scrolling down the pipeline cards changed Steps from 20 to 17 on the
way. Guarded, such a field takes the wheel only after the user has clicked or tabbed into it;
otherwise the wheel goes on to what contains it (the cards' scroll area scrolls).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSlider, QAbstractSpinBox, QApplication, QComboBox, QScrollBar

_GUARDED = (QAbstractSpinBox, QComboBox, QAbstractSlider)


class WheelGuard(QObject):
    """An application-wide event filter (see `install_wheel_guard`)."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if not isinstance(watched, _GUARDED) or isinstance(watched, QScrollBar):
            return False
        if event.type() == QEvent.Type.Polish and watched.focusPolicy() == Qt.FocusPolicy.WheelFocus:
            # Qt gives a WheelFocus widget the focus before any filter sees the wheel.
            watched.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        elif event.type() == QEvent.Type.Wheel and not watched.hasFocus():
            event.ignore()  # ignored, not eaten: Qt offers it to the field's parents in turn
            return True
        return False


def install_wheel_guard() -> None:
    """Guard every spin box, combo box and slider of the application (once)."""
    app = QApplication.instance()
    if app is not None and app.findChild(WheelGuard) is None:
        app.installEventFilter(WheelGuard(app))
