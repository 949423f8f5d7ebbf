"""The local LLM in the window: "Enhance" in the prompt editor and "Refine" under an opened image.

Both show the LLM's answer as it is written, then the proposal with what code checked, and
change nothing until the user presses "Use it"; a used prompt can be undone (the button, or
Ctrl+Z in the field). The work itself is the PromptController's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from stablenew.controller.format import plural

if TYPE_CHECKING:
    from stablenew.controller.prompt_controller import PromptController, PromptSuggestion
    from stablenew.controller.session import Session
    from stablenew.gui.main_window import MainWindow


def replace_undoably(field: QPlainTextEdit, text: str) -> None:
    """Put *text* in *field* as one edit the user can undo with Ctrl+Z."""
    cursor = field.textCursor()
    cursor.beginEditBlock()
    cursor.select(QTextCursor.SelectionType.Document)
    cursor.insertText(text)
    cursor.endEditBlock()
    field.setTextCursor(cursor)


class SuggestionBox(QFrame):
    """The LLM's proposal: live text while it writes, then the prompt with its checks; Use it or not."""

    accepted = Signal(str)  # the prompt to use
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SuggestionBox")
        self._prompt = ""
        self.title = QLabel()
        self.title.setObjectName("SectionTitle")
        self.text = QPlainTextEdit()
        self.text.setObjectName("SuggestionText")
        self.text.setReadOnly(True)
        self.text.setMaximumHeight(110)
        self.notes = QLabel()
        self.notes.setObjectName("MutedLabel")
        self.notes.setWordWrap(True)
        self.error = QLabel()
        self.error.setObjectName("InlineError")
        self.error.setWordWrap(True)
        self.use_button = QPushButton("Use it")
        self.use_button.setObjectName("PrimaryButton")
        self.use_button.setToolTip("Put this prompt in the prompt field (you can undo it)")
        self.keep_button = QPushButton("Keep mine")
        self.keep_button.setToolTip("Close this proposal; your prompt stays as it is")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the LLM; your prompt stays as it is")
        self.use_button.clicked.connect(lambda: self.accepted.emit(self._prompt))
        self.use_button.clicked.connect(self.hide)
        self.keep_button.clicked.connect(self.hide)
        self.stop_button.clicked.connect(self.stop_requested)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addStretch(1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.keep_button)
        buttons.addWidget(self.use_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.text)
        layout.addWidget(self.notes)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.hide()

    def working(self, what: str) -> None:
        self.title.setText(what)
        self.text.setPlainText("")
        self.text.show()
        self.notes.setText("The answer appears here as the LLM writes it.")
        self.error.hide()
        self.use_button.hide()
        self.keep_button.hide()
        self.stop_button.show()
        self.show()

    def streamed(self, text: str) -> None:
        self.text.setPlainText(text)
        self.text.moveCursor(QTextCursor.MoveOperation.End)

    def show_suggestion(self, suggestion: PromptSuggestion) -> None:
        self._prompt = suggestion.prompt
        self.stop_button.hide()
        self.keep_button.show()
        notes = []
        if suggestion.warning:
            notes.append(suggestion.warning)
        if suggestion.error:
            self.title.setText("Your prompt is unchanged")
            self.text.hide()
            self.error.setText(suggestion.error)
            self.error.show()
            self.use_button.hide()
            self.keep_button.setText("Close")
        elif not suggestion.changed:
            self.title.setText("The LLM suggests no change")
            self.text.setPlainText(suggestion.prompt)
            self.use_button.hide()
            self.keep_button.setText("Close")
        else:
            self.title.setText("Enhanced prompt" if suggestion.kind == "enhance" else "Refined prompt")
            self.text.show()
            self.text.setPlainText(suggestion.prompt)
            self.use_button.show()
            self.keep_button.setText("Keep mine")
            if suggestion.diff:
                notes.append("Changes: " + "; ".join(suggestion.diff))
        if suggestion.checks:
            notes.append("Checked: " + "; ".join(suggestion.checks))
        if suggestion.model:
            notes.append(f"Written by {suggestion.model}"
                         + (f" in the {suggestion.template} style." if suggestion.template else "."))
        self.notes.setText("\n".join(notes))
        self.notes.setVisible(bool(notes))
        self.show()


