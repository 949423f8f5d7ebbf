"""ModelsPanel: the LoRA catalog as a grid of previews; search, family filter, add to the prompt,
a swatch batch of several LoRAs.

Previews are decoded on a thread pool only when a cell is painted (models_grid), so scrolling
through thousands of LoRAs never reads a file on the Qt thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, QSize, Qt
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

from stablenew.controller.catalog_runs import MAX_SWATCH, swatch_words
from stablenew.gui.panels.auto_lora_bar import AutoLoraBar
from stablenew.gui.panels.models_grid import THUMB, ModelsModel

if TYPE_CHECKING:
    from stablenew.controller.catalog_controller import CatalogController, ModelEntry

ALL_FAMILIES = "All families"


class ModelsPanel(QWidget):
    """Grid of LoRAs with search and filters; a selected LoRA goes into the prompt with its words."""

    def __init__(self, controller: CatalogController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("ModelsPanel")
        # LoRAs or checkpoints: one grid, the same search and family filter.
        self.kind = QComboBox()
        self.kind.setObjectName("ModelsKind")
        self.kind.addItem("LoRAs", "lora")
        self.kind.addItem("Checkpoints", "checkpoint")
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
        search_row.addWidget(self.kind)
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
        # Ctrl/Shift-click picks several LoRAs for a swatch batch (and the randomizer's axis).
        self.grid.setSelectionMode(QListView.SelectionMode.ExtendedSelection)

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
        self.swatch_button = QPushButton("Swatch batch")
        self.swatch_button.setObjectName("SwatchBatch")
        self.swatch_button.setEnabled(False)
        self.swatch_button.setToolTip(swatch_words(0))
        self.triggers_row.addStretch(1)  # boxes as wide as their words: a click beside one misses
        bottom = QVBoxLayout()
        bottom.addLayout(self.triggers_row)
        actions = QHBoxLayout()
        actions.addWidget(self.weight_slider)
        actions.addWidget(self.weight)
        actions.addStretch(1)
        actions.addWidget(self.swatch_button)
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
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.family.currentIndexChanged.connect(self._filter)
        self.category.currentIndexChanged.connect(self._filter)
        self.tag.currentIndexChanged.connect(self._filter)
        self.favourites.toggled.connect(self._filter)
        self.on_server.toggled.connect(self._filter)
        self.grid.selectionModel().currentChanged.connect(self._selected)
        self.grid.selectionModel().selectionChanged.connect(lambda *_: self._picked_changed())
        self.grid.doubleClicked.connect(lambda _index: self._add())
        self.add_button.clicked.connect(self._add)
        self.try_button.clicked.connect(self._try)
        self.swatch_button.clicked.connect(self._swatch)
        self.add_folder_button.clicked.connect(self._ask_folder)
        controller.entries_changed.connect(self._entries_changed)
        controller.progress_changed.connect(self._progress)
        controller.message_changed.connect(self.status.setText)
        self._entries_changed()

    def _entries_changed(self) -> None:
        # Hashes arriving, a node's list or the current node change nothing here: the choices
        # are filled again only when they differ.
        _refill(self.category, "All categories", self.controller.categories())
        _refill(self.tag, "All tags", self.controller.tags())
        self._filter()

    def _filter(self) -> None:
        selected = self._entry()
        picked = {entry.name for entry in self.picked()}
        self.on_server.setEnabled(bool(self.controller.current_node))
        node = self.controller.current_node if self.on_server.isChecked() else ""
        if self.checkpoints:
            rows = self.controller.filtered(self.search.text(), self.family.currentData() or "",
                                            kind="checkpoint")
        else:
            rows = self.controller.filtered(self.search.text(), self.family.currentData() or "",
                                            self.category.currentData() or "", node=node,
                                            tag=self.tag.currentData() or "",
                                            favourites=self.favourites.isChecked())
        self.model.set_rows(rows)
        # The LoRA the user picked, read again (its sidecar edited, a server's list, a folder
        # re-read) is a new entry: it stays picked and shows what is known now.
        again = next((row for row, entry in enumerate(rows) if selected is not None
                      and (entry.kind, entry.name) == (selected.kind, selected.name)), None)
        if again is not None:
            index = self.model.index(again)
            if self.grid.currentIndex() != index:
                self.grid.setCurrentIndex(index)
            self._show(rows[again])
        else:
            self._show(None)
        if len(picked) > 1:
            self._reselect(picked)
        self._picked_changed()

    @property
    def checkpoints(self) -> bool:
        """True while the grid shows checkpoints rather than LoRAs."""
        return self.kind.currentData() == "checkpoint"

    def _kind_changed(self) -> None:
        lora = not self.checkpoints
        for widget in (self.category, self.tag, self.favourites, self.on_server, self.weight,
                       self.weight_slider, self.try_button, self.swatch_button):
            widget.setVisible(lora)
        self.add_button.setText("Add to prompt" if lora else "Use this model")
        self.grid.setSelectionMode(QListView.SelectionMode.ExtendedSelection if lora
                                   else QListView.SelectionMode.SingleSelection)
        self.grid.clearSelection()
        self._show(None)
        self._filter()

    def _reselect(self, names: set[str]) -> None:
        """Pick again the LoRAs picked before the rows were re-read (a folder or server list
        read again), those still shown, so a multi-selection survives it."""
        selection = QItemSelection()
        for row, entry in enumerate(self.model.rows):
            if entry.name in names:
                index = self.model.index(row)
                selection.select(index, index)
        self.grid.selectionModel().select(selection,
                                          QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def _progress(self, done: int, total: int) -> None:
        if total:
            self.status.setText(f"Reading LoRAs… {done} of {total}")

    def _entry(self) -> ModelEntry | None:
        index = self.grid.currentIndex()
        return index.data(ModelsModel.EntryRole) if index.isValid() else None

    def _selected(self, index: QModelIndex, _previous: QModelIndex) -> None:
        self._show(index.data(ModelsModel.EntryRole) if index.isValid() else None)

    def _show(self, entry: ModelEntry | None) -> None:
        old, self._shown = self._shown, entry
        if entry is not None and entry is old:
            return  # the same LoRA again (the list was refreshed): keep the user's ticks
        if (entry is not None and old is not None and (entry.kind, entry.name) == (old.kind, old.name)
                and entry.triggers == old.triggers):
            self._describe(entry)  # read again with the same words: keep the ticks and weight
            return
        for box in self.trigger_boxes:
            self.triggers_row.removeWidget(box)
            box.deleteLater()
        self.trigger_boxes = []
        self.add_button.setEnabled(entry is not None)
        self.try_button.setEnabled(entry is not None)
        if entry is None:
            self.details.setText("Pick a LoRA to see its trigger words." if not self.checkpoints
                                 else "Pick a checkpoint to use it for Text to image.")
            return
        self._describe(entry)
        if self.checkpoints:
            return
        for i, word in enumerate(entry.triggers):
            box = QCheckBox(word)
            box.setChecked(i == 0)  # the first trigger word by default, not ten conflicting ones
            self.triggers_row.insertWidget(i, box)
            self.trigger_boxes.append(box)
        self.weight.setValue(entry.weight or 1.0)

    def _describe(self, entry: ModelEntry) -> None:
        if self.checkpoints:
            where = f" (from {entry.base_model_from})" if entry.base_model_from else ""
            nodes = self.controller.nodes_with(entry)
            listed = f" · on {entry.origin}" if entry.origin else f" · {entry.path}"
            self.details.setText(f"{entry.display_name} · {entry.base_model.value}{where}{listed}"
                                 + (" · on " + ", ".join(nodes) if nodes else ""))
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

    def _add(self) -> None:
        entry = self._entry()
        if entry is None:
            return
        if self.checkpoints:
            self.controller.use_checkpoint(entry)
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
        self.controller.runs.try_lora(entry, words)

    def picked(self) -> list[ModelEntry]:
        """The selected LoRAs, in the grid's order."""
        rows = sorted(index.row() for index in self.grid.selectionModel().selectedIndexes())
        return [self.model.rows[row] for row in rows if row < len(self.model.rows)]

    def _picked_changed(self) -> None:
        picked = self.picked()
        count = len(picked)
        self.swatch_button.setEnabled(2 <= count <= MAX_SWATCH)
        # The count is on the button before it runs: one image per LoRA.
        self.swatch_button.setText(f"Swatch batch ({count} images)" if count >= 2 else "Swatch batch")
        self.swatch_button.setToolTip(swatch_words(count))
        self.controller.set_panel_choice(picked, self.model.rows)

    def _swatch(self) -> None:
        self.controller.runs.swatch(self.picked())

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of LoRAs")
        if folder:
            self.controller.add_folder(folder)


def _refill(box: QComboBox, everything: str, names: list[str]) -> None:
    """*box*'s choices as *everything* ("" as data) and *names*, keeping the chosen one."""
    if box.count() and [box.itemData(i) for i in range(1, box.count())] == names:
        return
    current = box.currentData()
    box.blockSignals(True)
    box.clear()
    box.addItem(everything, "")
    for name in names:
        box.addItem(name, name)
    index = box.findData(current) if current else 0
    box.setCurrentIndex(max(index, 0))
    box.blockSignals(False)
