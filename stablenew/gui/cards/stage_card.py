"""StageCard and CollapsibleSection: a stage's switch, its fields in a tidy grid, optional sub-sections."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from stablenew.gui.cards.editors import FieldEditor


def _label_for(editor: FieldEditor) -> QLabel:
    label = QLabel(editor.spec.title)
    label.setObjectName("FieldLabel")
    label.setProperty("field_path", editor.spec.path)  # hidden with its field (model families)
    label.setToolTip(editor.widget.toolTip())
    label.setBuddy(editor.widget)
    return label


class FieldGrid(QWidget):
    """Fields in a tidy grid: text fields span the row, the rest sit label-over-field, two a
    row. A field hidden (one the model's family does not use) leaves no hole: the others close
    up, as they would if it had never been there."""

    COLUMNS = 2

    def __init__(self, editors: list[FieldEditor], margins: tuple[int, int, int, int],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editors = list(editors)
        self.labels = {e.spec.path: _label_for(e) for e in self.editors if e.spec.kind != "bool"}
        self.hidden: frozenset[str] = frozenset()
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(*margins)
        self.grid.setHorizontalSpacing(12)
        self.grid.setVerticalSpacing(3)
        for c in range(self.COLUMNS):
            self.grid.setColumnStretch(c, 1)
        self._place()

    def hide_fields(self, paths: Collection[str]) -> None:
        """Hide exactly the fields of *paths* that are in this grid (showing the others) and
        close up the gaps."""
        hidden = frozenset(e.spec.path for e in self.editors if e.spec.path in paths)
        if hidden == self.hidden:
            return
        self.hidden = hidden
        for editor in self.editors:
            shown = editor.spec.path not in hidden
            editor.widget.setVisible(shown)
            label = self.labels.get(editor.spec.path)
            if label is not None:
                label.setVisible(shown)
        self._place()

    def _place(self) -> None:
        for editor in self.editors:  # out of the grid (still children of this widget)
            self.grid.removeWidget(editor.widget)
            label = self.labels.get(editor.spec.path)
            if label is not None:
                self.grid.removeWidget(label)
        row = col = 0
        columns = self.COLUMNS
        for editor in self.editors:
            spec = editor.spec
            if spec.path in self.hidden:
                continue
            label = self.labels.get(spec.path)
            if spec.kind == "text" and label is not None:
                if col:
                    row, col = row + 2, 0
                self.grid.addWidget(label, row, 0, 1, columns)
                self.grid.addWidget(editor.widget, row + 1, 0, 1, columns)
                row += 2
                continue
            if label is not None:
                self.grid.addWidget(label, row, col)
            self.grid.addWidget(editor.widget, row + 1, col)
            col += 1
            if col == columns:
                row, col = row + 2, 0


def field_grid(editors: list[FieldEditor], margins: tuple[int, int, int, int]) -> FieldGrid:
    """A widget holding *editors* in the cards' grid, with the cards' spacing."""
    return FieldGrid(editors, margins)


class CollapsibleSection(QFrame):
    """A titled part of a card (hires fix, refiner) that folds away; its switch stays visible."""

    def __init__(self, switch: FieldEditor, editors: list[FieldEditor], expanded: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("CardSection")
        self.switch = switch
        self.arrow = QToolButton()
        self.arrow.setObjectName("SectionArrow")
        self.arrow.setCheckable(True)
        self.arrow.setAutoRaise(True)
        self.arrow.toggled.connect(self.set_expanded)
        self.body = field_grid(editors, (22, 4, 0, 4))  # indented under the section's switch
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.arrow)
        header.addWidget(switch.widget)
        header.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.body)
        self.arrow.setChecked(expanded)
        self.set_expanded(expanded)
        switch.changed.connect(lambda _p: self._switched())

    def _switched(self) -> None:
        if self.switch.value() and not self.arrow.isChecked():
            self.arrow.setChecked(True)

    def set_expanded(self, on: bool) -> None:
        self.arrow.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.body.setVisible(on)


class StageCard(QFrame):
    """One pipeline stage: a header with its enable switch, then its fields (dimmed when off)."""

    def __init__(self, title: str, switch: FieldEditor, editors: list[FieldEditor],
                 sections: Sequence[CollapsibleSection] = (), subtitle: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("StageCard")
        self.switch = switch
        if isinstance(switch.widget, QCheckBox):
            switch.widget.setText("")  # the card's title says what it switches
        switch.widget.setObjectName("StageSwitch")
        switch.widget.setToolTip(switch.widget.toolTip() or f"Run the {title} stage")
        title_label = QLabel(title)
        title_label.setObjectName("CardTitle")
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(title_label)
        if subtitle:
            sub = QLabel(subtitle)
            sub.setObjectName("CardSubtitle")
            sub.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            header.addWidget(sub, 1)
        else:
            header.addStretch(1)
        header.addWidget(switch.widget)
        self.body = field_grid(editors, (0, 6, 0, 0))
        body_layout = QVBoxLayout()
        body_layout.setContentsMargins(0, 0, 0, 0)
        body_layout.addWidget(self.body)
        for section in sections:
            body_layout.addWidget(section)
        holder = QWidget()
        holder.setLayout(body_layout)
        self.holder = holder
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 12)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(holder)
        if isinstance(switch.widget, QCheckBox):
            switch.widget.toggled.connect(self._enabled_changed)
        self._enabled_changed(bool(switch.value()))

    def _enabled_changed(self, on: bool) -> None:
        self.holder.setVisible(on)
        self.setProperty("active", on)
        self.style().unpolish(self)
        self.style().polish(self)
