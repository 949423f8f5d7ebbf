"""SettingsDialog: server, folders, learning mode, theme and the optional local LLM; fields
described by AppSettings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from stablenew.controller.format import plural
from stablenew.controller.prompt_controller import PromptController
from stablenew.gui.cards.editors import FieldEditor

if TYPE_CHECKING:
    from stablenew.controller.app_controller import AppController
    from stablenew.controller.field_spec import FieldValue

SHOWN = ("server_url", "server_kind", "username", "password", "output_dir", "wildcards_dir",
         "packs_dir", "learning_mode", "theme", "request_timeout_s", "live_previews")
#: The optional local LLM (prompt enhancement and refinement), in a section of its own.
LLM_SHOWN = ("llm_url", "llm_api_key", "llm_model", "llm_template", "llm_enhance",
             "llm_unload_before_generate")
#: LoRAs from the catalog added to every run (also switched in Models), in a section of their own.
LORA_SHOWN = ("lora_auto", "lora_auto_min", "lora_auto_max", "lora_auto_categories")
#: Trending combos from CivitAI (or a mirror), in a section of their own.
CIVITAI_SHOWN = ("civitai_url", "civitai_api_key", "civitai_downloads")
#: How long typing the LLM's address pauses before it is judged (the warning under it).
URL_PAUSE_MS = 300
#: Fields that name a folder: each gets a "Choose…" button beside it.
FOLDERS = ("output_dir", "wildcards_dir", "packs_dir")
#: Fields filled from what is available (the LLM's models, the enhance styles): editable lists.
PICKERS = ("llm_model", "llm_template")


class SettingsDialog(QDialog):
    """Edits the app settings through the AppController; invalid input is explained, nothing lost."""

    def __init__(self, app_controller: AppController, parent: QWidget | None = None, *,
                 prompts: PromptController | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("SettingsDialog")
        self.setMinimumWidth(520)
        self.controller = app_controller
        self.prompts = prompts
        self.specs = app_controller.settings_fields()
        self.current = app_controller.settings_values()
        self.editors: dict[str, FieldEditor] = {}
        form = self._form(SHOWN)
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
        layout.addWidget(self._llm_section())
        loras = QGroupBox("LoRAs from your catalog")
        loras.setObjectName("LoraSettings")
        loras.setLayout(self._form(LORA_SHOWN))
        layout.addWidget(loras)
        civitai = QGroupBox("CivitAI (the Trending tab)")
        civitai.setObjectName("CivitaiSettings")
        civitai.setLayout(self._form(CIVITAI_SHOWN))
        layout.addWidget(civitai)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def _form(self, names: tuple[str, ...]) -> QFormLayout:
        form = QFormLayout()
        form.setSpacing(8)
        for name in names:
            spec = self.specs[name]
            editor = FieldEditor(spec, picker=name in PICKERS, parent=self)
            editor.set_value(self.current.get(name))
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
            elif name == "llm_model":
                line = editor.widget.lineEdit() if isinstance(editor.widget, QComboBox) else None
                if line is not None:
                    line.setPlaceholderText("the LLM server's first model")
                row = QHBoxLayout()
                row.setContentsMargins(0, 0, 0, 0)
                row.addWidget(editor.widget, 1)
                self.list_models = QPushButton("List models")
                self.list_models.setObjectName("ListLlmModels")
                self.list_models.setToolTip("Ask the LLM server which models it has")
                self.list_models.clicked.connect(self._list_models)
                row.addWidget(self.list_models)
                holder = QWidget()
                holder.setLayout(row)
                form.addRow(spec.title, holder)
            else:
                form.addRow(spec.title, editor.widget)
        return form

    def _llm_section(self) -> QGroupBox:
        """The optional local LLM: address, key, model (listed from the server), style, switches."""
        box = QGroupBox("Local LLM (optional): enhance and refine prompts")
        box.setObjectName("LlmSettings")
        layout = QVBoxLayout(box)
        hint = QLabel("LM Studio, Ollama or a llama.cpp server on this computer or your network. "
                      "Leave the address empty to work without one.")
        hint.setObjectName("MutedLabel")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addLayout(self._form(LLM_SHOWN))
        self.llm_status = QLabel()
        self.llm_status.setObjectName("MutedLabel")
        self.llm_status.setWordWrap(True)
        layout.addWidget(self.llm_status)
        self.llm_warning = QLabel()
        self.llm_warning.setObjectName("InlineError")
        self.llm_warning.setWordWrap(True)
        self.llm_warning.hide()
        layout.addWidget(self.llm_warning)
        # Judged once typing pauses: while an address is typed ("http:", "http://") the warning
        # flashed on and off, and each flash laid the whole dialog out again.
        self._url_pause = QTimer(self)
        self._url_pause.setSingleShot(True)
        self._url_pause.setInterval(URL_PAUSE_MS)
        self._url_pause.timeout.connect(self._url_changed)
        self.editors["llm_url"].changed.connect(lambda _path: self._url_pause.start())
        self._url_changed()
        if self.prompts is None:
            self.list_models.setEnabled(False)
        else:
            self.prompts.models_listed.connect(self._models_listed)
            self.prompts.templates_listed.connect(self._templates_listed)
            self.prompts.list_templates()
        return box

    def _url_changed(self) -> None:
        url = str(self.editors["llm_url"].value() or "")
        warning = PromptController.address_warning(url)
        self.llm_warning.setText(warning)
        self.llm_warning.setVisible(bool(warning))

    def _list_models(self) -> None:
        if self.prompts is None:
            return
        self.list_models.setEnabled(False)
        self.llm_status.setText("Asking the LLM server for its models…")
        self.prompts.list_models(str(self.editors["llm_url"].value() or ""),
                                 str(self.editors["llm_api_key"].value() or ""))

    def _models_listed(self, models: list[str], error: str) -> None:
        self.list_models.setEnabled(True)
        if error:
            self.llm_status.setText(error)
            return
        self.editors["llm_model"].set_choices(models)
        self.llm_status.setText(f"{plural(len(models), 'model')} on the server; choose one, or leave "
                                "it empty to use the first.")

    def _templates_listed(self, names: list[str]) -> None:
        self.editors["llm_template"].set_choices(names)

    def values(self) -> dict[str, FieldValue]:
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
