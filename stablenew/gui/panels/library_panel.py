"""LibraryPanel: the sidebar of presets, prompt packs and profiles, with search, undo and a
context menu; broken files stay listed with their error as a tooltip."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from stablenew.controller.library_controller import ItemKind, LibraryController
from stablenew.gui.panels.library_empty import EmptyLibraryNote
from stablenew.gui.panels.library_list import LibraryList
from stablenew.gui.widgets.notice import NoticeBanner

_OWN_DEFAULT = "(the pack's own choice)"


class LibraryPanel(QWidget):
    """Presets, packs and profiles; every action goes through the LibraryController."""

    def __init__(self, controller: LibraryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.search = QLineEdit(placeholderText="Search presets, packs and profiles")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(controller.set_filter)
        self.notice = NoticeBanner()
        self.notice.dismissed.connect(controller.clear_error)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Bring back what was just deleted")
        self.undo_button.clicked.connect(self.undo)
        self.undo_button.hide()
        self.name_dialog: QInputDialog | None = None  # "Save current…" asking for a name
        self.folder_dialog: QFileDialog | None = None  # "Folder…" asking for the packs folder

        self.presets = LibraryList(ItemKind.preset)
        self.profiles = LibraryList(ItemKind.profile)
        self.packs = LibraryList(ItemKind.pack)
        self.prompts = QListWidget()
        self.prompts.setObjectName("packPrompts")
        self.default_preset = QComboBox()
        self.default_preset.setToolTip("Preset applied together with the selected pack")
        self.default_preset.activated.connect(self._default_preset_chosen)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._presets_tab(), "Presets")
        self.tabs.addTab(self._packs_tab(), "Packs")
        self.tabs.addTab(self._profiles_tab(), "Profiles")

        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.undo_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.search)
        layout.addWidget(self.notice)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(status_row)

        for widget in (self.presets, self.profiles, self.packs):
            widget.customContextMenuRequested.connect(
                lambda pos, w=widget: self._context_menu(w, pos))
        self.presets.itemDoubleClicked.connect(lambda _i: self.apply_selected(ItemKind.preset))
        self.profiles.itemDoubleClicked.connect(lambda _i: self.apply_selected(ItemKind.profile))
        self.packs.currentItemChanged.connect(self._pack_selected)
        self.prompts.itemDoubleClicked.connect(lambda _i: self.apply_selected(ItemKind.pack))

        for kind in (ItemKind.preset, ItemKind.profile):
            delete = QShortcut(QKeySequence.StandardKey.Delete, self._list(kind))
            delete.setContext(Qt.ShortcutContext.WidgetShortcut)
            delete.activated.connect(lambda k=kind: self.delete_selected(k))
        undo = QShortcut(QKeySequence.StandardKey.Undo, self)
        undo.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        undo.activated.connect(self.undo)

        controller.presets_changed.connect(self._presets_changed)
        controller.profiles_changed.connect(self._profiles_changed)
        controller.folder_ready.connect(self._open_folder)
        controller.packs_changed.connect(self._packs_changed)
        controller.pack_actions.pack_prompts_changed.connect(self._show_prompts)
        controller.error_changed.connect(self.notice.show_error)
        controller.message_changed.connect(self.status.setText)
        controller.undo_changed.connect(self._undo_changed)
        self.notice.show_error(controller.error)
        self._presets_changed()
        self._packs_changed()
        self._profiles_changed()

    # --- layout -------------------------------------------------------------------------------

    def _buttons(self, *specs: tuple[str, str, Callable[[], None]]) -> QHBoxLayout:
        row = QHBoxLayout()
        for label, tip, slot in specs:
            button = QToolButton()
            button.setText(label)
            button.setToolTip(tip)
            # clicked(bool) would hand its "checked" to a slot's first optional parameter (a
            # preset name, a folder): every button calls its slot with no arguments.
            button.clicked.connect(lambda _checked=False, s=slot: s())
            row.addWidget(button)
        row.addStretch(1)
        return row

    def _more_button(self, kind: ItemKind) -> QToolButton:
        button = QToolButton()
        button.setText("More")
        button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        button.setMenu(self._menu(kind))
        return button

    def _presets_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.presets, 1)
        row = self._buttons(
            ("Apply", "Lay the selected preset over your current settings",
             lambda: self.apply_selected(ItemKind.preset)),
            ("Save current…", "Save your current settings as a new preset", self.save_current))
        row.addWidget(self._more_button(ItemKind.preset))
        layout.addLayout(row)
        return tab

    def _profiles_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(0, 4, 0, 0)
        self.profiles_empty = EmptyLibraryNote("", "New profile…")
        self.profiles_empty.create_button.clicked.connect(lambda: self.edit_profile(new=True))
        self.profiles_empty.open_button.clicked.connect(
            lambda: self.controller.make_folder(ItemKind.profile))
        self._profiles_stack = QStackedWidget()
        self._profiles_stack.addWidget(self.profiles)
        self._profiles_stack.addWidget(self.profiles_empty)
        layout.addWidget(self._profiles_stack, 1)
        row = self._buttons(("Apply", "Fill the prompt with this profile and bias the randomizer",
                             lambda: self.apply_selected(ItemKind.profile)),
                            ("New…", "A new profile, starting from your current prompt",
                             lambda: self.edit_profile(new=True)),
                            ("Edit…", "Change the selected profile", self.edit_profile))
        row.addWidget(self._more_button(ItemKind.profile))
        layout.addLayout(row)
        return tab

    def _packs_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(0, 4, 0, 0)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.packs)
        split.addWidget(self.prompts)
        self.packs_empty = EmptyLibraryNote("", "Create a pack…")
        self.packs_empty.create_button.clicked.connect(lambda: self.create_pack())
        self.packs_empty.open_button.clicked.connect(lambda: self.controller.make_folder(ItemKind.pack))
        self._packs_stack = QStackedWidget()
        self._packs_stack.addWidget(split)
        self._packs_stack.addWidget(self.packs_empty)
        layout.addWidget(self._packs_stack, 1)
        preset_row = QHBoxLayout()
        preset_row.addWidget(QLabel("Default preset"))
        preset_row.addWidget(self.default_preset, 1)
        layout.addLayout(preset_row)
        layout.addLayout(self._buttons(
            ("Apply", "Fill the prompt fields from the selected prompt and apply the pack's preset",
             lambda: self.apply_selected(ItemKind.pack)),
            ("Run", "Run every prompt of the pack (times the randomizer's plan)", self.run_pack),
            ("Folder…", "Choose the folder your packs are in (kept in Settings)", self.choose_packs_folder),
            ("Refresh", "Read the packs folder again", self.controller.refresh)))
        return tab

    def _menu(self, kind: ItemKind) -> QMenu:
        menu = QMenu(self)
        menu.addAction("Apply", lambda: self.apply_selected(kind))
        if kind is ItemKind.pack:
            menu.addAction("Run all prompts", self.run_pack)
            return menu
        if kind is ItemKind.preset:
            menu.addAction("Update with current settings", self.update_selected)
            menu.addAction("Use with a pack…", self.use_with_pack)
        if kind is ItemKind.profile:
            menu.addAction("Edit…", self.edit_profile)
        menu.addAction("Rename…", lambda: self.rename_selected(kind))
        menu.addAction("Duplicate", lambda: self.duplicate_selected(kind))
        menu.addAction("Delete", lambda: self.delete_selected(kind))
        menu.addSeparator()
        menu.addAction("Import…", lambda: self.import_file(kind))
        menu.addAction("Export…", lambda: self.export_selected(kind))
        if kind is ItemKind.preset:
            menu.addAction("Import A1111 styles.csv…", self.import_styles)
        return menu

    def _context_menu(self, widget: LibraryList, pos: QPoint) -> None:
        item = widget.itemAt(pos)
        if item is not None:
            widget.setCurrentItem(item)
        self._menu(widget.kind).exec(widget.viewport().mapToGlobal(pos))

    def _list(self, kind: ItemKind) -> LibraryList:
        lists = {ItemKind.preset: self.presets, ItemKind.profile: self.profiles, ItemKind.pack: self.packs}
        return lists[kind]

    def _selected(self, kind: ItemKind) -> str:
        key = self._list(kind).current_key()
        if not key:
            self.status.setText(f"Select a {kind.value} first.")
        return key

    # --- controller → view --------------------------------------------------------------------

    def _show_empty_notes(self) -> None:
        """An empty Packs or Profiles tab says what it is for, instead of showing a blank list."""
        controller = self.controller
        packs, profiles = controller.folder_of(ItemKind.pack), controller.folder_of(ItemKind.profile)
        self.packs_empty.set_text(
            "A prompt pack is a list of prompts you run together, each with the settings of the "
            "cards: a .txt file with one prompt per line (a line starting with negative: is the "
            "negative prompt of the prompt above it), or a .yaml file. "
            f"StableNew reads them from {packs}. Create one from your prompt here, or put pack "
            "files in that folder: they appear at once.")
        self.profiles_empty.set_text(
            "A profile is a subject you come back to — a character, a setting, a style — that "
            "fills in your prompt and steers the variants towards the wildcard values it "
            f"prefers. Make one from your current prompt, or put profile files in {profiles}.")
        self._packs_stack.setCurrentIndex(0 if controller.has_any(ItemKind.pack) else 1)
        self._profiles_stack.setCurrentIndex(0 if controller.has_any(ItemKind.profile) else 1)

    def _open_folder(self, folder: str) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(folder))

    def _presets_changed(self) -> None:
        self.presets.show_items(self.controller.presets())
        self._fill_default_presets()

    def _packs_changed(self) -> None:
        self.packs.show_items(self.controller.packs())
        self._fill_default_presets()
        self._show_empty_notes()

    def _profiles_changed(self) -> None:
        self.profiles.show_items(self.controller.profiles())
        self._show_empty_notes()

    def _fill_default_presets(self) -> None:
        key = self.packs.current_key()
        row = next((p for p in self.controller.packs() if p.key == key), None)
        self.default_preset.clear()
        self.default_preset.addItem(_OWN_DEFAULT, "")
        for name in self.controller.preset_names():
            self.default_preset.addItem(name, name)
        chosen = row.default_preset if row is not None else ""
        index = self.default_preset.findData(chosen) if chosen else 0
        if chosen and index < 0:
            self.default_preset.addItem(f"{chosen} (missing)", chosen)
            index = self.default_preset.count() - 1
        self.default_preset.setCurrentIndex(index)
        self.default_preset.setEnabled(row is not None and not row.broken)

    def _pack_selected(self, *_args: object) -> None:
        self.controller.pack_actions.select_pack(self.packs.current_key())
        self._fill_default_presets()

    def _show_prompts(self, prompts: list[tuple[str, str]]) -> None:
        self.prompts.clear()
        for prompt, negative in prompts:
            item = QListWidgetItem(prompt)
            item.setToolTip(f"{prompt}\n\nNegative: {negative}" if negative else prompt)
            self.prompts.addItem(item)
        if prompts:
            self.prompts.setCurrentRow(0)

    def _undo_changed(self, text: str) -> None:
        self.undo_button.setVisible(bool(text))
        self.undo_button.setToolTip(text or "Nothing to undo")

    def _default_preset_chosen(self, index: int) -> None:
        key = self.packs.current_key()
        if key:
            self.controller.pack_actions.set_pack_default_preset(
                key, self.default_preset.itemData(index) or None)

    # --- actions (names may be given, e.g. by tests; otherwise the user is asked) -------------

    def apply_selected(self, kind: ItemKind = ItemKind.preset) -> None:
        key = self._selected(kind)
        if not key:
            return
        if kind is ItemKind.preset:
            self.controller.preset_actions.apply_preset(key)
        elif kind is ItemKind.profile:
            self.controller.preset_actions.apply_profile(key)
        else:
            self.controller.pack_actions.apply_pack(key, max(0, self.prompts.currentRow()))

    def run_pack(self) -> None:
        key = self._selected(ItemKind.pack)
        if key:
            self.controller.pack_actions.run_pack(key, max(0, self.prompts.currentRow()))

    def save_current(self, name: str | None = None) -> None:
        """Save the cards as a new preset named *name*, asked for (without blocking) when not given."""
        if name is not None:
            self.controller.preset_actions.save_current_as_preset(name)
        else:
            self._ask_name("Save preset", "Name of the new preset:",
                           self.controller.preset_actions.save_current_as_preset)

    def create_pack(self, name: str | None = None) -> None:
        """A new pack named *name* in the packs folder, asked for (without blocking) when not given."""
        if name is not None:
            self.controller.pack_actions.create_pack(name)
        else:
            self._ask_name("New prompt pack", "Name of the new pack:",
                           self.controller.pack_actions.create_pack)

    def _ask_name(self, title: str, label: str, then: Callable[[str], object]) -> None:
        """Ask for a name with `open()`, not `exec()`: the event loop (and the queue) go on."""
        dialog = QInputDialog(self)
        dialog.setWindowTitle(title)
        dialog.setLabelText(label)
        dialog.textValueSelected.connect(then)
        dialog.finished.connect(dialog.deleteLater)
        self.name_dialog = dialog
        dialog.open()

    def rename_selected(self, kind: ItemKind = ItemKind.preset, new_name: str | None = None) -> None:
        key = self._selected(kind)
        if not key:
            return
        if new_name is None:
            current = self._list(kind).currentItem().text().replace("  (shipped)", "")
            new_name, ok = QInputDialog.getText(self, f"Rename {kind.value}", "New name:", text=current)
            if not ok:
                return
        self.controller.rename(kind, key, new_name)

    def edit_profile(self, new: bool = False, form: dict[str, str] | None = None) -> None:
        """Open the profile editor (or save *form* directly); invalid input keeps the editor open."""
        key = "" if new else self._selected(ItemKind.profile)
        if not new and not key:
            return
        if form is not None:
            self.controller.preset_actions.save_profile(form, key or None)
            return
        from stablenew.gui.panels.profile_dialog import ProfileDialog

        dialog = ProfileDialog(self.controller.preset_actions.profile_form(key or None),
                               title="New profile" if new else "Edit profile", parent=self)
        while dialog.exec():
            if self.controller.preset_actions.save_profile(dialog.values(), key or None):
                return

    def use_with_pack(self, pack_key: str | None = None) -> None:
        """Make the selected preset the default preset of a pack (asked for when not given)."""
        key = self._selected(ItemKind.preset)
        row = next((p for p in self.controller.presets() if p.key == key), None)
        if row is None:
            return
        if pack_key is None:
            packs = [p for p in self.controller.packs() if not p.broken]
            if not packs:
                self.status.setText("There are no packs yet. Put pack files in the packs folder.")
                return
            label, ok = QInputDialog.getItem(self, "Use with a pack", f"Apply '{row.name}' with pack:",
                                             [p.name for p in packs], 0, False)
            if not ok:
                return
            pack_key = next(p.key for p in packs if p.name == label)
        self.controller.pack_actions.set_pack_default_preset(pack_key, row.name)

    def update_selected(self) -> None:
        key = self._selected(ItemKind.preset)
        if key:
            self.controller.preset_actions.update_preset(key)

    def duplicate_selected(self, kind: ItemKind = ItemKind.preset) -> None:
        key = self._selected(kind)
        if key:
            self.controller.duplicate(kind, key)

    def delete_selected(self, kind: ItemKind = ItemKind.preset) -> None:
        key = self._selected(kind)
        if key:
            self.controller.delete(kind, key)

    def undo(self) -> None:
        self.controller.undo_delete()

    def import_file(self, kind: ItemKind = ItemKind.preset, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, f"Import a {kind.value}", "", "YAML (*.yaml *.yml)")
            if not path:
                return
        self.controller.import_file(kind, path)

    def export_selected(self, kind: ItemKind = ItemKind.preset, path: str | None = None) -> None:
        key = self._selected(kind)
        if not key:
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, f"Export the {kind.value}", "", "YAML (*.yaml)")
            if not path:
                return
        self.controller.export(kind, key, path)

    def import_styles(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Import A1111 styles", "", "styles.csv (*.csv)")
            if not path:
                return
        self.controller.preset_actions.import_styles(path)

    def choose_packs_folder(self, folder: str | None = None) -> None:
        """Read packs from *folder*, asked for (without blocking) when not given."""
        if folder is not None:
            self.controller.set_packs_folder(folder)
            return
        dialog = QFileDialog(self, "Packs folder", str(self.controller.packs_folder))
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly)
        dialog.fileSelected.connect(self.controller.set_packs_folder)
        dialog.finished.connect(dialog.deleteLater)
        self.folder_dialog = dialog
        dialog.open()
