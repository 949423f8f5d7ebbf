"""ProfileDialog: edit a profile's character, setting, style, backstory, LoRAs and wildcard weights."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

_LINES = (
    ("name", "Name", "What the profile is called in the list."),
    ("character", "Character", "Who is in the picture."),
    ("setting", "Setting", "Where and when."),
    ("style", "Style", "How it looks: medium, artist, lighting."),
    ("negative_prompt", "Negative prompt", "What you do not want to see."),
    ("loras", "LoRAs", "name:weight, separated by commas — e.g. mira_v2:0.7, film_grain:0.4"),
    ("tags", "Tags", "Words to find it by, separated by commas."),
    ("description", "Description", "A note shown in the list's tooltip."),
)
_BLOCKS = (
    ("backstory", "Backstory", "Notes for you; not sent to the server."),
    ("wildcard_weights", "Preferred wildcard values",
     "One line per wildcard: hair: silver=3, red=0 (3 = three times as often, 0 = never)."),
)


class ProfileDialog(QDialog):
    """A form over the controller's profile text fields; the controller validates on save."""

    def __init__(self, form: dict[str, str], *, title: str = "Profile",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.fields: dict[str, QLineEdit | QPlainTextEdit] = {}
        layout = QFormLayout()
        for key, label, tip in _LINES:
            edit = QLineEdit(form.get(key, ""))
            edit.setToolTip(tip)
            edit.setPlaceholderText(tip)
            self.fields[key] = edit
            layout.addRow(label, edit)
        for key, label, tip in _BLOCKS:
            block = QPlainTextEdit(form.get(key, ""))
            block.setToolTip(tip)
            block.setPlaceholderText(tip)
            block.setMaximumHeight(90)
            self.fields[key] = block
            layout.addRow(label, block)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        outer = QVBoxLayout(self)
        outer.addLayout(layout)
        outer.addWidget(buttons)

    def values(self) -> dict[str, str]:
        return {key: (w.toPlainText() if isinstance(w, QPlainTextEdit) else w.text())
                for key, w in self.fields.items()}
