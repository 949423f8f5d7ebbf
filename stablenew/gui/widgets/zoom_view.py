"""ZoomView: one image with wheel zoom and drag pan, reporting its view so another can follow."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QMouseEvent, QPainter, QPaintEvent, QWheelEvent
from PySide6.QtWidgets import QWidget

MAX_ZOOM = 16.0


class ZoomView(QWidget):
    """Zoom 1 fits the image; `view_changed(zoom, x, y)` gives the zoom and the image point
    (0–1 across each side) at the centre, which a twin view applies with `set_view`."""

    view_changed = Signal(float, float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image = QImage()
        self.zoom = 1.0
        self.center = QPointF(0.5, 0.5)
        self._drag: QPointF | None = None
        self.setMinimumSize(200, 200)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the dialog keeps the arrow keys

    def set_image(self, image: QImage) -> None:
        self.image = image
        self.update()

    def set_view(self, zoom: float, x: float, y: float) -> None:
        """Show the image at *zoom* centred on (x, y); no signal (the twin sent it)."""
        self.zoom = min(max(zoom, 1.0), MAX_ZOOM)
        self.center = QPointF(min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0))
        self.update()

    def _changed(self) -> None:
        self.update()
        self.view_changed.emit(self.zoom, self.center.x(), self.center.y())

    def _scale(self) -> float:
        if self.image.isNull():
            return 1.0
        fit = min(self.width() / self.image.width(), self.height() / self.image.height())
        return fit * self.zoom

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom = min(max(self.zoom * (1.25 ** steps), 1.0), MAX_ZOOM)
            self._changed()
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag = event.position()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag is None or self.image.isNull():
            return
        delta = event.position() - self._drag
        self._drag = event.position()
        scale = self._scale()
        self.center = QPointF(
            min(max(self.center.x() - delta.x() / (scale * self.image.width()), 0.0), 1.0),
            min(max(self.center.y() - delta.y() / (scale * self.image.height()), 0.0), 1.0))
        self._changed()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._drag = None

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        if self.image.isNull():
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Loading…")
            return
        scale = self._scale()
        w, h = self.image.width() * scale, self.image.height() * scale
        left = self.width() / 2 - self.center.x() * w
        top = self.height() / 2 - self.center.y() * h
        if w <= self.width():
            left = (self.width() - w) / 2
        if h <= self.height():
            top = (self.height() - h) / 2
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(QRectF(left, top, w, h), self.image)
