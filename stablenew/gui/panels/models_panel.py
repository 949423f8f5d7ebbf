"""ModelsPanel: the LoRA catalog as a grid of previews; search, family filter, add to the prompt.

Previews are decoded on a thread pool only when a cell is painted, so scrolling through
thousands of LoRAs never reads a file on the Qt thread.
"""

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
    QSize,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from stablenew.gui.panels.auto_lora_bar import AutoLoraBar

if TYPE_CHECKING:
    from stablenew.controller.catalog_controller import CatalogController, ModelEntry

THUMB = 112
MAX_ICONS = 800
ALL_FAMILIES = "All families"


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
            # Same entries (new hashes, say): repaint in place, so the scroll position and
            # the selection stay where the user left them.
            if rows:
                self.dataChanged.emit(self.index(0), self.index(len(rows) - 1))
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


class ModelsPanel(QWidget):
    """Grid of LoRAs with search and filters; a selected LoRA goes into the prompt with its words."""

    def __init__(self, controller: CatalogController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("ModelsPanel")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search names, trigger words, tags…")
        self.search.setClearButtonEnabled(True)
        self.family = QComboBox()
        self.family.addItem(ALL_FAMILIES, "")
        for base in controller.base_models():
            self.family.addItem(base, base)
        self.category = QComboBox()
        self.tag = QComboBox()
        self.tag.setToolTip("Only LoRAs with this tag")
        self.favourites = QCheckBox("Favourites")
        self.favourites.setToolTip("Only LoRAs marked as favourites (Lora Manager's 'favorite')")
        self.on_server = QCheckBox("On this server")
        self.on_server.setToolTip("Only LoRAs the server Run uses lists")
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.setToolTip("A folder of LoRAs: the one your server uses, or a copy on a share")
        # Two short rows, not one long one: the tab is as narrow as the cards beside it.
        top = QVBoxLayout()
        search_row = QHBoxLayout()
        search_row.addWidget(self.search, 1)
        search_row.addWidget(self.add_folder_button)
        filter_row = QHBoxLayout()
        for box in (self.family, self.category, self.tag):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(8)
            filter_row.addWidget(box, 1)
        filter_row.addWidget(self.favourites)
        filter_row.addWidget(self.on_server)
        top.addLayout(search_row)
        top.addLayout(filter_row)
        self.auto_loras = AutoLoraBar(controller)  # LoRAs added by every run, not by a click
        top.addWidget(self.auto_loras)

        self.model = ModelsModel(self)
        self.grid = QListView()
        self.grid.setObjectName("ModelsGrid")
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setUniformItemSizes(True)
        self.grid.setIconSize(QSize(THUMB, THUMB))
        self.grid.setGridSize(QSize(THUMB + 16, THUMB + 36))
        self.grid.setWordWrap(True)
        self.grid.setMovement(QListView.Movement.Static)
        # Thousands of cells are laid out a batch per event-loop turn, not in one long stall.
        self.grid.setLayoutMode(QListView.LayoutMode.Batched)
        self.grid.setBatchSize(200)
        self.grid.setModel(self.model)

        self.details = QLabel("Pick a LoRA to see its trigger words.")
        self.details.setObjectName("MutedLabel")
        self.details.setWordWrap(True)
        self.triggers_row = QHBoxLayout()
        self.trigger_boxes: list[QCheckBox] = []
        self._shown: ModelEntry | None = None
        self.weight = QDoubleSpinBox()
        self.weight.setRange(-2.0, 2.0)
        self.weight.setSingleStep(0.05)
        self.weight.setValue(1.0)
        self.weight.setPrefix("Weight ")
        # A slider for feel, the box for the exact number; each follows the other.
        self.weight_slider = QSlider(Qt.Orientation.Horizontal)
        self.weight_slider.setObjectName("LoraWeightSlider")
        self.weight_slider.setRange(-40, 40)  # steps of 0.05 from -2 to 2
        self.weight_slider.setValue(20)
        self.weight_slider.setFixedWidth(120)
        self.weight_slider.setToolTip("LoRA weight: how strongly it steers the image")
        self.weight_slider.valueChanged.connect(lambda v: self.weight.setValue(v / 20))
        self.weight.valueChanged.connect(self._weight_typed)
        self.add_button = QPushButton("Add to prompt")
        self.add_button.setEnabled(False)
        self.try_button = QPushButton("Try this LoRA")
        self.try_button.setObjectName("TryLora")
        self.try_button.setToolTip("A learning run over its weight (0.2 to 1.0) on your prompt, "
                                   "to rate side by side")
        self.try_button.setEnabled(False)
        self.triggers_row.addStretch(1)  # boxes as wide as their words: a click beside one misses
        bottom = QVBoxLayout()
        bottom.addLayout(self.triggers_row)
        actions = QHBoxLayout()
        actions.addWidget(self.weight_slider)
        actions.addWidget(self.weight)
        actions.addStretch(1)
        actions.addWidget(self.try_button)
        actions.addWidget(self.add_button)
        bottom.addLayout(actions)
        self.status = QLabel("")
        self.status.setObjectName("MutedLabel")

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.details)
        layout.addLayout(bottom)
        layout.addWidget(self.status)

        self.search.textChanged.connect(self._filter)
        self.family.currentIndexChanged.connect(self._filter)
        self.category.currentIndexChanged.connect(self._filter)
        self.tag.currentIndexChanged.connect(self._filter)
        self.favourites.toggled.connect(self._filter)
        self.on_server.toggled.connect(self._filter)
        self.grid.selectionModel().currentChanged.connect(self._selected)
        self.grid.doubleClicked.connect(lambda _index: self._add())
        self.add_button.clicked.connect(self._add)
        self.try_button.clicked.connect(self._try)
        self.add_folder_button.clicked.connect(self._ask_folder)
        controller.entries_changed.connect(self._entries_changed)
        controller.progress_changed.connect(self._progress)
        controller.message_changed.connect(self.status.setText)
        self._entries_changed()

    def _entries_changed(self) -> None:
        current = self.category.currentData()
        self.category.blockSignals(True)
        self.category.clear()
        self.category.addItem("All categories", "")
        for name in self.controller.categories():
            self.category.addItem(name, name)
        index = self.category.findData(current) if current else 0
        self.category.setCurrentIndex(max(index, 0))
        self.category.blockSignals(False)
        current_tag = self.tag.currentData()
        self.tag.blockSignals(True)
        self.tag.clear()
        self.tag.addItem("All tags", "")
        for name in self.controller.tags():
            self.tag.addItem(name, name)
        index = self.tag.findData(current_tag) if current_tag else 0
        self.tag.setCurrentIndex(max(index, 0))
        self.tag.blockSignals(False)
        self._filter()

    def _filter(self) -> None:
        selected = self._entry()
        self.on_server.setEnabled(bool(self.controller.current_node))
        node = self.controller.current_node if self.on_server.isChecked() else ""
        rows = self.controller.filtered(self.search.text(), self.family.currentData() or "",
                                        self.category.currentData() or "", node=node,
                                        tag=self.tag.currentData() or "",
                                        favourites=self.favourites.isChecked())
        self.model.set_rows(rows)
        if selected is not None and selected in rows:
            self.grid.setCurrentIndex(self.model.index(rows.index(selected)))
        else:
            self._show(None)

    def _progress(self, done: int, total: int) -> None:
        if total:
            self.status.setText(f"Reading LoRAs… {done} of {total}")

    def _entry(self) -> ModelEntry | None:
        index = self.grid.currentIndex()
        return index.data(ModelsModel.EntryRole) if index.isValid() else None

    def _selected(self, index: QModelIndex, _previous: QModelIndex) -> None:
        self._show(index.data(ModelsModel.EntryRole) if index.isValid() else None)

    def _show(self, entry: ModelEntry | None) -> None:
        if entry is not None and entry is self._shown:
            return  # the same LoRA again (the list was refreshed): keep the user's ticks
        self._shown = entry
        for box in self.trigger_boxes:
            self.triggers_row.removeWidget(box)
            box.deleteLater()
        self.trigger_boxes = []
        self.add_button.setEnabled(entry is not None)
        self.try_button.setEnabled(entry is not None)
        if entry is None:
            self.details.setText("Pick a LoRA to see its trigger words.")
            return
        text = f"{entry.display_name} · {entry.base_model.value}"
        if not entry.triggers:
            text += " · no trigger words: add some (an A1111 .json 'activation text')"
        nodes = self.controller.nodes_with(entry)
        if nodes:
            text += " · on " + ", ".join(nodes)
        if entry.problems:
            text += " · " + " ".join(entry.problems)
        self.details.setText(text)
        for i, word in enumerate(entry.triggers):
            box = QCheckBox(word)
            box.setChecked(i == 0)  # the first trigger word by default, not ten conflicting ones
            self.triggers_row.insertWidget(i, box)
            self.trigger_boxes.append(box)
        self.weight.setValue(entry.weight or 1.0)

    def _add(self) -> None:
        entry = self._entry()
        if entry is None:
            return
        words = [box.text() for box in self.trigger_boxes if box.isChecked()]
        self.controller.add_to_prompt(entry, self.weight.value(), words)

    def _weight_typed(self, weight: float) -> None:
        step = round(weight * 20)
        if step != self.weight_slider.value():  # 0.33 typed stays 0.33: the slider only follows
            self.weight_slider.blockSignals(True)
            self.weight_slider.setValue(step)
            self.weight_slider.blockSignals(False)

    def _try(self) -> None:
        entry = self._entry()
        if entry is None:
            return
        words = [box.text() for box in self.trigger_boxes if box.isChecked()]
        self.controller.try_lora(entry, words)

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of LoRAs")
        if folder:
            self.controller.add_folder(folder)
