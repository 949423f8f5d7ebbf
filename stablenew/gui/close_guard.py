"""CloseGuard: the question asked when the window closes while the queue still makes images,
and what each answer does — finish in the background, or stop and resume next time."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QAbstractButton, QMessageBox

if TYPE_CHECKING:
    from stablenew.controller.queue_controller import QueueController
    from stablenew.gui.main_window import MainWindow

log = logging.getLogger("stablenew.gui")


class CloseGuard(QObject):
    """Holds a window's close while queued work runs until the user says what should happen."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        #: The question (open, not exec: the event loop and the queue go on meanwhile); None
        #: when not asked.
        self.question: QMessageBox | None = None
        self.answer: str | None = None  # "finish" or "stop" once the user answered

    def _queue(self) -> QueueController | None:
        session = self._window.session
        return session.queue if session is not None else None

    def holds(self, event: QCloseEvent) -> bool:
        """True when the close is held (ignored) for the question; False: close now."""
        if self.question is not None:
            event.ignore()  # already asked: the question is still waiting for its answer
            self.question.raise_()
            return True
        if self.answer is None and self._queue_busy():
            event.ignore()
            self._ask()
            return True
        return False

    def _queue_busy(self) -> bool:
        """Closing now would interrupt work of the queue at a server (not when it is paused:
        then nothing new starts, and what is at the server goes back to wait for Resume)."""
        queue = self._queue()
        return queue is not None and queue.running and not queue.paused and queue.count > 0

    def _ask(self) -> None:
        queue = self._queue()
        count = queue.count if queue is not None else 0
        box = QMessageBox(self._window)
        box.setObjectName("CloseQuestion")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Images are still being made")
        box.setText(f"{count} image{'s' if count != 1 else ''} of the queue "
                    f"{'are' if count != 1 else 'is'} still waiting or being made.")
        box.setInformativeText(
            "Finish in the background: the window closes now, StableNew goes on making them "
            "and quits when the queue is empty.\n\n"
            "Stop and resume next time: the server is interrupted now; the queue goes on where "
            "it stopped when you open StableNew again.")
        finish = box.addButton("Finish in the background", QMessageBox.ButtonRole.AcceptRole)
        finish.setObjectName("FinishInBackground")
        stop = box.addButton("Stop and resume next time", QMessageBox.ButtonRole.DestructiveRole)
        stop.setObjectName("StopAndResume")
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        cancel.setObjectName("CancelClose")
        box.setDefaultButton(finish)
        box.setEscapeButton(cancel)
        answers = {finish: "finish", stop: "stop"}
        box.buttonClicked.connect(lambda button: self._answered(answers.get(button)))
        box.finished.connect(box.deleteLater)
        self.question = box
        box.open()

    def button(self, answer: str) -> QAbstractButton | None:
        """The question's button for *answer* ("finish", "stop", "cancel")."""
        box = self.question
        name = {"finish": "FinishInBackground", "stop": "StopAndResume",
                "cancel": "CancelClose"}[answer]
        return box.findChild(QAbstractButton, name) if box is not None else None

    def _answered(self, answer: str | None) -> None:
        self.question = None
        if answer is None:
            return  # Cancel: the window stays, the queue goes on
        self.answer = answer
        window, queue = self._window, self._queue()
        if answer == "stop" or queue is None:
            # The ordinary close: the queue's runner gives what is at the server back to the
            # queue, and the next start resumes it.
            QTimer.singleShot(0, window, window.close)
            return
        log.info("window closed; the queue finishes in the background (%d image(s) left)",
                 queue.count)
        window.save_state()
        window.hide()
        queue.count_changed.connect(self._finished_in_background)
        queue.running_changed.connect(self._finished_in_background)
        self._finished_in_background()

    def _finished_in_background(self, *_args: object) -> None:
        """The window is hidden and the queue worked on: the app ends once nothing is left (or
        nothing works on it any more)."""
        queue = self._queue()
        if self.answer == "finish" and (queue is None or queue.count == 0 or not queue.running):
            self.answer = "finished"
            log.info("the queue is empty: StableNew quits")
            self._window.closed.emit()
