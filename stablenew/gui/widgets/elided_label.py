"""ElidedLabel: one line of text that shortens in the middle ("q1a2…-a-lighthouse.png") to fit."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    """Keeps the start and the end of a long name in view (file names differ at both ends);
    the whole text is in the tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._full = ""
        self.set_full_text(text)

    def full_text(self) -> str:
        return self._full

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self.updateGeometry()  # the size it asks for follows the whole text
        self._elide()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        # What the whole text needs, not the shortened one: a layout with room gives it back.
        hint = super().sizeHint()  # the shown text plus whatever padding the style sheet adds
        metrics = self.fontMetrics()
        extra = hint.width() - metrics.horizontalAdvance(self.text())
        return QSize(metrics.horizontalAdvance(self._full) + max(0, extra), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = self.contentsRect().width()
        text = self._full if width <= 0 else self.fontMetrics().elidedText(
            self._full, Qt.TextElideMode.ElideMiddle, width)
        super().setText(text)
