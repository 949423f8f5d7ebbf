"""EmptyLibraryNote: what an empty Packs or Profiles tab shows instead of a blank list."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class EmptyLibraryNote(QWidget):
    """Says what the list is for and offers to make the first one or open its folder."""

    def __init__(self, text: str, create_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("EmptyLibraryNote")
        self.text = QLabel(text)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.create_button = QPushButton(create_label)
        self.create_button.setObjectName("PrimaryButton")
        self.open_button = QPushButton("Open the folder")
        buttons = QHBoxLayout()
        buttons.addWidget(self.create_button)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.text)
        layout.addLayout(buttons)
        layout.addStretch(1)

    def set_text(self, text: str) -> None:
        self.text.setText(text)
