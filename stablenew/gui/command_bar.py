"""CommandBar: Run (Ctrl+Enter), Stop (Esc), Add to queue (Ctrl+Shift+Enter), queue count, tools."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QStyle,
    QToolButton,
    QWidget,
)

RUN_STOP_TIP = "Stop the run; the server is interrupted (Esc)"
QUEUE_STOP_TIP = "Stop the queued job that is running, or pause the whole queue (Esc)"


class CommandBar(QFrame):
    """The row of commands above the work area; enables what makes sense for the run state."""

    run_requested = Signal()
    stop_requested = Signal()
    queue_requested = Signal()
    prompt_editor_requested = Signal()
    settings_requested = Signal()
    #: Stop's menu while queued work runs (a Run's Stop stays one click)
    stop_job_requested = Signal()
    pause_queue_requested = Signal()

    def __init__(self, window: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("CommandBar")
        style = self.style()
        self.run_button = QPushButton(" Run")
        self.run_button.setObjectName("RunButton")
        self.run_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.run_button.setToolTip("Run the pipeline with the values shown (Ctrl+Enter)")
        self.stop_button = QPushButton(" Stop")
        self.stop_button.setObjectName("StopButton")
        self.stop_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaStop))
        self.stop_button.setToolTip(RUN_STOP_TIP)
        self.stop_menu = QMenu(self)
        self.stop_menu.setObjectName("StopMenu")
        self.stop_job_action = self.stop_menu.addAction("Stop this job")
        self.stop_job_action.setToolTip("Cancel the images of this job that are left; the one at "
                                        "the server is interrupted. Other jobs go on.")
        self.pause_queue_action = self.stop_menu.addAction("Pause the queue")
        self.pause_queue_action.setToolTip("Start no new image; the ones at the server finish. "
                                           "Resume in the Queue tab.")
        self.stop_menu.setToolTipsVisible(True)
        self.stop_job_action.triggered.connect(self.stop_job_requested)
        self.pause_queue_action.triggered.connect(self.pause_queue_requested)
        self.queue_button = QPushButton(" Add to queue")
        self.queue_button.setObjectName("QueueButton")
        self.queue_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_FileDialogListView))
        self.queue_button.setToolTip("Add this run to the queue (Ctrl+Shift+Enter)")
        self.queue_count = QLabel("Queue: —")
        self.queue_count.setObjectName("QueueCount")
        self.state_label = QLabel("")
        self.state_label.setObjectName("RunStateLabel")
        # It takes the free room of the bar; a long job name is shortened, never the counts.
        self.state_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.state_label.setMinimumWidth(120)
        self.editor_button = QToolButton()
        self.editor_button.setText("Prompt editor")
        self.editor_button.setObjectName("ToolButton")
        self.editor_button.setToolTip("Edit the prompt in a larger editor (Ctrl+E)")
        self.settings_button = QToolButton()
        self.settings_button.setObjectName("ToolButton")
        self.settings_button.setText("Settings")
        self.settings_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_FileDialogDetailedView))
        self.settings_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.settings_button.setToolTip("Server address, output folder, theme (Ctrl+,)")

        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(8)
        title = QLabel("StableNew")
        title.setObjectName("AppTitle")
        layout.addWidget(title)
        layout.addSpacing(16)
        layout.addWidget(self.run_button)
        layout.addWidget(self.stop_button)
        layout.addWidget(self.queue_button)
        layout.addWidget(self.queue_count)
        layout.addSpacing(8)
        layout.addWidget(self.state_label, 1)
        layout.addWidget(self.editor_button)
        layout.addWidget(self.settings_button)

        self.run_button.clicked.connect(self.run_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.queue_button.clicked.connect(self.queue_requested)
        self.editor_button.clicked.connect(self.prompt_editor_requested)
        self.settings_button.clicked.connect(self.settings_requested)
        self.shortcuts = []
        for keys, signal in (("Ctrl+Return", self.run_requested), ("Ctrl+Enter", self.run_requested),
                             ("Escape", self.stop_requested),
                             ("Ctrl+Shift+Return", self.queue_requested),
                             ("Ctrl+Shift+Enter", self.queue_requested),
                             ("Ctrl+E", self.prompt_editor_requested),
                             ("Ctrl+,", self.settings_requested)):
            shortcut = QShortcut(QKeySequence(keys), window)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(signal)
            self.shortcuts.append(shortcut)
        self._run_state = "idle"
        # (job name, then what else to say, most important first: "image 2 of 3", "about 10 s left")
        self._queue_work: tuple[str, tuple[str, ...]] | None = None
        self.set_run_state("idle")

    def set_run_state(self, state: str) -> None:
        """The Run's state; while it is idle the bar shows what the queue works on, if anything."""
        self._run_state = state
        self._show_state()

    def show_queue_work(self, name: str | None, *details: str) -> None:
        """What the queue works on: the job's *name* and *details*, most important first
        ("image 2 of 3", "about 10 s left"), shown as "Running “name” · image 2 of 3 · …";
        None: nothing of the queue runs."""
        self._queue_work = None if name is None else (name, details)
        self._show_state()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        if self.showing_queue_work:
            self._show_state()

    def _queue_text(self, fit: bool = True) -> str:
        """The bar's words for queued work; to fit, the name is shortened first, then the
        least important details are left out (the status bar below shows them too)."""
        name, details = self._queue_work or ("", ())
        width = self.state_label.contentsRect().width() if fit else 0
        metrics = self.state_label.fontMetrics()
        for kept in range(len(details), -1, -1):
            tail = "".join(f" · {d}" for d in details[:kept])
            if width <= 0:
                return f"Running “{name}”{tail}"
            room = width - metrics.horizontalAdvance(f"Running “”{tail}")
            if room >= min(48, metrics.horizontalAdvance(name)) or kept == 0:
                short = metrics.elidedText(name, Qt.TextElideMode.ElideRight, max(30, room))
                return f"Running “{short}”{tail}"
        return f"Running “{name}”"

    @property
    def showing_queue_work(self) -> bool:
        """Stop would act on queued work (its menu), not on a Run."""
        return self._run_state == "idle" and self._queue_work is not None

    def _show_state(self) -> None:
        state = self._run_state
        queued = self.showing_queue_work
        self.run_button.setEnabled(state == "idle")
        self.stop_button.setEnabled(state == "running" or queued)
        self.stop_button.setToolTip(QUEUE_STOP_TIP if queued else RUN_STOP_TIP)
        if queued:
            text, shown = self._queue_text(), "running"
            self.state_label.setToolTip(self._queue_text(fit=False))
        else:
            text = {"running": "Running…", "stopping": "Stopping…"}.get(state, "")
            shown = state
            self.state_label.setToolTip("")
            if self.stop_menu.isVisible():
                self.stop_menu.close()
        self.state_label.setText(text)
        if self.state_label.property("state") != shown:
            self.state_label.setProperty("state", shown)
            self.state_label.style().unpolish(self.state_label)
            self.state_label.style().polish(self.state_label)

    def show_stop_menu(self) -> None:
        """Stop while queued work runs: stop this job, or pause the whole queue."""
        if self.showing_queue_work:
            self.stop_menu.popup(self.stop_button.mapToGlobal(self.stop_button.rect().bottomLeft()))

    def set_queue_available(self, available: bool, reason: str = "") -> None:
        self.queue_button.setEnabled(available)
        if not available and reason:
            self.queue_button.setToolTip(reason)

    def set_queue_count(self, count: int, paused: bool = False) -> None:
        self.queue_count.setText(f"Queue: {count}" + (" · paused" if paused else ""))
        self.queue_count.setToolTip("The queue is paused: resume it in the Queue tab." if paused
                                    else "Images waiting or running in the queue")