class EnhanceStrip(QWidget):
    """Under the big prompt editor: "Enhance with LLM", the proposal, and "Undo enhance"."""

    def __init__(self, editor: QPlainTextEdit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        self.prompts: PromptController | None = None
        self._checkpoint: Callable[[], str] = lambda: ""
        self._before = ""
        self.enhance_button = QPushButton("Enhance with LLM")
        self.enhance_button.setObjectName("EnhanceButton")
        self.enhance_button.setToolTip("Let your local LLM add detail to this prompt; you see the "
                                       "result before anything changes")
        self.enhance_button.clicked.connect(self.enhance)
        self.undo_button = QPushButton("Undo enhance")
        self.undo_button.setToolTip("Back to the prompt as you wrote it")
        self.undo_button.clicked.connect(self.undo)
        self.undo_button.hide()
        self.hint = QLabel()
        self.hint.setObjectName("MutedLabel")
        self.suggestion = SuggestionBox()
        self.suggestion.accepted.connect(self._use)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.enhance_button)
        row.addWidget(self.undo_button)
        row.addWidget(self.hint, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.suggestion)

    def bind(self, prompts: PromptController, checkpoint: Callable[[], str]) -> None:
        self.prompts = prompts
        self._checkpoint = checkpoint
        prompts.streamed.connect(self._streamed)
        prompts.suggested.connect(self._suggested)
        prompts.busy_changed.connect(lambda busy: self.enhance_button.setEnabled(not busy))
        self.suggestion.stop_requested.connect(prompts.cancel)
        self.refresh()

    def refresh(self) -> None:
        """Say whether an LLM is set up (Settings may have changed)."""
        available = self.prompts is not None and self.prompts.available
        self.hint.setText("" if available else "Set up a local LLM in Settings to enhance prompts.")

    def enhance(self) -> None:
        if self.prompts is None:
            return
        prompt = self.editor.toPlainText().strip()
        if not prompt:
            self.hint.setText("Write a few words first; the LLM builds on them.")
            return
        if self.prompts.enhance(prompt, self._checkpoint()):
            self.suggestion.working("Enhancing…")

    def _streamed(self, text: str) -> None:
        if self.isVisible() and self.suggestion.isVisible():
            self.suggestion.streamed(text)

    def _suggested(self, suggestion: PromptSuggestion) -> None:
        if suggestion.kind == "enhance" and self.isVisible():
            self.suggestion.show_suggestion(suggestion)

    def _use(self, prompt: str) -> None:
        self._before = self.editor.toPlainText()
        replace_undoably(self.editor, prompt)
        self.undo_button.show()

    def undo(self) -> None:
        replace_undoably(self.editor, self._before)
        self.undo_button.hide()

    def reset(self) -> None:
        """A new editing session: no proposal, nothing to undo."""
        self.suggestion.hide()
        self.undo_button.hide()
        self.refresh()


