"""PromptEditorOverlay: a focused, larger editor over the window that edits the same prompt field."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from stablenew.controller.format import prompt_stats


class PromptEditorOverlay(QFrame):
    """Covers its parent; Done (or Ctrl+Enter / Esc) writes the text back into the card field."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("PromptOverlay")
        self._target: QPlainTextEdit | None = None
        panel = QFrame()
        panel.setObjectName("PromptOverlayPanel")
        self.title = QLabel("Prompt")
        self.title.setObjectName("CardTitle")
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("BigPromptEditor")
        font = QFont(self.editor.font())
        font.setPointSizeF(max(13.0, font.pointSizeF() * 1.35))
        self.editor.setFont(font)
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.stats = QLabel()
        self.stats.setObjectName("MutedLabel")
        self.editor.textChanged.connect(self._update_stats)
        done = QPushButton("Done")
        done.setObjectName("PrimaryButton")
        done.clicked.connect(self.accept)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.close_overlay)
        bottom = QHBoxLayout()
        bottom.addWidget(self.stats, 1)
        bottom.addWidget(cancel)
        bottom.addWidget(done)
        inner = QVBoxLayout(panel)
        inner.setContentsMargins(18, 14, 18, 14)
        inner.addWidget(self.title)
        inner.addWidget(self.editor, 1)
        inner.addLayout(bottom)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(80, 50, 80, 50)
        outer.addWidget(panel)
        for keys, slot in (("Ctrl+Return", self.accept), ("Ctrl+Enter", self.accept),
                           ("Escape", self.close_overlay)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        self.hide()

    def open_for(self, target: QPlainTextEdit, title: str) -> None:
        self._target = target
        self.title.setText(title)
        self.editor.setPlainText(target.toPlainText())
        self._update_stats()
        self.setGeometry(self.parentWidget().rect())
        self.raise_()
        self.show()
        self.editor.setFocus()
        self.editor.moveCursor(self.editor.textCursor().MoveOperation.End)

    def accept(self) -> None:
        if self._target is not None:
            self._target.setPlainText(self.editor.toPlainText())
        self.close_overlay()

    def close_overlay(self) -> None:
        self.hide()
        if self._target is not None:
            self._target.setFocus()

    def _update_stats(self) -> None:
        self.stats.setText(prompt_stats(self.editor.toPlainText()))

    def fit(self) -> None:
        """Cover the parent again (the window calls this when it is resized)."""
        if self.isVisible():
            self.setGeometry(self.parentWidget().rect())
