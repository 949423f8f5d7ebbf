"""RunStatusBar: node and health, stage n of m, step progress, overall bar, ETA in words, last error."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QSizePolicy, QStatusBar, QWidget

from stablenew.gui.widgets.elided_label import ElidedLabel


class ElidedButton(QPushButton):
    """A flat button whose text shortens to the room it is given: it takes what is left and never
    pushes its neighbours (progress, ETA) out of the window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(24)
        self._full = ""

    def set_full_text(self, text: str) -> None:
        self._full = text
        self._elide()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        room = self.contentsRect().width() - 16  # the button's own padding
        text = self._full if room <= 0 else self.fontMetrics().elidedText(
            self._full, Qt.TextElideMode.ElideRight, room)
        self.setText(text)


class RunStatusBar(QStatusBar):
    """The bottom bar; `error_clicked` opens the details of the last error."""

    error_clicked = Signal()
    refresh_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("RunStatusBar")
        self.setSizeGripEnabled(False)
        # Shortens before progress and ETA do: at the narrowest window every part still fits.
        self.node_label = ElidedLabel()
        self.node_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.node_label.setMinimumWidth(80)
        self.node_label.setObjectName("NodeLabel")
        self.health_dot = QLabel("●")
        self.health_dot.setObjectName("HealthDot")
        self.stage_label = QLabel()
        self.stage_label.setObjectName("StageLabel")
        self.step_bar = QProgressBar()
        self.step_bar.setObjectName("StepBar")
        self.step_bar.setFixedWidth(130)  # room for "Hires fix 12/20"
        self.step_bar.setTextVisible(True)
        self.step_bar.setFormat("step %v/%m")
        self.overall_bar = QProgressBar()
        self.overall_bar.setObjectName("OverallBar")
        self.overall_bar.setRange(0, 1000)
        self.overall_bar.setFixedWidth(160)
        self.overall_bar.setFormat("%p%")
        self.eta_label = QLabel()
        self.eta_label.setObjectName("EtaLabel")
        # The cluster's state ("3 of 4 nodes ready"), shown only when a nodes file lists nodes.
        self.cluster_label = QLabel()
        self.cluster_label.setObjectName("ClusterLabel")
        self.cluster_label.hide()
        self.error_button = ElidedButton()
        self.error_button.setObjectName("ErrorButton")
        self.error_button.setFlat(True)
        self.error_button.clicked.connect(self.error_clicked)
        self.error_button.hide()
        self.refresh_button = QPushButton("Refresh lists")
        self.refresh_button.setObjectName("RefreshLists")
        self.refresh_button.setFlat(True)
        self.refresh_button.setToolTip(
            "Ask the server for its models, LoRAs, embeddings and extensions again: after you "
            "copy files into its folders or install an extension.")
        self.refresh_button.clicked.connect(self.refresh_clicked)
        self.addWidget(self.health_dot)
        self.addWidget(self.node_label)
        self.addWidget(self.refresh_button)
        self.addWidget(self.cluster_label)
        self.addWidget(self.error_button, 1)
        self.addPermanentWidget(self.stage_label)
        self.addPermanentWidget(self.step_bar)
        self.addPermanentWidget(self.overall_bar)
        self.addPermanentWidget(self.eta_label)
        self._waiting = ""
        self._progress = None
        self.show_progress(None)

    def set_node(self, text: str, state: str) -> None:
        self.node_label.set_full_text(text)
        self.health_dot.setProperty("state", state)
        self.health_dot.setToolTip({"connected": "Server ready", "connecting": "Connecting…"}.get(
            state, "Server not reachable"))
        self.health_dot.style().unpolish(self.health_dot)
        self.health_dot.style().polish(self.health_dot)

    def set_refreshing(self, busy: bool) -> None:
        self.refresh_button.setEnabled(not busy)
        self.refresh_button.setText("Refreshing…" if busy else "Refresh lists")

    def set_waiting(self, text: str) -> None:
        """What queued work waits for ("" when nothing): in place of "Starting…" (alone while
        nothing runs: a batch waits as a Run does), in full in the tooltip."""
        self._waiting = "Waiting for a node…" if text else ""
        self.stage_label.setToolTip(text)
        self.show_progress(self._progress)

    def set_cluster(self, text: str | None, details: str = "") -> None:
        """The cluster's one-line state with each node's state and job as the tooltip; None hides
        it (a single-PC setup sees only its server)."""
        self.cluster_label.setVisible(bool(text))
        self.cluster_label.setText(f"· {text}" if text else "")
        self.cluster_label.setToolTip(details)

    def show_progress(self, progress) -> None:
        self._progress = progress
        active = progress is not None and progress.state != "idle"
        for widget in (self.stage_label, self.step_bar, self.overall_bar, self.eta_label):
            widget.setVisible(active)
        if not active:
            self.stage_label.setText(self._waiting)
            self.stage_label.setVisible(bool(self._waiting))
            return
        self.stage_label.setText(progress.stage_text or self._waiting or "Starting…")
        if progress.steps and not progress.finishing:
            self.step_bar.setRange(0, progress.steps)
            self.step_bar.setValue(progress.step or 0)
            self.step_bar.setFormat(f"{progress.pass_title} %v/%m")
        else:
            # Busy until the server reports steps, and while it decodes or upscales after them.
            self.step_bar.setRange(0, 0)
        self.overall_bar.setValue(int(progress.overall_fraction * 1000))
        self.eta_label.setText(progress.eta_text)

    def set_last_error(self, info) -> None:
        if info is None:
            self.error_button.hide()
            return
        self.error_button.set_full_text(f"⚠ {info.message}")
        self.error_button.setToolTip(info.full_text() + "\n\nClick for details.")
        self.error_button.show()