class FeedbackBox(QFrame):
    """Under an opened image: tell the LLM what to change; the refined prompt goes to the card."""

    use_prompt = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("FeedbackBox")
        self.prompts: PromptController | None = None
        self._checkpoint: Callable[[], str] = lambda: ""
        self._card_prompt: Callable[[], str] = lambda: ""
        self._prompt = ""
        self._path: Path | None = None
        title = QLabel("What should change?")
        title.setObjectName("SectionTitle")
        self.words = QLineEdit()
        self.words.setObjectName("FeedbackWords")
        self.words.setPlaceholderText("e.g. moodier, keep the pose, rainy city behind her")
        self.words.returnPressed.connect(self.refine)
        self.look = QCheckBox("Let the LLM look at this image")
        self.look.setToolTip("For \"more like this\": a vision-capable model describes the image "
                             "and its words feed the new prompt")
        self.refine_button = QPushButton("Refine prompt")
        self.refine_button.setObjectName("RefineButton")
        self.refine_button.clicked.connect(self.refine)
        self.start_over = QPushButton("Start over")
        self.start_over.setToolTip("Forget the feedback given so far")
        self.start_over.clicked.connect(self._start_over)
        self.start_over.hide()
        self.hint = QLabel()
        self.hint.setObjectName("MutedLabel")
        self.hint.setWordWrap(True)
        self.suggestion = SuggestionBox()
        self.suggestion.accepted.connect(self.use_prompt)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.refine_button)
        buttons.addWidget(self.start_over)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.words)
        layout.addWidget(self.look)
        layout.addLayout(buttons)
        layout.addWidget(self.hint)
        layout.addWidget(self.suggestion)

    def bind(self, prompts: PromptController, checkpoint: Callable[[], str],
             card_prompt: Callable[[], str]) -> None:
        self.prompts = prompts
        self._checkpoint = checkpoint
        self._card_prompt = card_prompt
        prompts.streamed.connect(self._streamed)
        prompts.suggested.connect(self._suggested)
        prompts.busy_changed.connect(lambda busy: self.refine_button.setEnabled(not busy))
        self.suggestion.stop_requested.connect(prompts.cancel)

    def show_image(self, prompt: str, path: Path) -> None:
        """The image the feedback is about, and the prompt that made it."""
        self._prompt, self._path = prompt, path
        self.suggestion.hide()
        self.hint.setText("" if prompt else "This image has no prompt stored; the card's prompt is "
                          "refined instead.")

    def refine(self) -> None:
        if self.prompts is None:
            return
        if not self.prompts.available:
            self.hint.setText("Set up a local LLM in Settings to refine prompts from your words.")
            return
        words = self.words.text().strip()
        image = self._path if self.look.isChecked() else None
        if not words and image is None:
            self.hint.setText("Say what should change, or tick \"Let the LLM look at this image\".")
            return
        prompt = self._prompt or self._card_prompt()
        if self.prompts.refine(prompt, words, image=image, checkpoint=self._checkpoint()):
            self.hint.setText("")
            self.suggestion.working("Refining…")

    def _streamed(self, text: str) -> None:
        if self.isVisible() and self.suggestion.isVisible():
            self.suggestion.streamed(text)

    def _suggested(self, suggestion: PromptSuggestion) -> None:
        if suggestion.kind != "refine" or self.prompts is None:
            return
        self.suggestion.show_suggestion(suggestion)
        rounds = self.prompts.feedback_rounds
        self.start_over.setVisible(rounds > 0)
        if rounds:
            self.hint.setText(f"The LLM remembers {plural(rounds, 'round')} of your feedback.")

    def _start_over(self) -> None:
        if self.prompts is not None:
            self.prompts.start_over()
        self.start_over.hide()
        self.hint.setText("Starting fresh: earlier feedback is forgotten.")


def connect_prompt_assist(window: MainWindow, session: Session) -> None:
    """Join the window's Enhance strip and feedback box to the session's PromptController."""
    prompts = session.prompts

    def checkpoint() -> str:
        return str(session.pipeline.current_config().txt2img.checkpoint or "")

    field = window.pipeline_panel.editor("txt2img.prompt").widget
    assert isinstance(field, QPlainTextEdit)

    def use_refined(prompt: str) -> None:
        replace_undoably(field, prompt)
        window.notice.show_notice("The refined prompt is in the prompt field; Ctrl+Z there takes it "
                                  "back.", level="info")

    window.prompt_overlay.bind_prompts(prompts, checkpoint)
    feedback = window.viewer.sidebar.feedback
    feedback.bind(prompts, checkpoint, field.toPlainText)
    feedback.use_prompt.connect(use_refined)
    feedback.show()
    session.app.settings_changed.connect(lambda _settings: window.prompt_overlay.enhance.refresh())
