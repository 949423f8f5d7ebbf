"""QueueController: the persistent queue for the window — a jobs model (queue_model), the
panel's operations (queue_edits), the command bar's count, and a notification when a batch
finishes.

Every database call runs in a worker thread (`asyncio.to_thread`), scheduled through the
controller's TaskOwner so an error becomes visible state; the QueueRunner that works through
the queue runs on the same (qasync) loop. Changes made elsewhere (`stablenew queue` in a
terminal) are picked up by a cheap revision poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeVar

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

from stablenew.cluster.estimates import QueueEstimates, speeds_file
from stablenew.cluster.jobs import (
    INTERACTIVE_PRIORITY,
    ItemState,
    Job,
    JobKind,
    JobOrigin,
    WorkItem,
)
from stablenew.cluster.queue_events import (
    ItemFinished,
    ItemProgress,
    ItemStarted,
    JobFinished,
    NodeProblem,
    QueueEvent,
    Waiting,
    job_of,
)
from stablenew.cluster.queue_store import QueueStore
from stablenew.controller.errors import ErrorInfo
from stablenew.controller.queue_activity import QueueActivity
from stablenew.controller.queue_edits import QueueEdits
from stablenew.controller.queue_model import (
    COLUMNS,
    IdRole,
    KindRole,
    ProgressRole,
    QueueModel,
    StateRole,
    format_eta,
)
from stablenew.controller.tasks import TaskOwner
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.events import ProgressUpdate

if TYPE_CHECKING:
    from collections.abc import Iterable

    from stablenew.backends.protocol import Backend
    from stablenew.cluster.dispatcher import ClusterDispatcher
    from stablenew.cluster.machinery import RunMachinery
    from stablenew.cluster.queue_events import QueueEventCallback
    from stablenew.cluster.queue_runner import QueueRunner

log = logging.getLogger("stablenew.controller.queue")


class PlannedImage(Protocol):
    """One image of a lazy plan (a randomizer PlanItem, a PackRunItem): its config; its `tags`,
    when it has them, say which variant, pack or learning run it belongs to."""

    @property
    def config(self) -> PipelineConfig: ...


_T = TypeVar("_T")

class DispatcherFactory(Protocol):
    """Makes the cluster's dispatcher over the queue (the Nodes room's `make_dispatcher`, with
    the run's machinery); None when no node is switched on."""

    def __call__(self, store: QueueStore, *, on_event: QueueEventCallback
                 ) -> ClusterDispatcher | None: ...


#: What a plan yields: configs, or plan items that carry their config.
PlanEntry: TypeAlias = "PipelineConfig | PlannedImage"

@dataclass(frozen=True)
class QueueSnapshot:
    """What the view shows, read in one go off the Qt thread."""

    jobs: list[Job]
    items: dict[str, list[WorkItem]]  # only for jobs the view has expanded
    paused: bool
    revision: int


