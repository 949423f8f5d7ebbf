"""StarRating: 1–5 stars by click or keys 1–5, 0 (or clicking the same star) clears."""

from __future__ import annotations

import functools
import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPainterPath, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

STAR_SIZE = 22


def _star_path(rect: QRectF) -> QPainterPath:
    path = QPainterPath()
    cx, cy = rect.center().x(), rect.center().y()
    outer, inner = rect.width() / 2, rect.width() / 4.6
    for i in range(10):
        radius = outer if i % 2 == 0 else inner
        angle = -math.pi / 2 + i * math.pi / 5
        point = QPointF(cx + radius * math.cos(angle), cy + radius * math.sin(angle))
        if i == 0:
            path.moveTo(point)
        else:
            path.lineTo(point)
    path.closeSubpath()
    return path


@functools.cache
def _star_paths() -> tuple[QPainterPath, ...]:
    """The five stars' outlines, made once: a grid of cards paints 5 stars per card, and each
    outline is ten points worked out in Python."""
    return tuple(_star_path(QRectF(2 + i * (STAR_SIZE + 4), 2, STAR_SIZE, STAR_SIZE)) for i in range(5))


class StarRating(QWidget):
    """Emits `rated(stars)` with 1–5, or 0 to clear."""

    rated = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("StarRating")
        self._stars = 0
        self._hover = 0
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setToolTip("Rate 1–5 stars: click, or press 1–5 (0 clears)")
        self.setAccessibleName("Rating")
        self.setAccessibleDescription("0 of 5 stars")

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(5 * (STAR_SIZE + 4), STAR_SIZE + 4)

    @property
    def stars(self) -> int:
        return self._stars

    def set_stars(self, stars: int | None) -> None:
        if (stars or 0) == self._stars:
            return  # a grid re-shows every card as each image comes: only a change repaints
        self._stars = stars or 0
        self.setAccessibleDescription(f"{self._stars} of 5 stars")
        self.update()

    def _star_at(self, x: float) -> int:
        return max(1, min(5, int(x // (STAR_SIZE + 4)) + 1))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._hover = self._star_at(event.position().x())
        self.update()

    def leaveEvent(self, event) -> None:  # noqa: N802
        self._hover = 0
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        star = self._star_at(event.position().x())
        # The hover preview ends with the click, so a rating that is refused and put back
        # shows as put back, not as the stars under the pointer.
        self._hover = 0
        self.choose(0 if star == self._stars else star)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        text = event.text()
        if text in ("0", "1", "2", "3", "4", "5"):
            self.choose(int(text))
        else:
            super().keyPressEvent(event)

    def choose(self, stars: int) -> None:
        self.set_stars(stars)
        self.rated.emit(stars)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        filled = self._hover or self._stars
        on = QColor("#f5b301")
        off = self.palette().mid().color()
        for i, path in enumerate(_star_paths()):
            painter.setPen(on.darker(115) if i < filled else off)
            painter.setBrush(on if i < filled else Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
