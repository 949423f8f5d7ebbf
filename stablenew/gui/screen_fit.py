"""Where a window goes so it is whole on the screen it opens on."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize


def fit_to_screen(window: QRect, minimum: QSize, area: QRect) -> QRect | None:
    """Where a window of *window*'s geometry goes so it is whole on a screen's *area* (a first
    launch on a laptop, or a window saved on a larger monitor); None when it already fits, or
    when the screen cannot even hold the window's minimum size (the minimum wins there)."""
    if minimum.width() > area.width() or minimum.height() > area.height():
        return None
    if area.contains(window):
        return None
    width, height = min(window.width(), area.width()), min(window.height(), area.height())
    x = min(max(window.x(), area.x()), area.x() + area.width() - width)
    y = min(max(window.y(), area.y()), area.y() + area.height() - height)
    return QRect(x, y, width, height)
