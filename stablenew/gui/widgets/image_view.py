"""ImageView: paints a decoded image scaled to fit, with a placeholder text when empty."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import cast

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

log = logging.getLogger(__name__)


def to_qimage(decoded) -> QImage:
    """Wrap a DecodedImage's RGBA bytes (no decoding on the Qt thread); the copy owns the buffer."""
    image = QImage(decoded.rgba, decoded.width, decoded.height, decoded.width * 4,
                   QImage.Format.Format_RGBA8888)
    return image.copy()


#: Smooth scaling of a full-size image (a 2048-pixel upscale: 50 ms and more on a busy
#: machine) runs here, one at a time, never on the Qt thread. It is Pillow's: Qt's own scaling
#: holds Python's lock throughout and would stall the Qt thread from any thread.
_SCALER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-scale")


def smooth_scaled(pixels: bytes | bytearray | memoryview, size: QSize, bytes_per_line: int,
                  target: QSize) -> bytes:
    """RGBA8888 *pixels* of *size*, smoothly scaled to *target*: RGBA8888, tightly packed."""
    from PIL import Image  # imported on first use: keeps start-up lean

    # Any buffer is read in place (Pillow's stubs name only bytes among them): no copy.
    image = Image.frombuffer("RGBA", (size.width(), size.height()), cast("bytes", pixels), "raw",
                             "RGBA", bytes_per_line, 1)
    # reducing_gap: a fast box reduction first, then bilinear over at least twice the target.
    return image.resize((target.width(), target.height()), Image.Resampling.BILINEAR,
                        reducing_gap=2.0).tobytes()


class ImageView(QWidget):
    """Shows one image, aspect kept, centred; smoothly scaled in a worker thread once per size
    (a quick rough scale is painted meanwhile, for a frame or two)."""

    #: (the image's generation, width, height, RGBA bytes) of a smooth scale, from the worker.
    _scaled_ready = Signal(int, int, int, object)

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ImageView")
        self._image: QImage | None = None
        self._generation = 0  # counts images shown: a scale of an earlier one is dropped
        self._scaled: QImage | None = None  # the smooth one, at the last size it was made for
        self._asked: QSize | None = None  # the size being scaled to in the worker
        self._placeholder = placeholder
        self._scaled_ready.connect(self._take_scaled)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 160)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(420, 420)

    @property
    def has_image(self) -> bool:
        return self._image is not None

    @property
    def smooth(self) -> bool:
        """Is the image painted smoothly scaled to the widget's size (not the rough stand-in)?"""
        return (self._image is not None and self._scaled is not None
                and self._scaled.size() == self._target(self._image))

    def set_decoded(self, decoded) -> None:
        self.set_image(to_qimage(decoded) if decoded is not None else None)

    def set_image(self, image: QImage | None) -> None:
        if image is not None and image.format() != QImage.Format.Format_RGBA8888:
            image = image.convertToFormat(QImage.Format.Format_RGBA8888)  # as to_qimage makes
        self._image = image
        self._generation += 1
        self._scaled = None
        self._asked = None
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
        target = self._target(self._image)
        x = rect.x() + (rect.width() - target.width()) // 2
        y = rect.y() + (rect.height() - target.height()) // 2
        where = QRect(x, y, target.width(), target.height())
        if self._scaled is not None and self._scaled.size() == target:
            painter.drawImage(where, self._scaled)
            return
        self._ask(target)
        if self._scaled is not None:
            # The last smooth one, stretched (a resize): its cost is the widget's size.
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(where, self._scaled)
        else:
            # Nearest-pixel sampling of the full image costs the widget's size, not the image's.
            painter.drawImage(where, self._image)

    def _target(self, image: QImage) -> QSize:
        return image.size().scaled(self.rect().size(), Qt.AspectRatioMode.KeepAspectRatio)

    def _ask(self, target: QSize) -> None:
        image = self._image
        if self._asked == target or image is None or target.isEmpty():
            return
        self._asked = target
        generation, ready = self._generation, self._scaled_ready

        def scale(source: QImage) -> None:
            # *source* (held by the call) keeps the pixels alive while they are read here.
            try:
                rgba = smooth_scaled(source.constBits(), source.size(), source.bytesPerLine(),
                                     target)
            except (OSError, ValueError, MemoryError) as exc:
                log.warning("scaling a %dx%d image to %dx%d failed: %r", source.width(),
                            source.height(), target.width(), target.height(), exc)
                return  # the rough scale stays
            try:
                ready.emit(generation, target.width(), target.height(), rgba)  # queued
            except RuntimeError:
                pass  # the view was deleted meanwhile: nobody to show it

        _SCALER.submit(scale, image)

    def _take_scaled(self, generation: int, width: int, height: int, rgba: bytes) -> None:
        target = QSize(width, height)
        if generation != self._generation:
            return  # an image shown earlier
        if self._asked == target:
            self._asked = None
        # Built from the small scaled pixels: cheap; the copy owns its buffer.
        self._scaled = QImage(rgba, width, height, width * 4, QImage.Format.Format_RGBA8888).copy()
        self.update()