class QueueController(QObject):
    """The persistent queue as the window sees it: a model, counts, and operations as slots."""

    jobs_changed = Signal()
    count_changed = Signal(int)  # images waiting or in flight: the command bar's queue count
    paused_changed = Signal(bool)
    running_changed = Signal(bool)  # a QueueRunner is working through the queue
    batch_finished = Signal(str)  # a plain sentence for a desktop notification
    error_changed = Signal(object)  # ErrorInfo | None
    node_problem = Signal(str)
    #: What queued work waits for while no node can take it ("" once it no longer waits).
    waiting_changed = Signal(str)
    #: Work was resumed or retried while nothing works through the queue: whoever starts the
    #: queue's runner (the Session) should start it, or Resume and Retry would do nothing.
    work_wanted = Signal()

    def __init__(self, store: QueueStore | None = None, *, db_path: Path | None = None,
                 output_root: Path | None = None, poll_ms: int = 1000,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._opening: asyncio.Future[QueueStore] | None = None  # the store being opened
        self._db_path = db_path
        self._owns_store = store is None
        self.output_root = output_root
        self.model = QueueModel(self)
        self.waiting = ""
        #: The panel's operations on jobs and images (pause, cancel, retry, reorder, ...).
        self.edits = QueueEdits(self)
        # Time left per job from measured node speeds: the rows and the command bar read it.
        where = db_path if db_path is not None else getattr(store, "path", None)
        self.estimates = QueueEstimates(path=speeds_file(Path(where).parent) if where else None)
        self.tasks = TaskOwner("Queue", self)
        self.tasks.error_raised.connect(self._set_error)
        #: What the queue works on now (job, image i of n, time left): the command bar shows it.
        self.activity = QueueActivity(self._job_by_id, spawn=self.tasks.spawn, parent=self)
        self.running_changed.connect(self._runner_running)
        self._error: ErrorInfo | None = None
        self._count = -1
        self._paused: bool | None = None
        self._revision = -1
        self._expanded: set[str] = set()
        self._refreshing = False
        self._refresh_again = False
        self._closing = False  # aclose() began: no new refresh, poll or timer from here on
        # A QueueRunner, or the ClusterDispatcher over several nodes (same control surface).
        self._runner: QueueRunner | ClusterDispatcher | None = None
        self._runner_task: asyncio.Task[None] | None = None
        self._reported: set[str] = set()
        # Listeners to one job's events (the window's Run follows its own job).
        self._watchers: dict[str, Callable[[QueueEvent], None]] = {}
        # Runner events arrive in bursts; the view is refreshed at a human rate.
        self._coalesce = QTimer(self)
        self._coalesce.setSingleShot(True)
        self._coalesce.setInterval(150)
        self._coalesce.timeout.connect(self.refresh)
        self._poll = QTimer(self)
        self._poll.setInterval(poll_ms)
        self._poll.timeout.connect(self._check_revision)
        app = QCoreApplication.instance()
        if app is not None:
            # Quitting stops the event loop before the window's shutdown gets to aclose():
            # a poll tick in between would create a task that never runs.
            app.aboutToQuit.connect(self._stop_timers)

    # --- state ------------------------------------------------------------------------------------

    def _runner_running(self, running: bool) -> None:
        if not running:
            self.activity.clear()  # nothing of this queue is at a node any more

    def _job_by_id(self, job_id: str) -> Job | None:
        row = self.model.row_of(job_id)
        return self.model.job_at(row) if row >= 0 else None

    @property
    def count(self) -> int:
        return max(0, self._count)

    @property
    def paused(self) -> bool:
        return bool(self._paused)

    @property
    def running(self) -> bool:
        return self._runner_task is not None and not self._runner_task.done()

    @property
    def error(self) -> ErrorInfo | None:
        return self._error

    def start_polling(self) -> None:
        """Follow changes made by other processes; also loads the first snapshot."""
        if self._closing:
            return
        self.refresh()
        self._poll.start()

    async def store(self) -> QueueStore:
        """The queue's database, opened once off the Qt thread however many ask while it
        opens (a refresh and an operation at start-up): the store is one connection per
        process, so a second one would leak and race the first."""
        if self._store is not None:
            return self._store
        if self._opening is None or self._opening.done():  # a failed open is tried again
            self._opening = asyncio.ensure_future(self._open_store())
            # Read here too: every caller may be cancelled before the open ends.
            self._opening.add_done_callback(lambda f: f.cancelled() or f.exception())
        # Shielded: a caller cancelled meanwhile (Stop while opening) leaves the open to end,
        # so the store it makes is kept here and closed by aclose, not lost half-made.
        return await asyncio.shield(self._opening)

    async def _open_store(self) -> QueueStore:
        store = await asyncio.to_thread(QueueStore, self._db_path)
        self._store = store
        return store

    # --- refreshing ------------------------------------------------------------------------------

    def refresh(self) -> None:
        if self._closing:
            return
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        self.tasks.spawn(self._refresh(), name="queue-refresh")

    async def _refresh(self) -> None:
        try:
            while True:
                self._refresh_again = False
                store = await self.store()
                snapshot = await asyncio.to_thread(self._read_snapshot, store, set(self._expanded),
                                                   self.estimates)
                self._apply(snapshot)
                if not self._refresh_again:
                    break
        finally:
            self._refreshing = False

    @staticmethod
    def _read_snapshot(store: QueueStore, expanded: set[str],
                       estimates: QueueEstimates | None = None) -> QueueSnapshot:
        revision = store.reads.revision()
        jobs = store.reads.list_jobs()
        if estimates is not None:
            jobs = estimates.read_jobs(store, jobs)
        ids = {j.id for j in jobs}
        items = {job_id: store.reads.items(job_id) for job_id in expanded if job_id in ids}
        return QueueSnapshot(jobs, items, store.reads.is_paused(), revision)

    def _apply(self, snapshot: QueueSnapshot) -> None:
        self._revision = snapshot.revision
        self.model.set_snapshot(snapshot.jobs, snapshot.items)
        count = sum(j.counts.queued + j.counts.assigned + j.counts.running for j in snapshot.jobs)
        if count != self._count:
            self._count = count
            self.count_changed.emit(count)
        if snapshot.paused != self._paused:
            self._paused = snapshot.paused
            self.paused_changed.emit(snapshot.paused)
        self.jobs_changed.emit()
        self.activity.refresh()

    def _check_revision(self) -> None:
        if self._store is None or self._refreshing or self._closing:
            return
        self.tasks.spawn(self._maybe_refresh(), name="queue-poll")

    async def _maybe_refresh(self) -> None:
        store = await self.store()
        if await asyncio.to_thread(store.reads.revision) != self._revision and not self._closing:
            self.refresh()

    def load_items(self, job_id: str) -> None:
        """The view expanded a job: load its images (and keep them fresh from now on)."""
        self._expanded.add(job_id)
        self.refresh()

    def forget_items(self, job_id: str) -> None:
        self._expanded.discard(job_id)

    # --- operations (slots) ----------------------------------------------------------------------

    def _do(self, name: str, fn: Callable[[QueueStore], _T], *, wake: bool = False,
            want: bool = False, after: Callable[[_T], None] | None = None) -> asyncio.Task[_T]:
        """Run *fn* on the store off the Qt thread; *wake* the runner, and with *want* ask for
        one when none runs (Resume, Retry: the user wants the queue to move now)."""
        async def work() -> _T:
            store = await self.store()
            result = await asyncio.to_thread(fn, store)
            if after is not None:
                after(result)
            if wake and self._runner is not None:
                self._runner.notify()
            elif want and not self.running and not self._closing:
                self.work_wanted.emit()
            self.refresh()
            return result
        return self.tasks.spawn(work(), name=f"queue-{name}")

    def add_config(self, config: PipelineConfig, *, name: str = "", count: int | None = None,
                   priority: int = 0, origin: JobOrigin | None = None,
                   output_dir: Path | None = None, node_pin: str | None = None
                   ) -> asyncio.Task[Job]:
        """Queue a config (one image per batch × size, or *count* images)."""
        return self._do("add", lambda s: s.add_job(
            config, name=name, count=count, priority=priority, origin=origin,
            output_dir=output_dir, output_root=self.output_root, node_pin=node_pin), wake=True)

    def add_plan(self, configs: Iterable[PlanEntry], *, name: str, origin: JobOrigin | None = None,
                 priority: int = 0) -> asyncio.Task[Job]:
        """Queue a lazy plan (randomizer, pack, learning run): streamed into the database."""
        kind = JobKind.learning if origin and origin.learning_run_id else (
            JobKind.pack if origin and origin.pack else JobKind.plan)
        return self._do("add-plan", lambda s: s.add_job(
            configs, name=name, kind=kind, origin=origin, priority=priority,
            output_root=self.output_root), wake=True)

    async def add_run(self, configs: PipelineConfig | Iterable[PlanEntry], *, node: str, job_id: str,
                      name: str = "", output_dir: Path | None = None,
                      origin: JobOrigin | None = None) -> Job:
        """Queue a Run pressed in the window (a config, or a lazy plan of them; a learning
        run's plan becomes a learning job) with interactive priority, pinned to *node*, and
        wake the runner; awaited by the caller, whose error it is if it cannot be queued.

        A Run earlier cut short (a crash, a window closed while it ran) becomes an ordinary
        batch first: only the Run the user is waiting for goes ahead of everything.
        """
        def add(store: QueueStore) -> Job:
            work, where, kind = configs, origin, JobKind.config
            if not isinstance(configs, PipelineConfig):
                # A pack's plan says where it came from in its items' tags; the job keeps it
                # for every image (the queue tags each image from its job and its variant).
                items = iter(configs)
                first = next(items, None)
                work = itertools.chain([] if first is None else [first], items)
                tags = getattr(first, "tags", None)
                if where is None and tags is not None:
                    where = JobOrigin(pack=tags.pack, preset=tags.preset,
                                      learning_run_id=tags.learning_run_id)
                kind = JobKind.pack if where is not None and where.pack else JobKind.plan
            if where is not None and where.learning_run_id:
                kind = JobKind.learning
            # Jobs someone follows (a Run and a learning run at once) keep their place.
            demoted = store.demote_interactive(keep={job_id, *followed})
            if demoted:
                log.info("queue: earlier Runs %s left unfinished now wait as batches",
                         ", ".join(demoted))
            return store.add_job(work, name=name, kind=kind, origin=where,
                                 priority=INTERACTIVE_PRIORITY, output_dir=output_dir,
                                 output_root=self.output_root, node_pin=node, job_id=job_id)

        followed = set(self._watchers)
        store = await self.store()
        job = await asyncio.to_thread(add, store)
        if self._runner is not None:
            self._runner.notify()
        self.refresh()
        return job

    def watch_job(self, job_id: str, listener: Callable[[QueueEvent], None] | None) -> None:
        """Hand every event of one job to *listener* (None stops), on the loop's thread."""
        if listener is None:
            self._watchers.pop(job_id, None)
        else:
            self._watchers[job_id] = listener

    async def get_job(self, job_id: str) -> Job:
        store = await self.store()
        return await asyncio.to_thread(store.reads.get_job, job_id)

    async def job_unfinished(self, job_id: str) -> bool:
        """Does the job still have images waiting or in flight (as the database says)?"""
        store = await self.store()
        return await asyncio.to_thread(store.reads.job_unfinished, job_id)

    async def wait_stopped(self) -> None:
        """Return once the runner (or the cluster) has stopped working through the queue."""
        task = self._runner_task
        if task is not None and not task.done():
            await asyncio.wait((task,))

    def cancel_job(self, job_id: str) -> asyncio.Task[list[int]]:
        """Cancel what is left of a job; its images in flight are interrupted on the node.
        Returns the operation's task (awaited by a Run or learning run that stops)."""
        def cancel(store: QueueStore) -> list[int]:
            in_flight = [i.id for i in store.reads.items(job_id, states=(ItemState.assigned,
                                                                   ItemState.running))]
            store.cancel_job(job_id)
            return in_flight
        return self._do("cancel-job", cancel, after=self._interrupt)

    def _interrupt(self, item_ids: list[int]) -> None:
        # In-flight items stop now, not at the runner's next poll.
        if self._runner is not None:
            for item_id in item_ids:
                self._runner.interrupt(item_id)

    # --- working through the queue ---------------------------------------------------------------

    def start_runner(self, backend: Backend, *, node: str | None = None, depth: int = 2,
                     backoff_base: float = 2.0, machinery: RunMachinery | None = None) -> None:
        """Work through the queue on *backend* until `stop_runner()` (one node for now).

        *machinery* makes the runner (the Session's: its record hooks, prompt step and run
        log); without it, a plain one writing under this queue's output folder.
        """
        if self.running:
            return
        self._runner_task = self.tasks.spawn(
            self._run(backend, node, depth, backoff_base, machinery), name="queue-runner")
        self.running_changed.emit(True)

    async def _run(self, backend: Backend, node: str | None, depth: int, backoff_base: float,
                   machinery: RunMachinery | None) -> None:
        try:
            store = await self.store()
            if machinery is None:
                from stablenew.cluster.machinery import RunMachinery
                from stablenew.storage.paths import AppPaths

                machinery = RunMachinery(self.output_root or AppPaths.default().default_output_dir)
            # Built in a worker: the runner's modules are imported (the first Run of a session)
            # and its database thread started there, not on the Qt thread.
            runner = await asyncio.to_thread(
                machinery.queue_runner, store, backend, node=node, depth=depth,
                backoff_base=backoff_base, on_event=self._on_queue_event)
            self._runner = runner
            await runner.run()
        finally:
            self._runner = None
            self._runner_task = None
            self.running_changed.emit(False)
            self.refresh()

    def start_cluster(self, make: DispatcherFactory,
                      on_finished: Callable[[ClusterDispatcher], None] | None = None) -> None:
        """Work through the queue on every node of the cluster until `stop_runner()`.

        *make(store, on_event=...)* builds the ClusterDispatcher (the Nodes controller's
        `make_dispatcher`); *on_finished(dispatcher)* hears when it stops (to keep what it
        learned of the nodes' speeds).
        """
        if self.running:
            return
        self._runner_task = self.tasks.spawn(self._run_cluster(make, on_finished),
                                             name="queue-cluster")
        self.running_changed.emit(True)

    async def _run_cluster(self, make: DispatcherFactory,
                           on_finished: Callable[[ClusterDispatcher], None] | None) -> None:
        try:
            store = await self.store()
        except BaseException:  # stopped (or failed) while opening the database
            self._runner_task = None
            self.running_changed.emit(False)
            raise
        dispatcher = make(store, on_event=self._on_queue_event)
        if dispatcher is None:
            self._runner_task = None
            self.running_changed.emit(False)
            return
        self._runner = dispatcher  # same control surface: notify, stop, interrupt
        try:
            await dispatcher.run()
        finally:
            self._runner = None
            self._runner_task = None
            self._set_waiting("")
            self.running_changed.emit(False)
            self.refresh()
            if on_finished is not None:
                on_finished(dispatcher)

    def stop_runner(self) -> None:
        """Stop working: in-flight images are interrupted and go back to the queue."""
        if self._runner is not None:
            self._runner.stop()
        elif self._runner_task is not None and not self._runner_task.done():
            self._runner_task.cancel()  # still opening the database: nothing is claimed yet

    def _stop_timers(self) -> None:
        self._closing = True
        self._poll.stop()
        self._coalesce.stop()

    async def aclose(self) -> None:
        """Stop polling and the runner, let operations in progress finish (bounded), cancel
        what is left and await it: no task of ours outlives this, none is created after it."""
        self._stop_timers()
        self.stop_runner()
        task = self._runner_task
        if task is not None:
            await asyncio.wait((task,), timeout=5)
        # User operations (add, delete, reorder) finish; a poll or refresh still running is
        # only a read and may be cut short.
        await self.tasks.wait_idle(timeout=5)
        await self.tasks.aclose(timeout=2)
        self._stop_timers()
        with contextlib.suppress(RuntimeError):  # the loop is already gone: nothing to keep
            await asyncio.to_thread(self.estimates.save)
        if self._opening is not None and not self._opening.done():
            with contextlib.suppress(RuntimeError):  # the loop is gone: it never ends anyway
                await asyncio.wait((self._opening,))  # its store is closed below, not leaked
        if self._owns_store and self._store is not None:
            store, self._store = self._store, None
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                # QApplication.quit() stopped the loop and qasync finishes this shutdown while
                # processing the last Qt events: close here rather than leave the store open.
                store.close()
                return
            await asyncio.to_thread(store.close)

    def _on_queue_event(self, event: QueueEvent) -> None:
        self.estimates.on_queue_event(event)  # before the watchers: the bar reads it
        if self._watchers:
            job_id = job_of(event)
            listener = self._watchers.get(job_id) if job_id is not None else None
            if listener is not None:
                try:
                    listener(event)
                except Exception:  # a listener's bug must not stop the queue
                    log.exception("queue: the listener of job %s failed", job_id)
        self.activity.on_event(event)
        if isinstance(event, ItemProgress):
            if isinstance(event.event, ProgressUpdate):
                self.model.set_fraction(event.item, event.event.overall_fraction)
        elif isinstance(event, ItemStarted):
            self.model.set_fraction(event.item, 0.0)
        elif isinstance(event, ItemFinished):
            self.model.set_fraction(event.item, None)
        elif isinstance(event, JobFinished):
            self._announce(event.job)
        elif isinstance(event, NodeProblem):
            self.node_problem.emit(f"{event.node}: {event.message}")
        elif isinstance(event, Waiting):
            self._set_waiting(event.message)
        if not self._coalesce.isActive() and not self._closing:
            self._coalesce.start()

    def _set_waiting(self, text: str) -> None:
        if text != self.waiting:  # the dispatcher repeats a lasting wait: said once here
            self.waiting = text
            self.waiting_changed.emit(text)

    def _announce(self, job: Job) -> None:
        c = job.counts
        if job.id in self._reported or not (c.done or c.failed):
            return  # a batch the user cancelled outright needs no notification
        self._reported.add(job.id)
        # A Run's and a learning run's names say what they are ("Run: …", "Learning run: …").
        followed = job.kind is JobKind.learning or job.priority >= INTERACTIVE_PRIORITY
        what = f"“{job.name}”" if followed else f"Batch “{job.name}”"
        text = f"{what} finished: {c.done} image{'s' if c.done != 1 else ''} saved"
        if c.failed:
            text += f", {c.failed} failed"
        if c.cancelled:
            text += f", {c.cancelled} cancelled"
        self.batch_finished.emit(text + ".")

    def _set_error(self, info: ErrorInfo | None) -> None:
        self._error = info
        self.error_changed.emit(info)

    def clear_error(self) -> None:
        self._set_error(None)


__all__ = [
    "COLUMNS",
    "INTERACTIVE_PRIORITY",
    "IdRole",
    "KindRole",
    "ProgressRole",
    "QueueController",
    "QueueModel",
    "StateRole",
    "format_eta",
]
