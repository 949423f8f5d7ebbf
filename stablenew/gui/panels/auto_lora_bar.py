"""AutoLoraBar: "Add matching LoRAs" to every run, how many and from which category, in Models.

The choice is an app setting (also in Settings); the run step itself lives in the core
(stablenew.cluster.prompt_steps) and reads it before each image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSpinBox, QWidget

if TYPE_CHECKING:
    from stablenew.controller.catalog_controller import CatalogController

ANY_CATEGORY = "Any category"


class AutoLoraBar(QWidget):
    """One row: the switch, the fewest and most LoRAs to add, and the category to draw from."""

    def __init__(self, controller: CatalogController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("AutoLoraBar")
        self.switch = QCheckBox("Add matching LoRAs")
        self.switch.setObjectName("AutoLoras")
        self.switch.setToolTip("Before each image is made, LoRAs from this catalog that fit its "
                               "prompt (after enhancing), the model and the server are added with "
                               "their trigger word. The same prompt and seed get the same LoRAs.")
        self.least = QSpinBox()
        self.least.setObjectName("AutoLorasMin")
        self.most = QSpinBox()
        self.most.setObjectName("AutoLorasMax")
        for box, tip in ((self.least, "The fewest LoRAs to add when enough fit"),
                         (self.most, "The most LoRAs to add to one prompt")):
            box.setRange(1, 6)
            box.setToolTip(tip)
        self.category = QComboBox()
        self.category.setObjectName("AutoLorasCategory")
        self.category.setToolTip("Only LoRAs of this category (sub-folder)")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.switch)
        row.addWidget(self.least)
        row.addWidget(QLabel("to"))
        row.addWidget(self.most)
        row.addWidget(self.category, 1)
        self._loading = False
        self.switch.toggled.connect(self._changed)
        self.least.valueChanged.connect(lambda v: self._counts_changed(least=v))
        self.most.valueChanged.connect(lambda v: self._counts_changed(most=v))
        self.category.currentIndexChanged.connect(self._changed)
        controller.auto_changed.connect(self.load)
        controller.entries_changed.connect(self.load)  # new categories
        self.load()

    def load(self) -> None:
        """Show the settings' values (changed here, in Settings, or on start)."""
        values = self.controller.auto_values()
        self.setEnabled(values is not None)
        if values is None:
            return
        self._loading = True
        try:
            self.switch.setChecked(bool(values["lora_auto"]))
            self.least.setValue(int(values["lora_auto_min"]))
            self.most.setValue(int(values["lora_auto_max"]))
            chosen = str(values["lora_auto_categories"]).strip()
            self.category.clear()
            self.category.addItem(ANY_CATEGORY, "")
            names = list(self.controller.categories())
            if chosen and chosen not in names:
                names.append(chosen)  # typed in Settings, or its folder is not read yet
            for name in names:
                self.category.addItem(name, name)
            self.category.setCurrentIndex(max(self.category.findData(chosen), 0))
            self._enable_counts()
        finally:
            self._loading = False

    def _enable_counts(self) -> None:
        on = self.switch.isChecked()
        for widget in (self.least, self.most, self.category):
            widget.setEnabled(on)

    def _counts_changed(self, *, least: int | None = None, most: int | None = None) -> None:
        if self._loading:
            return
        # The fewest never above the most: moving one past the other carries it along.
        self._loading = True
        if least is not None and least > self.most.value():
            self.most.setValue(least)
        if most is not None and most < self.least.value():
            self.least.setValue(most)
        self._loading = False
        self._changed()

    def _changed(self) -> None:
        self._enable_counts()
        if self._loading:
            return
        self.controller.set_auto_values(
            lora_auto=self.switch.isChecked(), lora_auto_min=self.least.value(),
            lora_auto_max=self.most.value(), lora_auto_categories=self.category.currentData() or "")
