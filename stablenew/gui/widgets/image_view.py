"""ImageView: paints a decoded image scaled to fit, with a placeholder text when empty."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget


def to_qimage(decoded) -> QImage:
    """Wrap a DecodedImage's RGBA bytes (no decoding on the Qt thread); the copy owns the buffer."""
    image = QImage(decoded.rgba, decoded.width, decoded.height, decoded.width * 4,
                   QImage.Format.Format_RGBA8888)
    return image.copy()


class ImageView(QWidget):
    """Shows one image, aspect kept, centred; smooth scaling only when the size changes."""

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ImageView")
        self._image: QImage | None = None
        self._scaled: QImage | None = None
        self._placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 160)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(420, 420)

    @property
    def has_image(self) -> bool:
        return self._image is not None

    def set_decoded(self, decoded) -> None:
        self.set_image(to_qimage(decoded) if decoded is not None else None)

    def set_image(self, image: QImage | None) -> None:
        self._image = image
        self._scaled = None
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        rect = self.rect()
        if self._image is None or self._image.isNull():
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(rect.adjusted(16, 16, -16, -16),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        target = self._image.size().scaled(rect.size(), Qt.AspectRatioMode.KeepAspectRatio)
        if self._scaled is None or self._scaled.size() != target:
            self._scaled = self._image.scaled(target, Qt.AspectRatioMode.KeepAspectRatio,
                                              Qt.TransformationMode.SmoothTransformation)
        x = rect.x() + (rect.width() - target.width()) // 2
        y = rect.y() + (rect.height() - target.height()) // 2
        painter.drawImage(QRect(x, y, target.width(), target.height()), self._scaled)
