"""MainWindow: binds the controllers of a Session to the panels of the window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import (
    QMainWindow,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from stablenew.controller.session import Session
from stablenew.gui.command_bar import CommandBar
from stablenew.gui.gallery_panel import GalleryPanel
from stablenew.gui.pipeline_panel import PipelinePanel
from stablenew.gui.prompt_editor import PromptEditorOverlay
from stablenew.gui.room_panels import PanelSlot, make_room_panel
from stablenew.gui.run_status import RunStatusBar
from stablenew.gui.viewer_panel import ViewerPanel
from stablenew.gui.widgets.notice import NoticeBanner

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class MainWindow(QMainWindow):
    """The window users live in; every action goes through a controller of the session."""

    closed = Signal()

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        # The window owns its session: controllers, timers and their threads go away with it, on
        # the Qt thread, never whenever (and wherever) Python's garbage collector gets to them.
        session.setParent(self)
        self.setWindowTitle("StableNew")
        self.setAcceptDrops(True)
        self.resize(1480, 920)
        self.setMinimumSize(980, 640)

        pipeline, gallery, server, app = session.pipeline, session.gallery, session.server, session.app
        self.commands = CommandBar(self)
        self.server_notice = NoticeBanner()
        self.server_notice.setObjectName("ServerNotice")
        self.notice = NoticeBanner()
        self.pipeline_panel = PipelinePanel(pipeline)
        self.viewer = ViewerPanel(gallery)
        self.gallery_panel = GalleryPanel(gallery)
        self.status = RunStatusBar()
        self.setStatusBar(self.status)

        # Sidebar: library (presets and packs) — another room's panel.
        self.sidebar = self._panel_or_slot(
            "library", "Presets & packs",
            "Your presets and prompt packs will be listed here, with search.")
        self.work_tabs = QTabWidget()
        self.work_tabs.setObjectName("WorkTabs")
        self.work_tabs.setDocumentMode(True)
        self.work_tabs.addTab(self.pipeline_panel, "Pipeline")
        self.variants_panel = self._panel_or_slot(
            "randomizer", "Variants",
            "Prompt variants and config matrices, with a live count of the images a run will make.")
        self.work_tabs.addTab(self.variants_panel, "Variants")
        self._setup_variants()
        self.queue_panel = self._panel_or_slot(
            "queue", "Queue", "Batches waiting to run, their progress, and the controls to reorder, "
            "pause or cancel them.")
        self.work_tabs.addTab(self.queue_panel, "Queue")
        self.learning_panel = self._panel_or_slot(
            "learning", "Learning", "Compare variants side by side, rate them, and see which "
            "settings score best.")
        self.work_tabs.addTab(self.learning_panel, "Learning")
        self.nodes_panel = self._panel_or_slot(
            "nodes", "Nodes", "The SD servers of your cluster, their health and speed, and which "
            "images each would run.")
        self.work_tabs.addTab(self.nodes_panel, "Nodes")

        self.right_split = QSplitter(Qt.Orientation.Vertical)
        self.right_split.setObjectName("RightSplit")
        self.right_split.addWidget(self.viewer)
        self.right_split.addWidget(self.gallery_panel)
        self.right_split.setStretchFactor(0, 3)
        self.right_split.setStretchFactor(1, 2)
        self.main_split = QSplitter(Qt.Orientation.Horizontal)
        self.main_split.setObjectName("MainSplit")
        self.main_split.addWidget(self.sidebar)
        self.main_split.addWidget(self.work_tabs)
        self.main_split.addWidget(self.right_split)
        self.main_split.setStretchFactor(0, 0)
        self.main_split.setStretchFactor(1, 0)
        self.main_split.setStretchFactor(2, 1)
        self.main_split.setSizes([250, 480, 750])

        central = QWidget()
        central.setObjectName("Central")
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.commands)
        layout.addWidget(self.server_notice)
        layout.addWidget(self.notice)
        layout.addWidget(self.main_split, 1)
        self.setCentralWidget(central)
        self.prompt_overlay = PromptEditorOverlay(central)

        # --- bindings: views → controllers ---
        self.commands.run_requested.connect(self.run)
        self.commands.stop_requested.connect(self._stop)
        self.commands.queue_requested.connect(self.add_to_queue)
        self.commands.prompt_editor_requested.connect(self.open_prompt_editor)
        self.commands.settings_requested.connect(self.open_settings)
        self.status.error_clicked.connect(self._show_last_error)
        self.viewer.sidebar.use_settings.connect(pipeline.load_from_image)
        # --- bindings: controllers → views ---
        server.state_changed.connect(self._server_changed)
        server.error_changed.connect(self._server_changed)
        server.capabilities_changed.connect(self.pipeline_panel.refresh_choices)
        pipeline.run_state_changed.connect(self.commands.set_run_state)
        pipeline.progress_changed.connect(self.status.show_progress)
        pipeline.preview_changed.connect(self._preview)
        pipeline.error_changed.connect(self._run_error)
        pipeline.message_changed.connect(self._info)
        pipeline.warning_raised.connect(self._warning)
        gallery.error_changed.connect(self._run_error)
        app.notice_changed.connect(self._app_notice)
        app.theme_changed.connect(self.apply_theme)
        pipeline.set_values_provider(self.pipeline_panel.values)
        self.pipeline_panel.values_changed.connect(self._cards_changed)
        session.room_opened.connect(self._room_opened)
        self._setup_queue()
        self._setup_plan_button()
        self._setup_nodes()
        if app.notice is not None:
            self.notice.show_notice(app.notice.message, app.notice.detail, level="warning")
        self._last_error = None
        self._painted_once = False
        self._start_pending = False
        self._server_changed()
        self._restore_state()

    # --- slots of other rooms ---------------------------------------------------------------

    def _panel_or_slot(self, name: str, title: str, text: str) -> QWidget:
        return self._make_panel(name) or PanelSlot(title, text)

    def _make_panel(self, name: str) -> QWidget | None:
        return make_room_panel(name, getattr(self.session, name, None))

    def _room_opened(self, name: str) -> None:
        """A room's controller is ready after start-up: put its panel where the slot was."""
        attribute = {"library": "sidebar", "randomizer": "variants_panel", "queue": "queue_panel",
                     "learning": "learning_panel", "nodes": "nodes_panel"}[name]
        old = getattr(self, attribute)
        new = self._make_panel(name)
        if new is None:
            return  # no panel for this room in this build: keep the explanatory slot
        if name == "library":
            new.setObjectName(new.objectName() or "Sidebar")
            self.main_split.replaceWidget(self.main_split.indexOf(old), new)
        else:
            index = self.work_tabs.indexOf(old)
            current = self.work_tabs.currentIndex() == index
            title = self.work_tabs.tabText(index)
            self.work_tabs.removeTab(index)
            self.work_tabs.insertTab(index, new, title)
            if current:
                self.work_tabs.setCurrentIndex(index)
        old.deleteLater()
        setattr(self, attribute, new)
        if name == "queue":
            self._setup_queue()
            self._setup_plan_button()
        if name == "nodes":
            self._setup_nodes()
        if name == "randomizer":
            self._setup_variants()
            self._cards_changed("")

    def _cards_changed(self, _path: str) -> None:
        # The variant count follows the cards (the adapter debounces and counts off-thread).
        randomizer = self.session.randomizer
        if randomizer is not None:
            randomizer.set_base_config(self.session.pipeline.current_config())

    def _setup_variants(self) -> None:
        """A Run that waited for the variant count starts when the count is in (if still wanted)."""
        run_requested = getattr(self.variants_panel, "run_requested", None)
        if run_requested is not None:
            run_requested.connect(self.run)

    def _setup_queue(self) -> None:
        queue = self.session.queue
        if queue is None:
            self.commands.set_queue_available(False, "The queue is not installed in this build yet.")
            return
        self.commands.set_queue_available(True)
        self.commands.queue_button.setToolTip("Add this run to the queue (Ctrl+Shift+Enter)")
        queue.count_changed.connect(self.commands.set_queue_count)
        self.commands.set_queue_count(queue.count)

    def _setup_plan_button(self) -> None:
        """The queue panel's Plan button shows the dry run in the Nodes tab."""
        plan_requested = getattr(self.queue_panel, "plan_requested", None)
        if plan_requested is not None:
            plan_requested.connect(self.show_plan)

    def _setup_nodes(self) -> None:
        """The status bar's cluster line follows the nodes' states."""
        nodes = self.session.nodes
        if nodes is not None:
            nodes.summary_changed.connect(self._cluster_changed)
        self._cluster_changed()

    def _cluster_changed(self, summary: str = "") -> None:
        nodes = self.session.nodes
        rows = nodes.model.rowCount() if nodes is not None else 0
        if not rows or not self.session.cluster_enabled:
            self.status.set_cluster(None)  # one PC: the status bar shows its server, as always
            return
        model = nodes.model
        lines = []
        for row in range(rows):
            name, state, job = (model.index(row, column).data() for column in (0, 1, 2))
            lines.append(f"{name}: {state}" + (f" — {job}" if job else ""))
        if not summary:
            states = [model.index(row, 1).data() for row in range(rows)]
            summary = f"{states.count('Ready')} of {len(states) - states.count('Off')} nodes ready"
        self.status.set_cluster(summary, "\n".join(lines))

    def show_plan(self) -> None:
        """The queue panel's Plan: the Nodes tab shows which node would take each image, and when."""
        if self.session.nodes is None:
            self.notice.show_notice("The cluster part of StableNew is not available in this build.",
                                    level="warning")
            return
        self.work_tabs.setCurrentWidget(self.nodes_panel)
        if not self.session.plan_queue():
            self.notice.show_notice("There are no nodes to plan over yet. Add your SD servers here, "
                                    "in the Nodes tab, and press Plan again.", level="info")

    # --- commands -----------------------------------------------------------------------------

    def run(self) -> None:
        if self.prompt_overlay.isVisible():
            self.prompt_overlay.accept()
        confirm = getattr(self.variants_panel, "confirm_large_run", None)
        if confirm is not None and not confirm():
            return  # a plan above the threshold never starts unasked
        if self.session.pipeline.run(self.pipeline_panel.values()):
            self.viewer.follow_live()

    def _stop(self) -> None:
        if self.prompt_overlay.isVisible():
            return  # Esc closes the editor first
        cancel_waiting = getattr(self.variants_panel, "cancel_waiting_run", None)
        if cancel_waiting is not None:
            cancel_waiting()  # a Run still waiting for its variant count is forgotten too
        self.session.pipeline.stop()

    def add_to_queue(self) -> None:
        queue = self.session.queue
        if queue is None:
            return
        try:
            config = self.session.pipeline.build_config(self.pipeline_panel.values())
        except ValueError as exc:
            self.notice.show_notice(f"These settings cannot be queued: {exc}", level="error")
            return
        self.session.add_to_queue(config)
        self.notice.show_notice("Added to the queue.", level="info")

    def open_prompt_editor(self) -> None:
        widget = self.pipeline_panel.editor("txt2img.prompt").widget
        self.work_tabs.setCurrentWidget(self.pipeline_panel)
        self.prompt_overlay.open_for(widget, "Prompt")

    def open_settings(self) -> None:
        from stablenew.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.session.app, self)
        dialog.open()
        self._settings_dialog = dialog

    # --- controller → view ----------------------------------------------------------------------

    def start_after_first_paint(self) -> None:
        """Start the session (network, disk, the other rooms) once the window has been painted."""
        if self._painted_once:
            QTimer.singleShot(0, self.session, self.session.start)
        else:
            self._start_pending = True

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self.prompt_overlay.fit()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt name)
        super().paintEvent(event)
        if not self._painted_once:
            self._painted_once = True
            if self._start_pending:
                self._start_pending = False
                # The window as context: nothing runs if it is gone before the timer fires.
                QTimer.singleShot(0, self.session, self.session.start)

    def _server_changed(self, *_args) -> None:
        server = self.session.server
        self.status.set_node(server.describe(), str(server.state))
        error = server.error
        if error is not None:
            self.server_notice.show_notice(
                error.message, error.detail, level="error",
                actions=(("Try again", server.reconnect), ("Settings…", self.open_settings)))
        else:
            self.server_notice.clear()

    def _preview(self, decoded) -> None:
        progress = self.session.pipeline.progress
        caption = "Live preview" if progress.state != "idle" else "Latest result"
        if progress.step_text and progress.state != "idle":
            caption += f" · {progress.step_text}"
        self.viewer.show_preview(decoded, caption)

    def _run_error(self, info) -> None:
        if info is not None:
            self._last_error = info
            self.status.set_last_error(info)
            self.notice.show_error(info)

    def _app_notice(self, info) -> None:
        if info is None:
            self.notice.clear()
        else:
            self.notice.show_error(info)

    def _info(self, text: str) -> None:
        self.notice.show_notice(text, level="info")

    def _warning(self, text: str) -> None:
        self.notice.show_notice(text, level="warning")

    def _show_last_error(self) -> None:
        if self._last_error is not None:
            self.notice.show_error(self._last_error)
            self.notice._details_button.setChecked(True)

    # --- theme ----------------------------------------------------------------------------------

    def apply_theme(self, *_args) -> None:
        theme = self.session.app.theme
        if theme == "system":
            dark = QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark
        else:
            dark = theme == "dark"
        self.setProperty("dark", dark)
        # On the window, not the whole application: its dialogs and popups inherit it, and a
        # second window (tests, tools) never re-polishes this one.
        self.setStyleSheet(self.session.app.style_sheet(dark))

    # --- drag and drop of images ----------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if _dropped_image(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        path = _dropped_image(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.work_tabs.setCurrentWidget(self.pipeline_panel)
        self.session.pipeline.load_from_image(path)

    # --- remembered state and shutdown ----------------------------------------------------------

    def _restore_state(self) -> None:
        app = self.session.app
        for key, restore in (("geometry", self.restoreGeometry),
                             ("main_split", self.main_split.restoreState),
                             ("right_split", self.right_split.restoreState)):
            value = app.ui_value(key)
            if isinstance(value, QByteArray | bytes) and value:
                restore(QByteArray(value))

    def save_state(self) -> None:
        app = self.session.app
        app.set_ui_value("geometry", self.saveGeometry())
        app.set_ui_value("main_split", self.main_split.saveState())
        app.set_ui_value("right_split", self.right_split.saveState())
        app.sync_ui_state()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt name)
        self.save_state()
        event.accept()
        self.closed.emit()

    async def shutdown(self) -> None:
        await self.session.aclose()


def _dropped_image(mime) -> Path | None:
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in IMAGE_SUFFIXES:
                return path
    return None


def build_main_window(startup=None) -> MainWindow:
    session = Session(startup)
    window = MainWindow(session)
    window.apply_theme()
    return window
