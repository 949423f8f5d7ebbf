"""Session: builds the controllers the window binds to, wires them together, closes them at exit."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from stablenew.controller.app_controller import AppController, Startup, start_up
from stablenew.controller.card_memory import CARDS_FILE, CardMemory, CardsNotRestored
from stablenew.controller.errors import ErrorInfo
from stablenew.controller.gallery_controller import GalleryController, StoredRatings
from stablenew.controller.gallery_index import INDEX_FILE, IndexedOutputs
from stablenew.controller.pipeline_controller import PipelineController
from stablenew.controller.prompt_controller import PromptController
from stablenew.controller.run_work import RunNotQueued, RunQueue
from stablenew.controller.server_controller import ServerController
from stablenew.controller.session_rooms import SessionRooms
from stablenew.controller.tasks import TaskOwner
from stablenew.controller.window_state import WindowState

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from stablenew.backends.protocol import Backend
    from stablenew.cluster.dispatcher import ClusterDispatcher
    from stablenew.cluster.nodes import NodeConfig
    from stablenew.cluster.prompt_steps import CatalogView, LoraMatchStep
    from stablenew.cluster.queue_events import QueueEventCallback
    from stablenew.cluster.queue_store import QueueStore
    from stablenew.controller.catalog_controller import CatalogController
    from stablenew.controller.funnel_controller import FunnelController
    from stablenew.controller.learning_controller import LearningController
    from stablenew.controller.learning_ratings import LearningRatingBook
    from stablenew.controller.library_controller import LibraryController
    from stablenew.controller.nodes_controller import NodesController
    from stablenew.controller.queue_controller import PlanEntry, QueueController
    from stablenew.controller.randomizer_adapter import RandomizerAdapter
    from stablenew.controller.taste_controller import TasteController
    from stablenew.controller.trending_controller import TrendingController
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.pipeline.records import ImageRecord
    from stablenew.pipeline.runner import PromptStep
    from stablenew.prompting.step import PromptEnhancer

log = logging.getLogger("stablenew.controller")


ROOMS = ("library", "randomizer", "learning", "queue", "nodes", "catalog", "trending", "funnel")
#: How often the nodes of an idle cluster are checked (a running queue's dispatcher checks its own).
NODE_CHECK_MS = 30_000
#: How often a window looks again whether another StableNew still works on the queue it left.
TAKE_OVER_MS = 2_000


class Session(SessionRooms):
    """Every controller of one window; the GUI receives this and nothing from lower rooms."""

    #: name of a room whose controller is now available ("library", "randomizer", ...)
    room_opened = Signal(str)
    #: an image the queue saved (an ImageRecord), a Run's or a batch's: emitted from whichever
    #: thread saved it, so the gallery hears of it on the Qt thread
    queued_image_saved = Signal(object)
    #: images the queue deleted (an unfinished attempt's, before it runs again), as str paths:
    #: emitted from whichever thread deleted them, so the gallery drops them on the Qt thread
    queued_images_removed = Signal(list)

    def __init__(self, startup: Startup | None = None, parent: QObject | None = None, *,
                 window_state: WindowState | None = None) -> None:
        super().__init__(parent)
        self.app = AppController(startup or start_up(), self, window_state=window_state)
        self.server = ServerController(self.app.settings, self)
        self.app.settings_changed.connect(self.server.set_settings)
        self.pipeline = PipelineController(self.server, lambda: self.app.output_dir,
                                           log_dir=self.app.paths.log_dir, parent=self)
        # Ratings are read from the learning store from the start, so the gallery and the viewer
        # show the same stars as the learning room, before it has opened too.
        # The gallery lists from its index (built in the background the first time).
        self.gallery = GalleryController(
            lambda: self.app.output_dir,
            StoredRatings(self.app.paths.database_file, self._learning_ratings), self,
            outputs=IndexedOutputs(self.app.paths.data_dir / INDEX_FILE,
                                   self.app.paths.database_file))
        # The cards as the user left them (a close or a crash), saved again at every change.
        self.cards = CardMemory(self.app.paths.data_dir / CARDS_FILE, self.pipeline.current_config,
                                self)
        self._restore_cards()
        self.pipeline.cards_changed.connect(self.cards.schedule)
        # The local LLM's "Enhance" and "Refine" (nothing is imported from prompting until used).
        self.prompts = PromptController(self.app, self)
        # Run is a queue item: every image reaches the gallery from the queue, once.
        self.queued_image_saved.connect(self.gallery.add_record)
        self.queued_images_removed.connect(self.gallery.forget)
        self.gallery.actions.enqueue = self.add_to_queue  # the gallery's "Queue again"
        inspector = self.gallery.inspector  # "Regenerate", "More like this", "Upscale"…
        inspector.enqueue_plan = lambda configs, name: self.queue_trending(configs, name=name)
        inspector.load_cards = self.pipeline.load_config
        inspector.current_config = self.pipeline.current_config
        inspector.start_folder = self.app.paths.data_dir / "start_images"
        self.pipeline.set_run_queue(self.queue_for_run)
        self.tasks = TaskOwner("Session", self)
        self.tasks.error_raised.connect(self.pipeline.error_changed)
        self.cards.tasks.error_raised.connect(self.pipeline.error_changed)  # a full disk, say
        # The other rooms' controllers open after the first paint (their imports are heavy); a
        # room that fails to open is reported and the window carries on without it.
        self.learning: LearningController | None = None
        #: "which is better?" and the next experiment (with learning)
        self.taste: TasteController | None = None
        self._rating_book: LearningRatingBook | None = None  # the learning room's, for the gallery
        self.library: LibraryController | None = None
        self.queue: QueueController | None = None
        self.randomizer: RandomizerAdapter | None = None
        self.nodes: NodesController | None = None
        self.catalog: CatalogController | None = None
        self.trending: TrendingController | None = None
        self.funnel: FunnelController | None = None
        self._rooms_pending = list(ROOMS)
        #: Images the queue saved before the learning room opened: it records them as it opens.
        self._unrecorded: list[ImageRecord] = []
        self._closing = False
        #: "cluster" or "single" while the queue runs; None while it does not (or is switching)
        self._queue_mode: str | None = None
        self._switching = False
        self._queue_backend: Backend | None = None  # the backend the single-node runner works on
        #: the local-LLM enhance step while the queue runs with it
        self._enhancer: PromptEnhancer | None = None
        # The runner was started by a Run, not by Add to queue: it stops when the Run leaves
        # the queue empty (so `stablenew queue run` in a terminal may take the queue again).
        self._queue_for_run_only = False
        # Work was left in the queue but the server did not answer at open: it resumes as soon
        # as the server connects (Try again, or Settings), not with an error of its own.
        self._resume_when_connected = False
        self._other_runner_said = False  # "another StableNew works on the queue" was said
        self.server.state_changed.connect(self._server_state_changed)
        self._node_checks = QTimer(self)
        self._node_checks.setInterval(NODE_CHECK_MS)
        self._node_checks.timeout.connect(self._check_nodes)

    def _restore_cards(self) -> None:
        try:
            config = self.cards.restore()
        except CardsNotRestored as exc:
            self.app.report(exc, "Cards")
            return
        if config is not None:
            self.pipeline.load_config(config)  # the cards show it when they bind

    # --- other rooms ----------------------------------------------------------------------------

    def queue_trending(self, items: Iterable[PlanEntry], *, name: str) -> bool:
        """A trending batch is one queue job, its images tagged with their source images;
        False while the queue is not open (it failed to start, or the window is closing)."""
        if self.queue is None or self._closing:
            return False
        self._queue_for_run_only = False
        self.queue.add_plan(items, name=name)
        if not self.queue.running:  # as Add to queue: the batch starts now
            self.tasks.spawn(self._start_queue(), name="start-queue")
        return True

    @property
    def cluster_enabled(self) -> bool:
        """The nodes file lists at least one switched-on node: queued batches use the cluster."""
        return self._cluster_nodes() is not None

    def _cluster_nodes(self) -> NodesController | None:
        """The Nodes room when the cluster is on (see `cluster_enabled`), else None."""
        nodes = self.nodes
        return nodes if nodes is not None and any(n.enabled for n in nodes.nodes()) else None

    @property
    def queue_mode(self) -> str | None:
        """How the queue is being worked through: "cluster", "single" (the configured server),
        or None when it is not running."""
        return self._queue_mode

    def set_node_check_interval(self, ms: int) -> None:
        self._node_checks.setInterval(ms)

    def _check_nodes(self) -> None:
        # While the cluster runs the queue its dispatcher watches the nodes; otherwise the status
        # bar and the Nodes table would keep whatever state the last probe found.
        if (self.nodes is not None and not self._closing and self._queue_mode != "cluster"
                and self.nodes.nodes()):
            self.nodes.check()  # a ping for nodes that answered; a full probe only when needed

    def _nodes_changed(self) -> None:
        """The first node switched on, or the last one off: the running queue changes over."""
        if self._queue_mode is None or self._switching or self.queue is None or not self.queue.running:
            return
        if self.cluster_enabled != (self._queue_mode == "cluster"):
            log.info("queue: changing over to %s", "the cluster" if self.cluster_enabled
                     else "the configured server")
            self._switching = True
            self.queue.stop_runner()  # in-flight images go back to the queue; restarted below

    def _work_wanted(self) -> None:
        """Resume or Retry with no runner (a queue left by a restart, or one that ran empty):
        start it, as Add to queue does. Before every room is open the start waits for them
        (the nodes decide where the queue runs) and `_resume_queue` does it."""
        if self.queue is None or self.queue.running or self._closing or not self.rooms_ready:
            return
        self._queue_for_run_only = False
        self.tasks.spawn(self._start_queue(), name="start-queue")

    def _resume_queue(self) -> None:
        """Every room is open: work a previous session left in the queue goes on at once."""
        if self.queue is not None and not self._closing:
            self.tasks.spawn(self._resume_left_work(), name="resume-queue")

    async def _resume_left_work(self) -> None:
        from stablenew.cluster.runner_lock import RunnerLock

        queue = self.queue
        if queue is None:
            return
        store = await queue.store()
        if queue.running or self._closing or not await asyncio.to_thread(store.reads.has_pending):
            return
        if await asyncio.to_thread(RunnerLock.held, store.path):
            # `stablenew queue run` (or a window finishing in the background) works on it:
            # the queue panel follows its progress; this window must not fight it for the queue.
            # Looked at again shortly: if that one ends (or is killed) with work left, this
            # window takes the queue over.
            if not self._other_runner_said:
                self._other_runner_said = True
                log.info("queue: another StableNew works through the queue; not starting a runner")
                self.pipeline.message_changed.emit(
                    "Another StableNew (a window finishing in the background, or `stablenew "
                    "queue run`) is working through the queue; the Queue tab follows its "
                    "progress, and this window takes over if it stops.")
            QTimer.singleShot(TAKE_OVER_MS, self, self._resume_queue)
            return
        if queue.running or self._closing:
            return
        if not self.cluster_enabled:
            try:
                await self.server.ensure_backend()
            except Exception as exc:  # noqa: BLE001 - the server's own banner says it does not answer
                log.info("queue: work is left but the server does not answer (%s); it resumes "
                         "once the server connects", exc)
                self._resume_when_connected = True
                # Said where the queue is shown: its work waits, it is not lost or stuck.
                queue.node_problem.emit(f"The server at {self.server.url} does not answer yet.")
                return
        # Images a crash or a close left at a node go back to waiting as the runner starts
        # (its recovery), and run at once; a paused queue stays paused and only recovers.
        log.info("queue: resuming the work left by the last session%s",
                 " (paused)" if queue.paused else "")
        self._queue_for_run_only = False
        await self._start_queue()

    def _server_state_changed(self, state: str) -> None:
        if state == "connected" and self._resume_when_connected:
            self._resume_when_connected = False
            self._resume_queue()

    def _queue_running_changed(self, running: bool) -> None:
        if running:
            return
        self._queue_mode = None
        if self._switching:
            self._switching = False
            if not self._closing:
                self.tasks.spawn(self._start_queue(), name="restart-queue")

    def plan_queue(self) -> bool:
        """Fill the Nodes panel's dry-run table for what is queued (nothing is sent); False if
        there are no nodes to plan over."""
        nodes = self._cluster_nodes()
        if nodes is None:
            return False
        if self.queue is None:
            nodes.make_plan()
        else:
            self.tasks.spawn(self._plan_queue(nodes, self.queue), name="plan-queue")
        return True

    @staticmethod
    async def _plan_queue(nodes: NodesController, queue: QueueController) -> None:
        # The queue's own store: the plan sees what the queue panel shows, on the same connection.
        nodes.make_plan(store=await queue.store())

    def _forward_error(self, info: ErrorInfo | None) -> None:
        if info is not None:
            self.pipeline.error_changed.emit(info)

    # --- queue ----------------------------------------------------------------------------------

    def add_to_queue(self, config: PipelineConfig) -> None:
        """Queue a config and make sure the queue is working through it: on every enabled node
        of the cluster when the nodes file lists some, else on the configured server."""
        if self.queue is None:
            return
        self._queue_for_run_only = False
        enabled = [n for n in self.nodes.nodes() if n.enabled] if self.nodes is not None else []
        if len(enabled) >= 2 and not config.txt2img.checkpoint:
            # "The server's current model" would be each node's own: one batch would mix them.
            self.tasks.spawn(self._add_with_current_model(config, enabled), name="add-to-queue")
            return
        self._queue_config(config)

    def _queue_config(self, config: PipelineConfig) -> None:
        if self.queue is None:
            return
        self.queue.add_config(config)
        if not self.queue.running:
            self.tasks.spawn(self._start_queue(), name="start-queue")

    async def _add_with_current_model(self, config: PipelineConfig, enabled: list[NodeConfig]
                                      ) -> None:
        """Fix "the server's current model" to the preferred node's now, and say so: then only
        nodes that have that model make the batch (issue 17: a batch mixed SDXL and SD1.5)."""
        from stablenew.cluster.model_choice import (
            ModelChoice,
            choose_model,
            current_model,
            preferred_order,
            with_model,
        )

        choice: ModelChoice | None = None
        for node in preferred_order(enabled):  # what the Nodes room already knows: no probe
            caps = self.nodes.health(node.name).capabilities if self.nodes is not None else None
            if caps is not None and current_model(caps):
                choice = ModelChoice(current_model(caps), node.name)
                break
        if choice is None:
            choice = await choose_model(enabled)
        if self._closing or self.queue is None:
            return
        if choice.checkpoint:
            config = with_model(config, choice.checkpoint)
            self.pipeline.message_changed.emit(
                f"Queued with the model {choice.checkpoint}, the current model of node "
                f"'{choice.node}': only nodes that have it will make these images.")
        else:
            self.pipeline.warning_raised.emit(
                f"No node said which model it runs ({choice.problem}), so each node will use its "
                "own and the images may differ in model. Pick a model on the card to be sure.")
        self._queue_config(config)

    async def queue_for_run(self) -> RunQueue:
        """The queue, working on the preferred node, for a Run: opened now if Run was pressed
        before its room opened (the click is never lost), started if it was not running."""
        if self.queue is None and "queue" in self._rooms_pending and not self._closing:
            self._rooms_pending.remove("queue")
            self._open_room("queue")
        queue = self.queue
        if queue is None:
            raise RunNotQueued("Nothing can start: StableNew's queue could not be opened. See the "
                               "error about the queue, fix it, and restart StableNew.",
                               detail="the queue room is not open")
        nodes = self._cluster_nodes()
        if nodes is not None:
            node = self._preferred_node(nodes)
        else:
            backend = await self.server.ensure_backend()
            if queue.running and self._queue_mode == "single" and self._queue_backend is not backend:
                # The server changed in Settings since the queue started: it follows the server.
                queue.stop_runner()
                await queue.wait_stopped()
            node = self.server.node_name
        if not queue.running:
            self._queue_for_run_only = True
            await self._start_queue()
        return RunQueue(queue, node, lambda: queue.running or self._switching,
                        finished=self._run_finished)

    async def _run_finished(self) -> None:
        """A Run is over: a runner started only for it stops if nothing else waits."""
        queue = self.queue
        if not self._queue_for_run_only or queue is None or not queue.running or self._switching:
            return
        store = await queue.store()
        if await asyncio.to_thread(store.reads.has_pending) or not self._queue_for_run_only:
            return
        self._queue_for_run_only = False
        queue.stop_runner()
        await queue.wait_stopped()

    def _preferred_node(self, nodes: NodesController) -> str:
        """The node a Run is pinned to with a cluster: the window's own server when it is one of
        the nodes, else the Nodes room's choice (the first ready node of the best tier)."""
        url = self.server.url.rstrip("/")
        for node in nodes.nodes():
            if node.enabled and node.url.rstrip("/") == url:
                return str(node.name)
        preferred = nodes.preferred_node()
        return str(preferred.name) if preferred is not None else self.server.node_name

    def _queue_record(self, record: ImageRecord) -> None:
        """Each image the queue saves: to the gallery, then to the record hooks (learning)."""
        if self.learning is None and "learning" in self._rooms_pending and not self._closing:
            # Saved before the learning room opened (a Run pressed at once): recorded when
            # it opens, like every other image.
            self._unrecorded.append(record)
        self.queued_image_saved.emit(_in_job(record))
        self.pipeline.record(record)

    def _outputs_removed(self, paths: list[Path]) -> None:
        # A re-run replaces an item's partial images: the learning store forgets their records,
        # and the gallery, which keeps this session's images listed first, lets them go.
        if self.learning is not None:
            self.learning.on_outputs_removed(paths)
        self.queued_images_removed.emit([str(p) for p in paths])

    def _lora_hashes(self, files: Sequence[str]) -> str:
        """`Lora hashes` for a ComfyUI image, from the Models room's catalog once it is open."""
        return self.catalog.lora_hashes_for(files) if self.catalog is not None else ""

    async def _start_queue(self) -> None:
        from stablenew.cluster.machinery import RunMachinery

        # The machinery every way of running work shares; the hooks are looked up at each
        # image, so a room that opens later (learning) hears of it too.
        machinery = RunMachinery(lambda: self.app.output_dir, log_dir=self.app.paths.log_dir,
                                 record_hooks=(self._queue_record,),
                                 on_outputs_removed=self._outputs_removed,
                                 prompt_step=await self._prompt_step(),
                                 lora_step=await self._lora_step(),
                                 lora_hashes=self._lora_hashes,
                                 wildcards=lambda: self.app.settings.wildcards_path())
        queue = self.queue
        if queue is None:
            return
        nodes = self._cluster_nodes()
        if nodes is not None:
            self._queue_mode = "cluster"

            def make(store: QueueStore, on_event: QueueEventCallback) -> ClusterDispatcher | None:
                dispatcher = nodes.make_dispatcher(store, on_event=on_event,
                                                   **machinery.worker_options())
                if dispatcher is not None:
                    nodes.attach(dispatcher)  # the Nodes table follows each node's live state
                return dispatcher

            queue.start_cluster(make, on_finished=self._cluster_finished)
            return
        backend = await self.server.ensure_backend()
        if queue.running:
            return  # started meanwhile (a Run and Add to queue at once)
        self._queue_mode = "single"
        self._queue_backend = backend
        queue.start_runner(backend, node=self.server.node_name, machinery=machinery)

    async def _prompt_step(self) -> PromptStep | None:
        """The local-LLM enhance step the settings ask for (None: off), made anew for each
        start of the queue so a change in Settings applies from the next one."""
        if self._enhancer is not None:
            await self._enhancer.aclose()
            self._enhancer = None
        settings = self.app.settings
        if not (settings.llm_enhance and settings.llm_url):
            return None  # off: the prompting room is not even imported
        import importlib

        # Its first import is tens of milliseconds: made off the Qt thread.
        step = await asyncio.to_thread(importlib.import_module, "stablenew.prompting.step")
        self._enhancer = step.PromptEnhancer.from_settings(settings, self.app.paths)
        if self._enhancer is not None and self._enhancer.warning:
            self.pipeline.warning_raised.emit(self._enhancer.warning)
        return self._enhancer

    async def _lora_step(self) -> LoraMatchStep:
        """"Add matching LoRAs": the Models room's catalog, the settings read at each variant
        (switched on or off in Models or Settings, it applies from the next image)."""
        import importlib

        # Its first import would stall the Qt loop a few tens of milliseconds: made off it.
        await asyncio.to_thread(importlib.import_module, "stablenew.cluster.prompt_steps")
        from stablenew.cluster.prompt_steps import LoraMatchOptions, LoraMatchStep

        async def catalog(_node: str | None) -> CatalogView | str:
            # Each node's LoRA list comes from its probe (session_rooms shares them).
            room = self.catalog
            return room.match_view() if room is not None else "the Models tab is still opening."

        return LoraMatchStep(catalog, lambda: LoraMatchOptions.from_settings(self.app.settings))

    def _cluster_finished(self, dispatcher: ClusterDispatcher) -> None:
        """The cluster stopped working through the queue: keep what it learned of each node."""
        nodes = self.nodes
        if nodes is None:
            return
        nodes.attach(None)
        nodes.keep_learned_speeds(dispatcher)
        if not self._closing:
            nodes.probe()  # the table goes back to its own view of the nodes: bring it up to date

    # --- lifetime -------------------------------------------------------------------------------

    def start(self) -> None:
        """Work that may touch the network or the disk: only after the window's first paint."""
        if self._closing:
            return
        self.server.reconnect()
        self.gallery.refresh()
        QTimer.singleShot(0, self, self._open_next_room)

    @property
    def rooms_ready(self) -> bool:
        """Every room has been opened (or found missing from this build)."""
        return not self._rooms_pending

    def open_rooms(self) -> None:
        """Open every remaining room now (tests and tools that need them at once)."""
        if not self._rooms_pending:
            return
        while self._rooms_pending:
            self._open_room(self._rooms_pending.pop(0))
        self._resume_queue()

    def _open_next_room(self) -> None:
        # One room per turn of the event loop, so the window stays responsive while they load.
        if self._rooms_pending and not self._closing:
            self._open_room(self._rooms_pending.pop(0))
            if self._rooms_pending:
                QTimer.singleShot(0, self, self._open_next_room)
            else:
                self._resume_queue()

    def _open_room(self, name: str) -> None:
        try:
            controller = getattr(self, f"_{name}")()
        except Exception as exc:  # a broken room must not take the window down with it
            log.exception("the %s room failed to open", name)
            self._forward_error(ErrorInfo(f"The {name} part of StableNew could not start: {exc}",
                                          source=name.capitalize()))
            return
        setattr(self, name, controller)
        if name in ("library", "catalog", "trending", "funnel"):
            controller.start()
        elif name == "queue":
            controller.start_polling()
        elif name == "nodes":
            if controller.nodes():
                controller.probe()  # the status bar says how many nodes are ready, not "not checked"
            self._node_checks.start()
        self.room_opened.emit(name)

    async def aclose(self, *, keep_queued: bool = False) -> None:
        """Close every room. With *keep_queued* (the user chose to stop and resume next time)
        a Run under way is not cancelled: what is left of it waits in the queue for the next
        start, as every other job does."""
        # Rooms not yet opened never will be: nothing may start while the window goes away.
        self._closing = True
        self._rooms_pending.clear()
        self._node_checks.stop()
        self.app.window_state.sync()
        await self.cards.aclose()  # before the cards go: what was typed last is kept
        await self.pipeline.aclose(keep_queued=keep_queued)
        await self.prompts.aclose()
        if self.learning is not None:
            # Stopped while the queue still works, so its job is cancelled, not left behind.
            await self.learning.runs.stop_learning_run()
        for other in (self.funnel, self.queue, self.nodes, self.taste, self.learning, self.library,
                      self.randomizer, self.catalog, self.trending):
            close = getattr(other, "aclose", None)
            sync_close = getattr(other, "close", None)
            try:
                if close is not None:
                    await close()
                elif sync_close is not None:
                    sync_close()
            except Exception as exc:  # noqa: BLE001 - one room failing to close must not keep the others open
                log.warning("closing %s failed: %s", type(other).__name__, exc)
        await self.tasks.aclose()
        if self._enhancer is not None:
            await self._enhancer.aclose()
        await self.gallery.aclose()
        await self.server.aclose()
        await self.app.tasks.wait_idle(timeout=5)


def _in_job(record: ImageRecord) -> ImageRecord:
    """The record as the gallery shows it: numbered by its place in its queue job (the runner
    numbers within one item, and every item is one image)."""
    label = record.tags.job_id or ""
    _, _, number = label.rpartition("/")
    if number.isdigit() and int(number) - 1 != record.image_index:
        return replace(record, image_index=int(number) - 1)
    return record
