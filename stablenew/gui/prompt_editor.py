"""PromptEditorOverlay: a focused, larger editor over the window that edits the same prompt field."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QFont, QKeyEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from stablenew.controller.format import prompt_stats
from stablenew.gui.prompt_assist import EnhanceStrip

if TYPE_CHECKING:
    from stablenew.controller.prompt_controller import PromptController


class PromptEditorOverlay(QFrame):
    """Covers its parent; Done writes the text back into the card field, Ctrl+Enter writes it
    back and runs (`run_requested`), Esc and Cancel close it leaving the field as it was."""

    run_requested = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._host = parent  # the widget it covers
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
        done = self.done_button = QPushButton("Done")
        done.setObjectName("PrimaryButton")
        done.setToolTip("Use this prompt (Ctrl+Enter uses it and runs)")
        done.clicked.connect(self.accept)
        cancel = self.cancel_button = QPushButton("Cancel")
        cancel.setToolTip("Close, leaving the prompt as it was (Esc)")
        cancel.clicked.connect(self.close_overlay)
        bottom = QHBoxLayout()
        bottom.addWidget(self.stats, 1)
        bottom.addWidget(cancel)
        bottom.addWidget(done)
        inner = QVBoxLayout(panel)
        inner.setContentsMargins(18, 14, 18, 14)
        inner.addWidget(self.title)
        inner.addWidget(self.editor, 1)
        # The local LLM's "Enhance", shown once a PromptController is bound.
        self.enhance = EnhanceStrip(self.editor)
        self.enhance.hide()
        inner.addWidget(self.enhance)
        inner.addLayout(bottom)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(80, 50, 80, 50)
        outer.addWidget(panel)
        # Keys, not shortcuts: the window's own Ctrl+Enter (Run) and Esc (Stop) are shortcuts
        # too, and two shortcuts on one key are ambiguous, so neither fired.
        self.editor.installEventFilter(self)
        self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if watched is self.editor and isinstance(event, QKeyEvent) and event.type() in (
                QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            action = self._key_action(event)
            if action is not None:
                event.accept()  # ShortcutOverride: the key comes here, not to the window's shortcut
                if event.type() == QEvent.Type.KeyPress:
                    action()
                return True
        return super().eventFilter(watched, event)

    def bind_prompts(self, prompts: PromptController, checkpoint: Callable[[], str]) -> None:
        """Offer "Enhance with LLM" under the editor."""
        self.enhance.bind(prompts, checkpoint)
        self.enhance.show()

    def _key_action(self, event: QKeyEvent) -> Callable[[], None] | None:
        key, mods = event.key(), event.modifiers()
        if key == Qt.Key.Key_Escape and not mods:
            return self.close_overlay
        control = mods & Qt.KeyboardModifier.ControlModifier and not mods & Qt.KeyboardModifier.ShiftModifier
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and control:
            return self._accept_and_run
        return None

    def _accept_and_run(self) -> None:
        self.accept()
        self.run_requested.emit()

    def open_for(self, target: QPlainTextEdit, title: str) -> None:
        self._target = target
        self.title.setText(title)
        self.editor.setPlainText(target.toPlainText())
        self.enhance.reset()
        self._update_stats()
        self.setGeometry(self._host.rect())
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
            self.setGeometry(self._host.rect())
