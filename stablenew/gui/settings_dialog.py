"""SettingsDialog: server, folders, learning mode and theme; fields described by AppSettings."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from stablenew.gui.cards.editors import FieldEditor

SHOWN = ("server_url", "server_kind", "username", "password", "output_dir", "wildcards_dir",
         "packs_dir", "learning_mode", "theme", "request_timeout_s", "live_previews")
#: Fields that name a folder: each gets a "Choose…" button beside it.
FOLDERS = ("output_dir", "wildcards_dir", "packs_dir")


class SettingsDialog(QDialog):
    """Edits the app settings through the AppController; invalid input is explained, nothing lost."""

    def __init__(self, app_controller: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("SettingsDialog")
        self.setMinimumWidth(520)
        self.controller = app_controller
        specs = app_controller.settings_fields()
        current = app_controller.settings.model_dump(mode="json")
        self.editors: dict[str, FieldEditor] = {}
        form = QFormLayout()
        form.setSpacing(8)
        for name in SHOWN:
            spec = specs[name]
            editor = FieldEditor(spec, parent=self)
            editor.set_value(current.get(name))
            self.editors[name] = editor
            if name in FOLDERS:
                row = QHBoxLayout()
                row.addWidget(editor.widget, 1)
                browse = QPushButton("Choose…")
                browse.setObjectName(f"choose:{name}")
                browse.setToolTip(f"Choose the {spec.title.lower()}")
                browse.clicked.connect(lambda _checked=False, field=name: self._browse(field))
                row.addWidget(browse)
                holder = QWidget()
                holder.setLayout(row)
                row.setContentsMargins(0, 0, 0, 0)
                form.addRow(spec.title, holder)
            elif spec.kind == "bool":
                form.addRow("", editor.widget)
            else:
                form.addRow(spec.title, editor.widget)
        self.error = QLabel()
        self.error.setObjectName("InlineError")
        self.error.setWordWrap(True)
        self.error.hide()
        # A word joiner keeps each flag whole: broken after its dashes ("--" / "listen") it reads
        # as two words.
        hint = QLabel("Start AUTOMATIC1111 or Forge with --\u2060api (port 7860), or ComfyUI with "
                      "--\u2060listen (port 8188), then enter its address here.")
        hint.setObjectName("MutedLabel")
        hint.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def values(self) -> dict[str, Any]:
        return {name: editor.value() for name, editor in self.editors.items()}

    def _browse(self, name: str) -> None:
        editor = self.editors[name]
        folder = QFileDialog.getExistingDirectory(self, editor.spec.title, self._start_folder(name))
        if folder:
            editor.set_value(folder)

    def _start_folder(self, name: str) -> str:
        """Where the folder picker opens: the folder in the field, else the one in use."""
        typed = str(self.editors[name].value() or "").strip()
        if typed:
            return typed
        if name == "output_dir":
            return str(self.controller.output_dir)
        if name == "packs_dir":
            return str(self.controller.paths.packs_dir)
        return ""

    def save(self) -> None:
        reason = self.controller.apply_settings(self.values())
        if reason:
            self.error.setText(reason)
            self.error.show()
            return
        self.accept()
