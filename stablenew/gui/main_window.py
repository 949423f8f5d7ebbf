"""MainWindow: the panels of the window, then (`bind`) the controllers of a Session joined to them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import (
    QMainWindow,
    QPlainTextEdit,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from stablenew.controller.cards import PICKERS, SECTIONS
from stablenew.controller.window_state import WindowState
from stablenew.gui.close_guard import CloseGuard
from stablenew.gui.command_bar import CommandBar
from stablenew.gui.gallery_panel import GalleryPanel
from stablenew.gui.pipeline_panel import PipelinePanel
from stablenew.gui.prompt_assist import connect_prompt_assist
from stablenew.gui.prompt_editor import PromptEditorOverlay
from stablenew.gui.room_hooks import ROOM_ATTRIBUTES, join_room
from stablenew.gui.room_panels import PanelSlot, add_later_tabs, make_room_panel
from stablenew.gui.run_status import RunStatusBar
from stablenew.gui.screen_fit import fit_to_screen
from stablenew.gui.viewer_panel import ViewerPanel
from stablenew.gui.widgets.notice import NoticeBanner, NoticeStack

if TYPE_CHECKING:
    from stablenew.controller.errors import ErrorInfo
    from stablenew.controller.session import Session
    from stablenew.controller.startup import AppPaths  # the paths start-up hands the views

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

log = logging.getLogger("stablenew.gui")


class MainWindow(QMainWindow):
    """The window users live in; every action goes through a controller of the session.

    Built in two steps, so it paints before the models load: `MainWindow(window_state)` makes
    every widget from plain data (the cards from controller/cards.py, theme and layout from
    the remembered window state); `bind(session)` then joins the controllers.
    """

    closed = Signal()

    def __init__(self, window_state: WindowState) -> None:
        super().__init__()
        self.session: Session | None = None
        self.window_state = window_state
        window_state.setParent(self)
        self.setWindowTitle("StableNew")
        self.setAcceptDrops(True)
        self.resize(1480, 920)
        self.setMinimumSize(1024, 640)  # all stays reachable down to this (test_small_window.py)

        self.commands = CommandBar(self)
        self.server_notice = NoticeBanner()
        self.server_notice.setObjectName("ServerNotice")
        self.notice = NoticeBanner()
        self.pipeline_panel = PipelinePanel(SECTIONS, PICKERS)
        self.viewer = ViewerPanel()
        self.gallery_panel = GalleryPanel()
        self.status = RunStatusBar()
        self.setStatusBar(self.status)

        # The other rooms' panels replace these slots when their controllers open (`_room_opened`).
        self.sidebar = PanelSlot("Presets & packs",
                                 "Your presets and prompt packs will be listed here, with search.")
        self.work_tabs = QTabWidget()
        self.work_tabs.setObjectName("WorkTabs")
        self.work_tabs.setDocumentMode(True)
        self.work_tabs.addTab(self.pipeline_panel, "Pipeline")
        self.variants_panel = PanelSlot(
            "Variants",
            "Prompt variants and config matrices, with a live count of the images a run will make.")
        self.work_tabs.addTab(self.variants_panel, "Variants")
        self.queue_panel = PanelSlot(
            "Queue", "Batches waiting to run, their progress, and the controls to reorder, "
            "pause or cancel them.")
        self.work_tabs.addTab(self.queue_panel, "Queue")
        self.learning_panel = PanelSlot(
            "Learning", "Compare variants side by side, rate them, and see which settings "
            "score best.")
        self.work_tabs.addTab(self.learning_panel, "Learning")
        self.nodes_panel = PanelSlot(
            "Nodes", "The SD servers of your cluster, their health and speed, and which "
            "images each would run.")
        self.work_tabs.addTab(self.nodes_panel, "Nodes")
        self.models_panel = PanelSlot(
            "Models", "Your LoRAs with their previews, trigger words and base model; click one "
            "to add it to the prompt.")
        self.work_tabs.addTab(self.models_panel, "Models")
        self.trending_panel, self.funnel_panel = add_later_tabs(self.work_tabs)

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
        layout.addWidget(self.main_split, 1)
        self.setCentralWidget(central)
        # Over the panels' bottom edge, outside the layout: a notice never pushes anything away.
        self.notices = NoticeStack([self.server_notice, self.notice], self.main_split, central)
        self.prompt_overlay = PromptEditorOverlay(central)

        # --- views → window (each command goes on to a controller once bound) ---
        self.commands.run_requested.connect(self.run)
        self.commands.stop_requested.connect(self._stop)
        self.commands.queue_requested.connect(self.add_to_queue)
        self.commands.prompt_editor_requested.connect(self.open_prompt_editor)
        self.prompt_overlay.run_requested.connect(self.run)
        self.commands.settings_requested.connect(self.open_settings)
        self.status.error_clicked.connect(self._show_last_error)
        self.notice.changed.connect(self._sync_status_error)
        self.server_notice.changed.connect(self._sync_status_error)
        self.commands.set_queue_available(False, "The queue opens in a moment.")
        self.status.set_node("Starting…", "connecting")
        self._last_error: ErrorInfo | None = None  # one of _errors' values
        self._errors: dict[str, ErrorInfo] = {}  # each source's error now (run, gallery); cleared on success
        self._painted_once = False
        self._painted: asyncio.Future[None] | None = None
        self._start_pending = False
        self._dark: bool | None = None  # the palette applied; None before the first
        #: Asks before the window closes while queued work runs, and carries out the answer.
        self.closing = CloseGuard(self)
        self._restore_state()
        self.apply_theme()

    @property
    def bound_session(self) -> Session:
        """The session, for handlers that only run once `bind` gave the window one."""
        if self.session is None:
            raise RuntimeError("the window has no session yet")
        return self.session

    def bind(self, session: Session) -> None:
        """Join the session's controllers: from here on every view talks to them."""
        self.session = session
        # The window owns its session: controllers, timers and their threads go away with it, on
        # the Qt thread, never whenever (and wherever) Python's garbage collector gets to them.
        session.setParent(self)
        pipeline, gallery, server, app = session.pipeline, session.gallery, session.server, session.app
        self.pipeline_panel.bind(pipeline)
        self.viewer.bind(gallery)
        self.gallery_panel.bind(gallery)
        self.pipeline_panel.gallery_selection = lambda: [
            str(item.path) for key in self.gallery_panel.selected_keys()
            if (item := gallery.item(key)) is not None]
        # --- bindings: views → controllers ---
        self.viewer.sidebar.use_settings.connect(pipeline.load_from_image)
        self.viewer.sidebar.funnel_from.connect(pipeline.load_from_image)
        self.viewer.sidebar.funnel_from.connect(
            lambda _path: self.work_tabs.setCurrentWidget(self.funnel_panel))
        connect_prompt_assist(self, session)
        # --- bindings: controllers → views ---
        server.state_changed.connect(self._server_changed)
        server.error_changed.connect(self._server_changed)
        server.capabilities_changed.connect(self.pipeline_panel.refresh_choices)
        server.refreshing_changed.connect(self.status.set_refreshing)
        self.status.refresh_clicked.connect(server.refresh_lists)
        pipeline.run_state_changed.connect(self.commands.set_run_state)
        pipeline.progress_changed.connect(self._run_progress)
        pipeline.preview_changed.connect(self._preview)
        pipeline.error_changed.connect(lambda info: self._error_changed("run", info))
        pipeline.message_changed.connect(self._info)
        pipeline.warning_raised.connect(self._warning)
        gallery.error_changed.connect(lambda info: self._error_changed("gallery", info))
        app.notice_changed.connect(self._app_notice)
        app.theme_changed.connect(self.apply_theme)
        pipeline.set_values_provider(self.pipeline_panel.values)
        session.room_opened.connect(self._room_opened)
        self._setup_queue()
        self._setup_plan_button()
        self._setup_nodes()
        if app.notice is not None:
            self.notice.show_notice(app.notice.message, app.notice.detail, level="warning")
        self._server_changed()
        self.apply_theme()  # the settings' theme: the remembered one painted first
        self._start_when_ready()

    # --- slots of other rooms ---------------------------------------------------------------

    def _make_panel(self, name: str) -> QWidget | None:
        return make_room_panel(name, getattr(self.session, name, None))

    def _room_opened(self, name: str) -> None:
        """A room's controller is ready after start-up: put its panel where the slot was."""
        attribute = ROOM_ATTRIBUTES[name]
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
        join_room(self, name, new)

    def _setup_variants(self) -> None:
        """A Run that waited for the variant count starts when the count is in (if still wanted)."""
        run_requested = getattr(self.variants_panel, "run_requested", None)
        if run_requested is not None:
            run_requested.connect(self.run)

    def _setup_queue(self) -> None:
        queue = self.bound_session.queue
        if queue is None:
            self.commands.set_queue_available(False, "The queue is not installed in this build yet.")
            return
        self.commands.set_queue_available(True)
        self.commands.queue_button.setToolTip("Add this run to the queue (Ctrl+Shift+Enter)")
        queue.count_changed.connect(self._queue_count)
        queue.paused_changed.connect(self._queue_count)
        queue.activity.changed.connect(self._queue_work)
        queue.activity.preview_changed.connect(self._queue_preview)
        queue.waiting_changed.connect(self.status.set_waiting)
        queue.waiting_changed.connect(self._info)  # as a wait begins ("" as it ends: nothing)
        self.commands.stop_job_requested.connect(self._stop_queued_job)
        self.commands.pause_queue_requested.connect(queue.edits.pause)
        self._queue_count()
        self._queue_work(queue.activity.current)

    def _queue_count(self, *_args) -> None:
        if (queue := self.bound_session.queue) is not None:
            self.commands.set_queue_count(queue.count, queue.paused)

    def _queue_work(self, work) -> None:
        """Queued work (not a Run) shows in the bar as a Run does: what, image i of n, time left."""
        if work is None:
            self.commands.show_queue_work(None)
        else:
            self.commands.show_queue_work(work.job_name, *work.details)
        if self.bound_session.pipeline.state == "idle":
            self.status.show_progress(work.progress if work is not None else None)

    def _queue_preview(self, decoded, caption: str) -> None:
        # The viewer follows queued work as it follows a Run (a Run's own previews win).
        if self.bound_session.pipeline.state == "idle":
            self.viewer.show_preview(decoded, caption)

    def _run_progress(self, progress) -> None:
        # A Run's progress; once it is over, the queue's work (if any) has the bar again.
        work = self.bound_session.queue.activity.current if self.bound_session.queue is not None else None
        if (progress is None or progress.state == "idle") and work is not None:
            progress = work.progress
        self.status.show_progress(progress)

    def _stop_queued_job(self) -> None:
        queue = self.bound_session.queue
        if queue is None or (work := queue.activity.current) is None:
            return
        queue.cancel_job(work.job_id)
        self.notice.show_notice(f"Stopped “{work.job_name}”: its images that were left are "
                                "cancelled. Retry them from the Queue tab.", level="info")

    def _setup_plan_button(self) -> None:
        """The queue panel's Plan button shows the dry run in the Nodes tab."""
        plan_requested = getattr(self.queue_panel, "plan_requested", None)
        if plan_requested is not None:
            plan_requested.connect(self.show_plan)

    def _setup_nodes(self) -> None:
        """The status bar's cluster line follows the nodes' states."""
        nodes = self.bound_session.nodes
        if nodes is not None:
            nodes.summary_changed.connect(self._cluster_changed)
        self._cluster_changed()

    def _cluster_changed(self, summary: str = "") -> None:
        nodes = self.bound_session.nodes
        if nodes is None or not (rows := nodes.model.rowCount()) or not self.bound_session.cluster_enabled:
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
        if self.bound_session.nodes is None:
            self.notice.show_notice("The cluster part of StableNew is not available in this build.",
                                    level="warning")
            return
        self.work_tabs.setCurrentWidget(self.nodes_panel)
        if not self.bound_session.plan_queue():
            self.notice.show_notice("There are no nodes to plan over yet. Add your SD servers here, "
                                    "in the Nodes tab, and press Plan again.", level="info")

    # --- commands -----------------------------------------------------------------------------

    def run(self) -> None:
        if self.prompt_overlay.isVisible():
            self.prompt_overlay.accept()
        if self.session is None:
            return  # the first moments of start-up: the controllers are not joined yet
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
        if self.session is None:
            return
        if self.commands.showing_queue_work:
            self.commands.show_stop_menu()  # this job, or the whole queue?
        else:
            self.session.pipeline.stop()

    def add_to_queue(self) -> None:
        if self.session is None or self.session.queue is None:
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
        if isinstance(widget, QPlainTextEdit):  # the prompt's FieldSpec kind is "text"
            self.work_tabs.setCurrentWidget(self.pipeline_panel)
            self.prompt_overlay.open_for(widget, "Prompt")

    def open_settings(self) -> None:
        from stablenew.gui.settings_dialog import SettingsDialog

        if self.session is None:
            return
        dialog = SettingsDialog(self.session.app, self, prompts=self.session.prompts)
        dialog.open()
        self._settings_dialog = dialog

    # --- controller → view ----------------------------------------------------------------------

    def start_after_first_paint(self) -> None:
        """Start the session (network, disk, the other rooms) once the window has been painted
        and the session is bound, whichever comes last."""
        self._start_pending = True
        self._start_when_ready()

    def _start_when_ready(self) -> None:
        if self._start_pending and self._painted_once and self.session is not None:
            self._start_pending = False
            # The session as context: nothing runs if it is gone before the timer fires.
            QTimer.singleShot(0, self.session, self.session.start)

    async def first_paint(self, timeout: float = 1.0) -> None:
        """Wait until the window has painted once (or *timeout* seconds: a window the system
        never exposes, say minimized, must not hold start-up back)."""
        if self._painted_once:
            return
        self._painted = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._painted), timeout)
        except TimeoutError:
            pass
        finally:
            self._painted = None

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self.prompt_overlay.fit()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt name)
        super().paintEvent(event)
        if not self._painted_once:
            self._painted_once = True
            if self._painted is not None and not self._painted.done():
                self._painted.set_result(None)  # runs once this paint is on screen
            self._start_when_ready()

    def _server_changed(self, *_args) -> None:
        server = self.bound_session.server
        self.status.set_node(server.describe(), str(server.state))
        error = server.error
        if error is not None:
            self.server_notice.show_notice(
                error.message, error.detail, level="error",
                actions=(("Try again", server.reconnect), ("Settings…", self.open_settings)))
        else:
            self.server_notice.clear()

    def _preview(self, decoded, live: bool) -> None:
        # A saved image is a result, never a "live preview", even while the run goes on.
        progress = self.bound_session.pipeline.progress
        if live and progress.state != "idle":
            caption = "Live preview"
            if progress.step_text:
                caption += f" · {progress.step_text}"
        else:
            caption = "Latest result"
        self.viewer.show_preview(decoded, caption)

    def _error_changed(self, source: str, info) -> None:
        """One error, one place: a banner says it; the status bar keeps it only once no banner
        does, and both forget it when its source succeeds (info None)."""
        old = self._errors.pop(source, None)
        if info is None:
            if old is not None and self._last_error is old:
                self._last_error = next(iter(self._errors.values()), None)
                if self.notice.message == old.message:
                    self.notice.clear()
            self._sync_status_error()
            return
        self._errors[source] = info
        self._last_error = info
        if not self._in_banner(info):
            self.notice.show_error(info)
        self._sync_status_error()

    def _in_banner(self, info) -> bool:
        # The same first sentence is the same problem: a Run that finds no server says it in
        # its own words after the server's banner has said it.
        said = _first_sentence(info.message)
        return any(not banner.isHidden() and _first_sentence(banner.message) == said
                   for banner in (self.notice, self.server_notice))

    def _sync_status_error(self) -> None:
        # A banner closed or replaced: the status bar keeps the error; a click brings it back.
        error = self._last_error
        self.status.set_last_error(error if error is not None and not self._in_banner(error) else None)

    def _app_notice(self, info) -> None:
        if info is None:
            self.notice.clear()
        else:
            self.notice.show_error(info)

    def _info(self, text: str) -> None:
        if not text or any(self.notice.message == e.message for e in self._errors.values()):
            # A live error stays in view: the end-of-run lines after it ("… 1 failed", "No image
            # was saved: <the error>") would only repeat it in weaker words.
            return
        self.notice.show_notice(text, level="info")

    def _warning(self, text: str) -> None:
        self.notice.show_notice(text, level="warning")

    def _show_last_error(self) -> None:
        if self._last_error is not None:
            self.notice.show_error(self._last_error)
            self.notice._details_button.setChecked(True)

    # --- theme ----------------------------------------------------------------------------------

    def apply_theme(self, *_args) -> None:
        """The settings' theme once bound; before that the one they asked for at the last launch."""
        theme = self.session.app.theme if self.session is not None else self.window_state.theme
        if theme == "system":
            dark = QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark
        else:
            dark = theme == "dark"
        if dark == self._dark:
            return  # the same sheet again would polish every widget again for nothing
        self._dark = dark
        self.setProperty("dark", dark)
        # On the window, not the whole application: its dialogs and popups inherit it, and a
        # second window (tests, tools) never re-polishes this one.
        self.setStyleSheet(self.window_state.style_sheet(dark))

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
        if self.session is not None:
            self.session.pipeline.load_from_image(path)

    # --- remembered state and shutdown ----------------------------------------------------------

    def _restore_state(self) -> None:
        for key, restore in (("geometry", self.restoreGeometry),
                             ("main_split", self.main_split.restoreState),
                             ("right_split", self.right_split.restoreState)):
            value = self.window_state.value(key)
            if isinstance(value, QByteArray | bytes) and value:
                restore(QByteArray(value))
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is not None:
            area = screen.availableGeometry()
            fitted = fit_to_screen(self.geometry(), self.minimumSize(), area)
            if fitted is not None:
                self.setGeometry(fitted)

    def save_state(self) -> None:
        state = self.window_state
        state.set_value("geometry", self.saveGeometry())
        state.set_value("main_split", self.main_split.saveState())
        state.set_value("right_split", self.right_split.saveState())
        state.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt name)
        if self.closing.holds(event):
            return
        self.save_state()
        event.accept()
        self.closed.emit()

    async def shutdown(self) -> None:
        if self.session is not None:
            await self.session.aclose(keep_queued=self.closing.answer == "stop")


def _first_sentence(text: str) -> str:
    return text.split(". ", 1)[0].strip().rstrip(".")


def _dropped_image(mime) -> Path | None:
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in IMAGE_SUFFIXES:
                return path
    return None


def open_window(paths: AppPaths) -> MainWindow:
    """The window as the last launch left it, before settings and controllers load (see `bind`);
    *paths* is the AppPaths of start-up."""
    return MainWindow(WindowState(paths))


def build_main_window(startup=None) -> MainWindow:
    """A window joined to a new session at once (tests, tools; `run_app` paints first)."""
    from stablenew.controller.session import Session
    from stablenew.controller.startup import start_up

    startup = startup or start_up()
    window = open_window(startup.paths)
    window.bind(Session(startup, window_state=window.window_state))
    return window
