"""Scrolling the cards with the mouse wheel scrolls the cards.

Qt turns the wheel into a new value for whatever spin box or combo box is under the pointer,
focused or not: scrolling down the pipeline cards changed Steps from 20 to 17 on the way. A
guarded field takes the wheel only after the user has clicked or tabbed into it; otherwise the
wheel goes on to what contains it, and the cards' scroll area scrolls.

Installed on each field, not on the application: an application-wide filter would bring every
event of the window into Python (each one a wait for the GIL while a worker thread runs).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QApplication, QWidget


class _WheelGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget) and not watched.hasFocus():
            event.ignore()  # ignored, not eaten: Qt offers it to the field's parents in turn
            return True
        return False


_guard: _WheelGuard | None = None


def guard_wheel(*fields: QWidget) -> None:
    """The wheel changes *fields* only once they have the focus (a click or Tab gives it)."""
    global _guard
    if _guard is None:
        _guard = _WheelGuard(QApplication.instance())
    for field in fields:
        # WheelFocus (spin boxes' default) would give the focus before any filter sees the wheel.
        field.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        field.installEventFilter(_guard)
