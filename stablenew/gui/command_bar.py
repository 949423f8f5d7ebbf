"""CommandBar: Run (Ctrl+Enter), Stop (Esc), Add to queue (Ctrl+Shift+Enter), queue count, tools."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QStyle, QToolButton, QWidget


class CommandBar(QFrame):
    """The row of commands above the work area; enables what makes sense for the run state."""

    run_requested = Signal()
    stop_requested = Signal()
    queue_requested = Signal()
    prompt_editor_requested = Signal()
    settings_requested = Signal()

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
        self.stop_button.setToolTip("Stop the run; the server is interrupted (Esc)")
        self.queue_button = QPushButton(" Add to queue")
        self.queue_button.setObjectName("QueueButton")
        self.queue_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_FileDialogListView))
        self.queue_button.setToolTip("Add this run to the queue (Ctrl+Shift+Enter)")
        self.queue_count = QLabel("Queue: —")
        self.queue_count.setObjectName("QueueCount")
        self.state_label = QLabel("")
        self.state_label.setObjectName("RunStateLabel")
        self.editor_button = QToolButton(text="Prompt editor")
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
        layout.addWidget(self.state_label)
        layout.addStretch(1)
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
        self.set_run_state("idle")

    def set_run_state(self, state: str) -> None:
        self.run_button.setEnabled(state == "idle")
        self.stop_button.setEnabled(state == "running")
        self.state_label.setText({"running": "Running…", "stopping": "Stopping…"}.get(state, ""))
        self.state_label.setProperty("state", state)
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)

    def set_queue_available(self, available: bool, reason: str = "") -> None:
        self.queue_button.setEnabled(available)
        if not available and reason:
            self.queue_button.setToolTip(reason)

    def set_queue_count(self, count: int) -> None:
        self.queue_count.setText(f"Queue: {count}")
