"""ReferencesSection: up to three reference pictures on a card (drop, paste or choose a file)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QStandardPaths, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from stablenew.gui.widgets.wheel_guard import guard_wheel

if TYPE_CHECKING:
    from stablenew.controller.images import DecodedImage

MAX_UNITS = 3
PICTURE_FILES = "Images (*.png *.jpg *.jpeg *.webp)"


def picture_dialog(parent: QWidget, title: str) -> QFileDialog:
    """A file dialog for one picture, opening in the user's Pictures folder (not wherever the
    app was started from); the caller connects `fileSelected` and calls `open()`."""
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    dialog = QFileDialog(parent, title, pictures if Path(pictures).is_dir() else "", PICTURE_FILES)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    return dialog


def _number(settings: dict[str, object], key: str, default: float) -> float:
    """A unit's number as its JSON holds it (the model's default when it is not there)."""
    value = settings.get(key, default)
    return float(value) if isinstance(value, int | float | str) else default


def _spin(low: float, high: float, value: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(0.05)
    box.setDecimals(2)
    box.setValue(value)
    box.setToolTip(tip)
    guard_wheel(box)
    return box


class ReferenceRow(QWidget):
    """One reference picture: thumbnail, kind, model, strength, start/end, preprocess, remove."""

    changed = Signal()
    remove_requested = Signal(object)

    def __init__(self, settings: dict[str, object], kinds: list[tuple[str, str]],
                 thumb: DecodedImage | None = None,
                 parent: QWidget | None = None, models: tuple[str, ...] = ()) -> None:
        super().__init__(parent)
        self.setObjectName("ReferenceRow")
        self._settings = dict(settings)
        self.thumb = QLabel()
        self.thumb.setFixedSize(56, 56)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumb.setToolTip(str(settings.get("image", "")))
        self.has_thumbnail = False
        if thumb is not None:
            self.show_thumbnail(thumb)
        else:
            self.thumb.setText("…")  # read in the background (a unit from a saved config)
        self.kind = QComboBox()
        self.kind.setObjectName("reference:kind")
        for value, label in kinds:
            self.kind.addItem(label, value)
        self.kind.setCurrentIndex(max(0, self.kind.findData(settings.get("kind", "canny"))))
        self.kind.setToolTip("What the picture steers: edges, depth, pose, line art, tiles, or a style "
                             "or face to keep.")
        # The node's ControlNet/IP-Adapter models to pick from; a name typed stays as typed.
        self.model = QComboBox()
        self.model.setObjectName("reference:model")
        self.model.setEditable(True)
        self.model.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model.setMinimumContentsLength(12)
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        line = self.model.lineEdit()
        if line is not None:
            line.setPlaceholderText("Model: automatic")
        self.model.setToolTip("Empty: the node's model for this kind and the checkpoint's family.")
        guard_wheel(self.kind, self.model)  # the wheel scrolls the cards past them
        self.set_models(models, str(settings.get("model", "")))
        self.strength = _spin(0.0, 2.0, _number(settings, "strength", 1.0), "Strength")
        self.start = _spin(0.0, 1.0, _number(settings, "start", 0.0),
                           "Start: fraction of the steps where it starts steering")
        self.end = _spin(0.0, 1.0, _number(settings, "end", 1.0), "End: where it stops steering")
        self.preprocess = QCheckBox("Preprocess on the server")
        self.preprocess.setToolTip("Off: the picture is already a map (edges, depth, pose).")
        self.preprocess.setChecked(bool(settings.get("preprocess", True)))
        self.remove = QToolButton()
        self.remove.setText("✕")
        self.remove.setObjectName("reference:remove")
        self.remove.setToolTip("Remove this reference")
        self.remove.clicked.connect(lambda: self.remove_requested.emit(self))
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 2, 0, 2)
        grid.addWidget(self.thumb, 0, 0, 3, 1)
        grid.addWidget(self.kind, 0, 1, 1, 2)
        grid.addWidget(self.model, 0, 3, 1, 2)
        grid.addWidget(self.remove, 0, 5)
        for col, (label, box) in enumerate((("Strength", self.strength), ("Start", self.start),
                                            ("End", self.end))):
            grid.addWidget(QLabel(label), 1, 1 + col)
            grid.addWidget(box, 2, 1 + col)
        grid.addWidget(self.preprocess, 2, 4, 1, 2)
        for signal in (self.kind.currentIndexChanged, self.model.currentTextChanged,
                       self.strength.valueChanged, self.start.valueChanged, self.end.valueChanged,
                       self.preprocess.toggled):
            signal.connect(lambda *_: self.changed.emit())

    @property
    def image(self) -> str:
        return str(self._settings.get("image", ""))

    def show_thumbnail(self, thumb: DecodedImage | None) -> None:
        """The picture, small; None: it is gone (the run would say so too)."""
        if thumb is None:
            self.thumb.setText("missing")
            self.thumb.setToolTip(f"{self.image} cannot be read: remove this reference, or add "
                                  "the picture again.")
            return
        image = QImage(thumb.rgba, thumb.width, thumb.height, QImage.Format.Format_RGBA8888)
        self.thumb.setPixmap(QPixmap.fromImage(image.copy()))
        self.has_thumbnail = True

    def set_models(self, models: tuple[str, ...], current: str | None = None) -> None:
        """Offer the node's models; the chosen (or typed) one stays."""
        text = self.model.currentText() if current is None else current
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItem("")  # automatic
        self.model.addItems(list(models))
        self.model.setCurrentIndex(max(0, self.model.findText(text)) if text in models else 0)
        if text and text not in models:
            self.model.setEditText(text)
        self.model.blockSignals(False)

    def value(self) -> dict[str, object]:
        return {**self._settings, "kind": self.kind.currentData(), "model": self.model.currentText().strip(),
                "strength": round(self.strength.value(), 3), "start": round(self.start.value(), 3),
                "end": round(self.end.value(), 3), "preprocess": self.preprocess.isChecked()}


