"""One editor widget per FieldSpec kind; titles, limits, defaults and tooltips all come from the spec."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QWidget,
)

from stablenew.controller.field_spec import FieldSpec, FieldValue
from stablenew.gui.widgets.wheel_guard import guard_wheel

INT32_MAX = 2**31 - 1


def _show_start(line: QLineEdit) -> None:
    if not line.hasFocus():  # while the user types, the cursor stays where they put it
        line.setCursorPosition(0)


class FieldEditor(QObject):
    """Binds one widget to one dotted config path: `value()`, `set_value()`, `changed`."""

    changed = Signal(str)  # path

    def __init__(self, spec: FieldSpec, picker: bool = False, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.widget = self._build(spec, picker)
        self.widget.setObjectName(f"field:{spec.path}")
        tip = spec.description or spec.title
        self.widget.setToolTip(f"<b>{spec.title}</b><br>{tip}" if spec.description else tip)
        self.widget.setAccessibleName(spec.title)
        self.set_value(spec.default)

    def _build(self, spec: FieldSpec, picker: bool) -> QWidget:
        emit = lambda *_: self.changed.emit(self.spec.path)  # noqa: E731
        if spec.kind == "bool":
            box = QCheckBox(spec.title)
            box.toggled.connect(emit)
            return box
        if spec.kind == "choice" or picker:
            combo = QComboBox()
            combo.setEditable(spec.kind != "choice")
            combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
            if spec.kind == "choice" and len(spec.choice_labels) == len(spec.choices):
                for value, label in zip(spec.choices, spec.choice_labels, strict=True):
                    combo.addItem(label, value)  # shows the label, keeps the value
            else:
                combo.addItems(list(spec.choices))
            combo.currentTextChanged.connect(emit)
            guard_wheel(combo)  # the wheel scrolls the cards past it (see wheel_guard)
            combo.setMinimumContentsLength(12)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            line = combo.lineEdit()  # None unless the box is editable
            if line is not None:
                if spec.default == "":
                    line.setPlaceholderText("server's current")
                # A name wider than the box shows its start (what tells models apart), not its
                # end: Qt leaves the cursor, and so the view, at the end of a text it sets.
                combo.currentTextChanged.connect(lambda _t: _show_start(line))
                line.editingFinished.connect(lambda: line.setCursorPosition(0))
            return combo
        if spec.kind == "int" and (spec.maximum is None or spec.maximum <= INT32_MAX):
            spin = QSpinBox()
            spin.setRange(int(spec.minimum if spec.minimum is not None else -INT32_MAX),
                          int(spec.maximum if spec.maximum is not None else INT32_MAX))
            spin.setSingleStep(int(spec.step))
            spin.valueChanged.connect(emit)
            guard_wheel(spin)
            return spin
        if spec.kind in ("int", "float"):
            # Seeds go up to 2**32-1, past QSpinBox's int32; a double holds them exactly.
            number = QDoubleSpinBox()
            low = spec.minimum if spec.minimum is not None else -1e12
            if spec.exclusive_minimum:
                low = low + spec.step
            number.setRange(float(low), float(spec.maximum if spec.maximum is not None else 1e12))
            number.setDecimals(spec.decimals)
            number.setSingleStep(spec.step)
            number.valueChanged.connect(emit)
            guard_wheel(number)
            return number
        if spec.kind == "text":
            text = QPlainTextEdit()
            text.setPlaceholderText(spec.description or spec.title)
            text.setTabChangesFocus(True)
            text.setFixedHeight(74 if spec.name == "prompt" else 52)
            text.textChanged.connect(emit)
            return text
        line = QLineEdit()
        if spec.kind == "secret":
            line.setEchoMode(QLineEdit.EchoMode.Password)
        line.setPlaceholderText(spec.description or "")
        line.textChanged.connect(emit)
        return line

    def value(self) -> FieldValue:
        w = self.widget
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox):
            data = w.currentData()
            return data if isinstance(data, str) else w.currentText()
        if isinstance(w, QSpinBox):
            return w.value()
        if isinstance(w, QDoubleSpinBox):
            return int(round(w.value())) if self.spec.kind == "int" else round(w.value(), 6)
        if isinstance(w, QPlainTextEdit):
            return w.toPlainText()
        if isinstance(w, QLineEdit):
            return w.text()
        raise TypeError(f"{self.spec.path}: no value in a {type(w).__name__}")

    def set_value(self, value: FieldValue) -> None:
        w = self.widget
        if isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QComboBox):
            text = "" if value is None else str(value)
            index = w.findData(text)
            if index < 0:
                index = w.findText(text)
            if index >= 0:
                w.setCurrentIndex(index)
            elif w.isEditable():
                w.setEditText(text)
        elif isinstance(w, QSpinBox):
            w.setValue(int(value) if isinstance(value, int | float) else 0)
        elif isinstance(w, QDoubleSpinBox):
            w.setValue(float(value) if isinstance(value, int | float) else 0.0)
        elif isinstance(w, QPlainTextEdit):
            text = "" if value is None else str(value)
            if w.toPlainText() != text:
                w.setPlainText(text)
        elif isinstance(w, QLineEdit):
            w.setText("" if value is None else str(value))

    def set_choices(self, names: list[str], groups: list[tuple[str, list[str]]] | None = None) -> None:
        """Fill a picker with the server's names, keeping the current value even if it is not
        listed; with *groups* (title, names), each titled group under a heading that cannot be
        picked (checkpoints by model family)."""
        w = self.widget
        if not isinstance(w, QComboBox) or self.spec.kind == "choice":
            return
        current = w.currentText()
        w.blockSignals(True)
        w.clear()
        titled = groups is not None and any(title for title, _ in groups)
        if groups is not None and titled:
            model = w.model()
            for title, members in groups:
                if w.count():
                    w.insertSeparator(w.count())
                w.addItem(title)
                if isinstance(model, QStandardItemModel):
                    header = model.item(w.count() - 1)
                    header.setEnabled(False)  # a heading, not a model
                    header.setSelectable(False)
                w.addItems(members)
        else:
            w.addItems(names)
        w.blockSignals(False)
        self.set_value(current)
        if current and current not in names and names:
            w.setToolTip(f"<b>{self.spec.title}</b><br>{self.spec.description}<br>"
                         f"<i>'{current}' is not installed on the connected server.</i>")
