"""GalleryPanel: thumbnails newest first, loaded lazily by the controller; keys 1–5/0 rate the selection."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QKeyEvent, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QListView, QVBoxLayout, QWidget

from stablenew.gui.widgets.image_view import to_qimage

THUMB = 132


class GalleryModel(QAbstractListModel):
    """A view of the controller's item list; thumbnails are asked for only when painted."""

    KeyRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, controller: Any, parent=None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._icons: dict[str, QIcon] = {}
        self._placeholder = self._make_placeholder()
        self._rows = len(controller.items)
        controller.items_reset.connect(self._reset)
        controller.item_added.connect(self._added)
        controller.item_changed.connect(self._changed)
        controller.thumbnail_ready.connect(self._thumb)

    @staticmethod
    def _make_placeholder() -> QIcon:
        pixmap = QPixmap(THUMB, THUMB)
        pixmap.fill(QColor(128, 128, 128, 40))
        return QIcon(pixmap)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else self._rows

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.controller.items):
            return None
        item = self.controller.items[index.row()]
        if role == Qt.ItemDataRole.DecorationRole:
            icon = self._icons.get(item.key)
            if icon is None:
                decoded = self.controller.thumbnail(item.key)
                if decoded is None:
                    return self._placeholder
                icon = self._icon(item.key, decoded)
            return icon
        if role == Qt.ItemDataRole.DisplayRole:
            return "★" * (item.rating or 0)
        if role == Qt.ItemDataRole.ToolTipRole:
            tags = f"\nTags: {', '.join(item.tags)}" if item.tags else ""
            return f"{item.path.name}{tags}"
        if role == self.KeyRole:
            return item.key
        return None

    def _icon(self, key: str, decoded) -> QIcon:
        image: QImage = to_qimage(decoded)
        canvas = QPixmap(THUMB, THUMB)
        canvas.fill(Qt.GlobalColor.transparent)
        painter = QPainter(canvas)
        scaled = image.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                              Qt.TransformationMode.SmoothTransformation)
        painter.drawImage((THUMB - scaled.width()) // 2, (THUMB - scaled.height()) // 2, scaled)
        painter.end()
        icon = QIcon(canvas)
        self._icons[key] = icon
        return icon

    def _row_of(self, key: str) -> int:
        for row, item in enumerate(self.controller.items):
            if item.key == key:
                return row
        return -1

    def _reset(self) -> None:
        self.beginResetModel()
        self._rows = len(self.controller.items)
        self.endResetModel()

    def _added(self, item) -> None:
        # The controller put the item first; an insert (not a reset) keeps the view's layout
        # and selection, which matters when a fast run adds several images a second.
        if len(self.controller.items) != self._rows + 1:
            self._reset()  # a replaced duplicate: the list changed in more than one place
            return
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._rows += 1
        self.endInsertRows()

    def _changed(self, item) -> None:
        row = self._row_of(item.key)
        if row >= 0:
            index = self.index(row)
            self.dataChanged.emit(index, index)

    def _thumb(self, key: str, decoded) -> None:
        self._icon(key, decoded)
        row = self._row_of(key)
        if row >= 0:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class GalleryView(QListView):
    """Icon grid; number keys rate the current image without leaving the keyboard."""

    rate_requested = Signal(str, int)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        text = event.text()
        index = self.currentIndex()
        if text in ("0", "1", "2", "3", "4", "5") and index.isValid():
            self.rate_requested.emit(index.data(GalleryModel.KeyRole), int(text))
            return
        super().keyPressEvent(event)


class GalleryPanel(QWidget):
    """The strip of outputs; selecting one asks the controller to open it large."""

    selected = Signal(str)

    def __init__(self, controller: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("GalleryPanel")
        self.controller = controller
        self.model = GalleryModel(controller, self)
        self.view = GalleryView()
        self.view.setObjectName("GalleryView")
        self.view.setModel(self.model)
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setFlow(QListView.Flow.LeftToRight)
        self.view.setWrapping(True)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setIconSize(QSize(THUMB, THUMB))
        self.view.setGridSize(QSize(THUMB + 12, THUMB + 24))
        self.view.setSpacing(2)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(60)
        self.view.rate_requested.connect(controller.rate)
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.title = QLabel("Gallery")
        self.title.setObjectName("PanelTitle")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)
        self.model.modelReset.connect(self._update_title)
        self.model.rowsInserted.connect(self._update_title)
        self._update_title()

    def _update_title(self) -> None:
        count = len(self.controller.items)
        self.title.setText(f"Gallery · {count} image{'s' if count != 1 else ''}, newest first"
                           if count else "Gallery — your images appear here")

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            key = current.data(GalleryModel.KeyRole)
            self.controller.open(key)
            self.selected.emit(key)

    def select_first(self) -> None:
        if self.model.rowCount():
            self.view.setCurrentIndex(self.model.index(0))
            self.view.setFocus()
