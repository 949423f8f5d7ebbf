"""The Models grid's model: the filtered entries, each preview decoded on a thread pool the
first time its cell is painted, so scrolling through thousands of LoRAs never reads a file on
the Qt thread."""

from __future__ import annotations

from collections import OrderedDict
from html import escape
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRunnable,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QImage, QImageReader, QPixmap

if TYPE_CHECKING:
    from stablenew.controller.catalog_controller import ModelEntry

THUMB = 112
MAX_ICONS = 800


class _Decoded(QObject):
    """Carries a decoded preview from the pool's thread to the Qt thread."""

    ready = Signal(str, QImage)


class _DecodePreview(QRunnable):
    """Reads one preview scaled down to a thumbnail (off the Qt thread)."""

    def __init__(self, path: str, sink: _Decoded) -> None:
        super().__init__()
        self.path, self.sink = path, sink

    def run(self) -> None:
        reader = QImageReader(self.path)
        size = reader.size()
        if size.isValid():
            reader.setScaledSize(size.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio))
        self.sink.ready.emit(self.path, reader.read())


class ModelsModel(QAbstractListModel):
    """The filtered entries; a preview is decoded the first time its cell is painted."""

    EntryRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[ModelEntry] = []
        self._rows_of: dict[str, list[int]] = {}  # preview path -> rows showing it
        self._icons: OrderedDict[str, QIcon] = OrderedDict()
        self._asked: set[str] = set()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._decoded = _Decoded(self)
        self._decoded.ready.connect(self._preview_ready)
        pixmap = QPixmap(THUMB, THUMB)
        pixmap.fill(QColor(128, 128, 128, 40))
        self._placeholder = QIcon(pixmap)
        self._changed: set[int] = set()
        self._repaint = QTimer(self)
        self._repaint.setSingleShot(True)
        self._repaint.setInterval(30)
        self._repaint.timeout.connect(self._repaint_changed)

    def set_rows(self, rows: list[ModelEntry]) -> None:
        if len(rows) == len(self.rows) and all(a is b for a, b in zip(rows, self.rows, strict=True)):
            # Same entries (new hashes, a node's list): nothing a cell shows has changed (a
            # tooltip is made when it is shown), and the scroll position and the selection
            # stay. A repaint of every row cost the Qt thread 13 ms per burst of hashes at
            # 5,000 LoRAs, every 300 ms while they were hashed.
            return
        self.beginResetModel()
        self.rows = rows
        self._rows_of = {}
        for row, entry in enumerate(rows):
            if entry.preview:
                self._rows_of.setdefault(entry.preview, []).append(row)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> str | ModelEntry | QIcon | None:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        entry = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return entry.display_name
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(entry)
        if role == self.EntryRole:
            return entry
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(entry.preview)
        return None

    def _icon(self, path: str | None) -> QIcon:
        if not path:
            return self._placeholder
        icon = self._icons.get(path)
        if icon is not None:
            self._icons.move_to_end(path)
            return icon
        if path not in self._asked:
            self._asked.add(path)
            self._pool.start(_DecodePreview(path, self._decoded))
        return self._placeholder

    def _preview_ready(self, path: str, image: QImage) -> None:
        self._asked.discard(path)
        if image.isNull():
            return
        self._icons[path] = QIcon(QPixmap.fromImage(image))
        while len(self._icons) > MAX_ICONS:
            self._icons.popitem(last=False)
        self._changed.update(self._rows_of.get(path, ()))
        if not self._repaint.isActive():
            self._repaint.start()

    def _repaint_changed(self) -> None:
        # Previews land in bursts (a page at a time): one repaint of their span, not one each.
        if self._changed:
            first, last = min(self._changed), max(self._changed)
            self._changed.clear()
            self.dataChanged.emit(self.index(first), self.index(last), [Qt.ItemDataRole.DecorationRole])


def _tooltip(entry: ModelEntry) -> str:
    lines = [f"<b>{escape(entry.display_name)}</b> — &lt;lora:{escape(entry.name)}&gt;",
             f"Base model: {entry.base_model.value}",
             "Trigger words: " + (escape(", ".join(entry.triggers)) or "none: add some")]
    if entry.tags:
        lines.append("Tags: " + escape(", ".join(entry.tags[:8])))
    lines += [f"⚠ {escape(p)}" for p in entry.problems]
    return "<br>".join(lines)