class ReferencesSection(QFrame):
    """The References part of the txt2img and img2img cards; `value()` is the config's list."""

    changed = Signal(str)  # the config path, e.g. "txt2img.references"
    #: A picture to store: (stage, file path) or (stage, encoded bytes)
    file_chosen = Signal(str, str)
    image_pasted = Signal(str, bytes)
    #: The stage whose "From gallery" was pressed: the panel adds the gallery's selection.
    gallery_requested = Signal(str)
    #: (stage, stored picture path): a unit shown from a config needs its thumbnail read
    thumbnail_wanted = Signal(str, str)

    def __init__(self, stage: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(f"references:{stage}")
        self.stage = stage
        self.path = f"{stage}.references"
        self.kinds: list[tuple[str, str]] = []
        self.models: tuple[str, ...] = ()
        self.rows: list[ReferenceRow] = []
        self.setAcceptDrops(True)
        title = QLabel("References")
        title.setObjectName("FieldLabel")
        self.hint = QLabel("Drop, paste, choose or take from the gallery up to 3 pictures to "
                           "steer pose, depth, edges, style or a face.")
        self.hint.setWordWrap(True)
        self.add_button = QPushButton("Choose…")
        self.add_button.setObjectName(f"references:{stage}:add")
        self.add_button.setToolTip("Add a reference picture from a file")
        self.add_button.clicked.connect(self._choose)
        self.paste_button = QPushButton("Paste")
        self.paste_button.setObjectName(f"references:{stage}:paste")
        self.paste_button.setToolTip("Add the picture on the clipboard")
        self.paste_button.clicked.connect(self.paste)
        self.gallery_button = QPushButton("From gallery")
        self.gallery_button.setObjectName(f"references:{stage}:gallery")
        self.gallery_button.setToolTip("Add the pictures selected in the gallery")
        self.gallery_button.clicked.connect(lambda: self.gallery_requested.emit(self.stage))
        self.error = QLabel()
        self.error.setObjectName("ReferenceError")
        self.error.setWordWrap(True)
        self.error.hide()
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.paste_button)
        header.addWidget(self.gallery_button)
        header.addWidget(self.add_button)
        self.rows_layout = QVBoxLayout()
        self.rows_layout.setContentsMargins(0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.hint)
        layout.addLayout(self.rows_layout)
        layout.addWidget(self.error)
        self._update_buttons()

    # -- adding
    def _choose(self) -> None:
        dialog = picture_dialog(self, "Choose a reference picture")
        dialog.fileSelected.connect(lambda path: self.file_chosen.emit(self.stage, path))
        dialog.open()  # not exec(): the window keeps running while it is open

    def paste(self) -> None:
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            self.show_error("The clipboard holds no picture.")
            return
        self.image_pasted.emit(self.stage, _png_bytes(image))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        mime = event.mimeData()
        if mime.hasImage() or any(u.isLocalFile() for u in mime.urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        mime = event.mimeData()
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
        if files:
            for path in files[: MAX_UNITS - len(self.rows)]:
                self.file_chosen.emit(self.stage, path)
        elif mime.hasImage():
            self.image_pasted.emit(self.stage, _png_bytes(QImage(mime.imageData())))
        event.acceptProposedAction()

    def add_unit(self, settings: dict[str, object], thumb: DecodedImage | None = None) -> None:
        """Show a stored picture as a new unit (ignored once three are there)."""
        if len(self.rows) >= MAX_UNITS:
            self.show_error(f"At most {MAX_UNITS} references per card.")
            return
        self._add_row(settings, thumb)
        self.changed.emit(self.path)

    def _add_row(self, settings: dict[str, object], thumb: DecodedImage | None = None) -> None:
        row = ReferenceRow(settings, self.kinds, thumb, self, models=self.models)
        row.changed.connect(lambda: self.changed.emit(self.path))
        row.remove_requested.connect(self._remove)
        self.rows.append(row)
        self.rows_layout.addWidget(row)
        self.error.hide()
        self._update_buttons()
        if thumb is None and row.image:
            self.thumbnail_wanted.emit(self.stage, row.image)

    def set_thumbnail(self, path: str, thumb: DecodedImage | None) -> None:
        """The thumbnail read for the stored picture *path*, for each row that shows it."""
        for row in self.rows:
            if row.image == path and not row.has_thumbnail:
                row.show_thumbnail(thumb)

    def _remove(self, row: ReferenceRow) -> None:
        self.rows.remove(row)
        row.setParent(None)
        row.deleteLater()
        self._update_buttons()
        self.changed.emit(self.path)

    def _update_buttons(self) -> None:
        full = len(self.rows) >= MAX_UNITS
        self.add_button.setEnabled(not full)
        self.paste_button.setEnabled(not full)
        self.gallery_button.setEnabled(not full)
        self.hint.setVisible(not self.rows)

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()

    def set_models(self, models: tuple[str, ...]) -> None:
        """The connected node's ControlNet and IP-Adapter models, for every row's picker."""
        self.models = tuple(models)
        for row in self.rows:
            row.set_models(self.models)

    # -- value
    def value(self) -> list[dict[str, object]]:
        return [row.value() for row in self.rows]

    def set_value(self, units: list[dict[str, object]]) -> None:
        if units == self.value():
            return
        for row in list(self.rows):
            self.rows.remove(row)
            row.setParent(None)
            row.deleteLater()
        for settings in units[:MAX_UNITS]:
            self._add_row(settings)
        self._update_buttons()


def _png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    # PySide6 takes the format as str; its stubs say bytes.
    image.save(buffer, "PNG")  # type: ignore[call-overload]
    buffer.close()
    return bytes(data.data())
