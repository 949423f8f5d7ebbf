"""AxesEditor: rows of (setting, values) for the randomizer's config matrix."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

_PLACEHOLDERS = {
    "steps": "20, 30, 40  or  20-40 (+10)",
    "cfg_scale": "5, 7, 9  or  4-8 [5]",
    "size": "512x768, 768x512",
    "lora": "none, add_detail:0.5, add_detail:1",
    "lora_library": "select LoRAs in the Models tab (or filter it): they are used here",
    "sampler": "Euler a, DPM++ 2M",
    "checkpoint": "model-a.safetensors, model-b.safetensors",
    "style": "cinematic lighting, watercolor",
    "family": "sdxl, flux  (sd15, pony, illustrious, sd35)",
    "guidance": "2.5, 3.5, 4.5  or  2-5 [4]",
}


LIBRARY_KIND = "lora_library"
_VALUES_TIP = ("Values to try, separated by commas; numbers also take A1111 ranges like "
               "20-40 (+10) or 4-8 [5]")
_LIBRARY_TIP = ("The LoRAs selected in the Models tab (Ctrl-click several), or every LoRA its "
                "filter shows when none is selected, each at its preferred weight")


class AxisRow(QWidget):
    """One axis: which setting, and its values as the user types them."""

    changed = Signal()
    remove_requested = Signal(object)

    def __init__(self, kinds: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = QComboBox()
        for value, title in kinds:
            self.kind.addItem(title, value)
        self.kind.setToolTip("Which setting this axis changes")
        self.values = QLineEdit()
        self.values.setToolTip(_VALUES_TIP)
        #: The Models tab's pick, shown (read-only) when this row is "LoRA from library".
        self.library_text = ""
        self.remove = QToolButton()
        self.remove.setText("✕")
        self.remove.setToolTip("Remove this axis")
        self.remove.setAutoRaise(True)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.kind)
        row.addWidget(self.values, 1)
        row.addWidget(self.remove)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.values.textChanged.connect(self.changed)
        self.remove.clicked.connect(lambda: self.remove_requested.emit(self))
        self._kind_changed()

    def value(self) -> tuple[str, str]:
        return str(self.kind.currentData()), self.values.text()

    def set_library_text(self, text: str) -> None:
        """The Models tab's pick changed (the adapter has it already: nothing is sent back)."""
        self.library_text = text
        if self.is_library:
            self.values.blockSignals(True)
            self.values.setText(text)
            self.values.blockSignals(False)

    @property
    def is_library(self) -> bool:
        return self.kind.currentData() == LIBRARY_KIND

    def _kind_changed(self) -> None:
        library = self.is_library
        self.values.setReadOnly(library)
        self.values.setToolTip(_LIBRARY_TIP if library else _VALUES_TIP)
        if library:
            self.values.blockSignals(True)
            self.values.setText(self.library_text)
            self.values.blockSignals(False)
        self.values.setPlaceholderText(_PLACEHOLDERS.get(str(self.kind.currentData()), "values, "
                                                                                      "separated by commas"))
        self.changed.emit()


class AxesEditor(QWidget):
    """A list of axis rows with an "Add axis" button; emits `axes_changed` with the rows."""

    axes_changed = Signal(list)  # list[tuple[str, str]]

    def __init__(self, kinds: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._kinds = kinds
        self._rows: list[AxisRow] = []
        self._library_text = ""
        self._list = QVBoxLayout()
        self._list.setContentsMargins(0, 0, 0, 0)
        self.add_button = QPushButton("Add axis")
        self.add_button.setToolTip("Vary a setting too: model, sampler, steps, CFG, size, LoRA…")
        self.add_button.clicked.connect(lambda: self.add_axis())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._list)
        layout.addWidget(self.add_button)

    @property
    def rows(self) -> list[AxisRow]:
        return list(self._rows)

    def add_axis(self, kind: str | None = None, values: str = "") -> AxisRow:
        row = AxisRow(self._kinds, self)
        row.set_library_text(self._library_text)
        if kind is not None:
            index = row.kind.findData(kind)
            if index < 0:  # a dotted config path from a preset, e.g. img2img.cfg_scale
                row.kind.addItem(kind, kind)
                index = row.kind.count() - 1
            row.kind.setCurrentIndex(index)
        row.values.setText(values)
        row.changed.connect(self._emit)
        row.remove_requested.connect(self._remove)
        self._rows.append(row)
        self._list.addWidget(row)
        self._emit()
        return row

    def value(self) -> list[tuple[str, str]]:
        return [row.value() for row in self._rows]

    def set_library_text(self, text: str) -> None:
        """The Models tab's pick as "name:weight, …", shown in every "LoRA from library" row."""
        self._library_text = text
        for row in self._rows:
            row.set_library_text(text)

    def set_rows(self, rows: list[tuple[str, str]]) -> None:
        """Replace every row (loading a spec); emits nothing while the caller blocks signals."""
        for row in self._rows:
            self._list.removeWidget(row)
            row.deleteLater()
        self._rows.clear()
        for kind, values in rows:
            self.add_axis(kind, values)

    def _remove(self, row: AxisRow) -> None:
        self._rows.remove(row)
        self._list.removeWidget(row)
        row.deleteLater()
        self._emit()

    def _emit(self) -> None:
        self.axes_changed.emit(self.value())
