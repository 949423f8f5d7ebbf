"""CompareDialog: two images side by side, zoomed and panned together; ← or → picks the better."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QDialog, QGridLayout, QLabel, QWidget

from stablenew.gui.widgets.image_view import to_qimage
from stablenew.gui.widgets.zoom_view import ZoomView

if TYPE_CHECKING:
    from stablenew.controller.gallery_controller import GalleryController, ImageDetail


class CompareDialog(QDialog):
    """Left and right image; the pick goes to the gallery's actions (a pairwise choice)."""

    def __init__(self, gallery: GalleryController, left: str, right: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare — ← left is better, → right is better")
        self.gallery = gallery
        self.keys = (left, right)
        self.views = (ZoomView(), ZoomView())
        self.views[0].view_changed.connect(self.views[1].set_view)
        self.views[1].view_changed.connect(self.views[0].set_view)
        self.hint = QLabel("Scroll to zoom, drag to pan (both follow). Press ← if the left one is "
                           "better, → if the right one is; Esc to close without choosing.")
        self.hint.setWordWrap(True)
        layout = QGridLayout(self)
        for column, key in enumerate(self.keys):
            layout.addWidget(QLabel(Path(key).name), 0, column)
            layout.addWidget(self.views[column], 1, column)
        layout.addWidget(self.hint, 2, 0, 1, 2)
        self.resize(1100, 650)
        gallery.detail_ready.connect(self._detail)
        for key in self.keys:
            gallery.open(key)

    def _detail(self, detail: ImageDetail) -> None:
        for key, view in zip(self.keys, self.views, strict=True):
            if str(detail.path) == key:
                view.set_image(to_qimage(detail.image))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            left, right = self.keys
            winner, loser = (left, right) if event.key() == Qt.Key.Key_Left else (right, left)
            self.gallery.actions.pick(winner, loser)
            self.accept()
            return
        super().keyPressEvent(event)

    def done(self, result: int) -> None:
        try:
            self.gallery.detail_ready.disconnect(self._detail)
        except (RuntimeError, TypeError):
            pass  # already disconnected
        super().done(result)
