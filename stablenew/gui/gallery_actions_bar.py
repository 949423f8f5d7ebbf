"""GalleryActionsBar: what can be done to the selected images (tag, collect, move, copy, trash,
export, queue again, compare); folder and file choices use non-blocking dialogs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from stablenew.gui.widgets.layouts import FlowLayout

if TYPE_CHECKING:
    from stablenew.controller.gallery_controller import GalleryController


class GalleryActionsBar(QWidget):
    """Buttons acting on the selection the panel gives through `selected_keys`."""

    compare_requested = Signal(str, str)

    def __init__(self, selected_keys: Callable[[], list[str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._selected = selected_keys
        self.gallery: GalleryController | None = None
        self.dialog: QFileDialog | None = None  # the folder or ZIP being chosen
        self.count_label = QLabel("")
        self.count_label.setObjectName("MutedLabel")
        self.tag_edit = QLineEdit()
        self.tag_edit.setPlaceholderText("Tag selected…")
        self.tag_edit.setToolTip("Type a tag and press Enter to add it to every selected image")
        self.tag_edit.returnPressed.connect(self._tag)
        self.collection = QComboBox()
        self.collection.setEditable(True)
        self.collection.setToolTip("A collection to add the selected images to (a new name makes one)")
        edit = self.collection.lineEdit()
        if edit is not None:
            edit.setPlaceholderText("Collection…")
        self.collect_button = QPushButton("Add to collection")
        self.collect_button.clicked.connect(self._collect)
        self.move_button = QPushButton("Move…")
        self.copy_button = QPushButton("Copy…")
        self.trash_button = QPushButton("Trash")
        self.trash_button.setToolTip(
            "Move the selected images to the system trash (you can restore them there)")
        self.export_button = QPushButton("Export ZIP…")
        self.export_button.setToolTip("A ZIP of the selected images with their settings, ratings and tags")
        self.queue_button = QPushButton("Queue again")
        self.queue_button.setToolTip("Make each selected image again with its own settings and seed")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Two selected images side by side; ← or → picks the better one")
        self.move_button.clicked.connect(lambda: self._choose_folder(copy=False))
        self.copy_button.clicked.connect(lambda: self._choose_folder(copy=True))
        self.trash_button.clicked.connect(lambda: self._act(lambda a, keys: a.trash(keys)))
        self.export_button.clicked.connect(self._choose_zip)
        self.queue_button.clicked.connect(lambda: self._act(lambda a, keys: a.queue_again(keys)))
        self.compare_button.clicked.connect(self._compare)
        # The gallery's column is often narrow (the viewer beside it): the bar wraps onto more
        # rows there rather than cut every label short.
        self.tag_edit.setMinimumWidth(120)
        self.collection.setMinimumWidth(140)
        layout = FlowLayout(self)
        for widget in (self.count_label, self.tag_edit, self.collection, self.collect_button,
                       self.move_button, self.copy_button, self.trash_button, self.export_button,
                       self.queue_button, self.compare_button):
            layout.addWidget(widget)
        self.selection_changed()

    def bind(self, gallery: GalleryController) -> None:
        self.gallery = gallery
        gallery.actions.collections_changed.connect(self._collections)

    def selection_changed(self) -> None:
        n = len(self._selected())
        # Shown only for a selection of several: one image has its own controls in the viewer.
        self.setVisible(n > 1)
        self.count_label.setText(f"{n:,} selected" if n else "")
        for button in (self.tag_edit, self.move_button, self.copy_button, self.trash_button,
                       self.export_button, self.queue_button):
            button.setEnabled(n > 0)
        self.compare_button.setEnabled(n == 2)

    def _collections(self, collections: list[tuple[str, int]]) -> None:
        text = self.collection.currentText()
        self.collection.clear()
        self.collection.addItems([name for name, _n in collections])
        self.collection.setEditText(text)

    def _act(self, action: Callable[..., None]) -> None:
        keys = self._selected()
        if self.gallery is not None and keys:
            action(self.gallery.actions, keys)

    def _tag(self) -> None:
        tag = self.tag_edit.text().strip()
        if tag and self.gallery is not None:
            self.gallery.tag_many(self._selected(), tag)
            self.tag_edit.clear()

    def _collect(self) -> None:
        if self.gallery is not None:
            self.gallery.actions.add_to_collection(self.collection.currentText(), self._selected())

    def _choose_folder(self, *, copy: bool) -> None:
        keys = self._selected()
        dialog = self._dialog(f"{'Copy' if copy else 'Move'} {len(keys)} images to…",
                              lambda folder: self._transfer(keys, folder, copy), folder=True)
        if self.gallery is not None:  # next to the images: a folder beside the runs is typical
            dialog.setDirectory(str(self.gallery.output_dir))
        dialog.open()

    def choose_folder_to_add(self) -> None:
        """Ask for a folder of images to show in the gallery too."""
        dialog = self._dialog("Show the images of a folder in the gallery", self._add_folder,
                              folder=True)
        if self.gallery is not None:  # beside the outputs, where other tools' folders often are
            dialog.setDirectory(str(self.gallery.output_dir.parent))
        dialog.open()

    def _add_folder(self, folder: str) -> None:
        if self.gallery is not None:
            self.gallery.actions.add_folder(folder)

    def _choose_zip(self) -> None:
        keys = self._selected()
        dialog = self._dialog("Export the selected images as a ZIP",
                              lambda dest: self._export(keys, dest), folder=False)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilter("ZIP archives (*.zip)")
        dialog.setDefaultSuffix("zip")
        dialog.open()

    def _transfer(self, keys: list[str], folder: str, copy: bool) -> None:
        if self.gallery is not None:
            self.gallery.actions.transfer(keys, folder, copy=copy)

    def _export(self, keys: list[str], dest: str) -> None:
        if self.gallery is not None:
            self.gallery.actions.export_zip(keys, dest)

    def _dialog(self, title: str, chosen: Callable[[str], None], *, folder: bool) -> QFileDialog:
        """A new file dialog for this choice (a reused one keeps the last choice's name)."""
        if self.dialog is not None:
            self.dialog.deleteLater()
        self.dialog = QFileDialog(self, title)
        self.dialog.setOption(QFileDialog.Option.DontUseNativeDialog)  # the same on every desktop
        if folder:
            self.dialog.setFileMode(QFileDialog.FileMode.Directory)
        self.dialog.fileSelected.connect(chosen)
        return self.dialog

    def _compare(self) -> None:
        keys = self._selected()
        if len(keys) == 2:
            self.compare_requested.emit(keys[0], keys[1])
