"""LearningController: learning mode, records from every saved image, ratings, learning runs,
insights, recommended presets and export — as Qt state and signals for the learning panels.

Every store call runs on the learning store's own worker thread (`StoreWorker`), so the Qt
thread never waits on SQLite; every async step runs through a `TaskOwner`, so a failure
becomes `error_changed` instead of vanishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from stablenew.controller.app_controller import AppController
from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.job_follow import JobFollower
from stablenew.controller.tasks import TaskOwner
from stablenew.learning.errors import LearningError, RecordNotFound
from stablenew.learning.export import ExportSummary, ImageMode, export_bundle
from stablenew.learning.insights import (
    KNOWN_TAGS,
    Insights,
    RecommendedPreset,
    build_insights,
    recommend,
)
from stablenew.learning.parameters import (
    LORA_PREFIX,
    PARAMETERS,
    get_parameter,
    lora_parameter,
    lora_weights,
)
from stablenew.learning.plans import LearningPlan
from stablenew.learning.ratings import RecordReader
from stablenew.learning.records import LearningRecord
from stablenew.learning.runs import LearningRunResult, RunState, RunTracker, cell_of
from stablenew.learning.store import LearningStore, StoreWorker, default_database
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.records import ImageRecord
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, LearningMode, peek_settings

log = logging.getLogger("stablenew.controller.learning")

ALL_PACKS = None  # the insights pack selector's "all packs" choice


MODE_WORDS = {
    LearningMode.off: "Off — StableNew keeps no learning records.",
    LearningMode.passive: "Passive — every image is recorded; rate the ones you like or dislike.",
    LearningMode.active: "Active — also run guided comparisons of one setting at a time.",
}


class LearningController(QObject):
    """The learning room for the GUI; public methods are sync and never block on disk or HTTP."""

    mode_changed = Signal(str)
    record_stored = Signal(object)  # LearningRecord just written from a saved image
    record_changed = Signal(object)  # LearningRecord after a rating, tag or note
    run_changed = Signal(object)  # LearningRunResult | None: the comparison grid
    progress_changed = Signal(str, float)  # "Learning run: steps — 3 of 5 values", 0..1
    running_changed = Signal(bool)
    insights_changed = Signal(object)  # Insights
    recommendation_changed = Signal(object)  # RecommendedPreset
    packs_changed = Signal(list)  # list[str]; "" is "images without a pack"
    runs_changed = Signal(list)  # list[(run id, label in words)], newest first
    export_finished = Signal(object)  # ExportSummary
    preset_saved = Signal(str)  # path of the saved preset
    error_changed = Signal(object)  # ErrorInfo | None
    _stored_elsewhere = Signal(object)  # a record stored from another thread's hook
    _forgotten_elsewhere = Signal(object)  # the Future of forgetting a re-run's old images
    _queue_event = Signal(object)  # an event of the run's queue job, from whichever thread

    def __init__(
        self,
        store: LearningStore | str | Path | None = None,
        *,
        backend: Callable[[], Awaitable[Any]] | None = None,
        run_queue: Callable[[], Awaitable[Any]] | None = None,
        output_dir: Callable[[], Path] | None = None,
        base_config: Callable[[], PipelineConfig] | None = None,
        mode: LearningMode | str | None = None,
        remember_mode: bool = True,
        app: AppController | None = None,
        parent: QObject | None = None,
    ) -> None:
        """*run_queue* gives the window's queue for a learning run (a RunQueue, as for Run);
        without it a run works through a queue of its own on *backend*. *app* keeps the mode
        in the settings (the Session passes its own); *mode* with *remember_mode* False gives
        a controller whose mode is its own (tests)."""
        super().__init__(parent)
        if isinstance(store, LearningStore):
            self._worker = StoreWorker(store)
            self._reader = RecordReader(store.path)
        else:
            path = Path(store) if store is not None else default_database()
            self._worker = StoreWorker(lambda: LearningStore(path))
            self._reader = RecordReader(path)
        self._backend = backend
        self._run_queue = run_queue
        self._own_queue: Any = None  # the QueueController of a run without a window
        self._output_dir = output_dir or (lambda: AppPaths.default().default_output_dir)
        self._base_config = base_config or PipelineConfig
        self._app = app if remember_mode else None
        if mode is not None:
            self._mode = LearningMode(mode)
        elif self._app is not None:
            self._mode = self._app.settings.learning_mode
        else:
            self._mode = peek_settings(AppPaths.default()).learning_mode
        if self._app is not None:
            self._app.settings_changed.connect(self._settings_changed)
        self._thread = threading.current_thread()
        self._error: ErrorInfo | None = None
        self._run: LearningRunResult | None = None
        self._plan: LearningPlan | None = None
        self._token: Any = None
        self._run_task: asyncio.Task[None] | None = None
        self._tracker: RunTracker | None = None
        self._job_id: str | None = None  # the queue job of the run going on
        self._follower = JobFollower()  # waits for that job: its items at a node now
        self._progress = ("", 0.0)
        self._pack: str | None = ALL_PACKS
        self._insights: Insights | None = None
        self._recommendation: RecommendedPreset | None = None
        self._refreshing = False
        self._refresh_again = False
        self.tasks = TaskOwner("Learning", self)
        self.tasks.error_raised.connect(self._set_error)
        self._stored_elsewhere.connect(self._after_store)
        self._forgotten_elsewhere.connect(self._after_forget)
        self._queue_event.connect(self._on_queue_event)

    # --- state ------------------------------------------------------------------------------

    @property
    def mode(self) -> LearningMode:
        return self._mode

    @property
    def error(self) -> ErrorInfo | None:
        return self._error

    @property
    def run_result(self) -> LearningRunResult | None:
        return self._run

    @property
    def plan(self) -> LearningPlan | None:
        return self._plan

    @property
    def running(self) -> bool:
        return self._token is not None

    @property
    def progress(self) -> tuple[str, float]:
        return self._progress

    @property
    def insights(self) -> Insights | None:
        return self._insights

    @property
    def recommendation(self) -> RecommendedPreset | None:
        return self._recommendation

    @property
    def pack(self) -> str | None:
        return self._pack

    def set_mode(self, mode: LearningMode | str) -> None:
        """Switch the mode now; it is kept in the settings, which are written off the Qt thread."""
        mode = LearningMode(mode)
        if mode == self._mode:
            return
        if self._app is not None:
            # The settings are the one home of the mode: their change brings it back here.
            reason = self._app.apply_settings({"learning_mode": mode.value})
            if reason:
                self._set_error(ErrorInfo(f"The learning mode could not be changed: {reason}",
                                          source="Learning"))
            return
        self._adopt_mode(mode)

    def _settings_changed(self, settings: AppSettings) -> None:
        self._adopt_mode(settings.learning_mode)

    def _adopt_mode(self, mode: LearningMode) -> None:
        if mode == self._mode:
            return
        self._mode = mode
        if mode is not LearningMode.active:
            self.cancel_learning_run()  # Off writes nothing, and Passive offers no runs
        log.info("learning mode: %s", mode.value)
        self.mode_changed.emit(mode.value)

    def clear_error(self) -> None:
        self._set_error(None)

    def _set_error(self, info: ErrorInfo | None) -> None:
        self._error = info
        self.error_changed.emit(info)

    def _fail(self, exc: BaseException) -> None:
        info = error_from_exception(exc, "Learning")
        log.warning("learning: %s (%s)", info.message, info.detail)
        self._set_error(info)

    def _writes_allowed(self) -> bool:
        if self._mode is LearningMode.off:
            self._set_error(ErrorInfo("Learning is off, so ratings are not kept. Choose Passive or "
                                      "Active in the Learning panel to keep them.", source="Learning"))
            return False
        return True

    # --- choices for the plan builder (plain values: views never import the core) -------------

    @staticmethod
    def parameter_choices() -> list[tuple[str, str]]:
        """(key, label) of every setting a learning run can vary; "lora:" asks for a name."""
        return [(key, p.label) for key, p in PARAMETERS.items()] + [(LORA_PREFIX, "LoRA weight")]

    @staticmethod
    def suggested_values(key: str) -> str:
        """The suggested values of a parameter as editable text: "15, 20, 25, 30, 35"."""
        try:
            param = get_parameter(key) if key != LORA_PREFIX else lora_parameter("any")
        except LearningError:
            return ""
        return ", ".join(param.text(v) for v in param.suggested)

    def loras_in_prompt(self) -> list[str]:
        """LoRA names in the current prompt (the usual choices for a LoRA weight run)."""
        try:
            return list(lora_weights(self._base_config().txt2img.prompt))
        except Exception:  # noqa: BLE001 - no usable current config: the user types a name instead
            return []

    @staticmethod
    def known_tags() -> tuple[str, ...]:
        return KNOWN_TAGS

    @staticmethod
    def mode_words() -> dict[str, str]:
        return {m.value: text for m, text in MODE_WORDS.items()}

    # --- records from the runner --------------------------------------------------------------

    def on_image_record(self, record: ImageRecord) -> None:
        """The pipeline runner's record hook: called for every saved image. Off writes nothing.

        Called on the event loop's (Qt) thread or a queue lane's: it only queues the record.
        Building the learning record (a full config dump and hash) and writing it both happen
        on the store's writer thread.
        """
        if self._mode is LearningMode.off:
            return
        if threading.current_thread() is self._thread:
            self.tasks.spawn(self._store_record(record), name="learning-record")
            return
        # From another thread (a queue lane): the worker is thread-safe; the signal is queued.
        future = self._worker.submit(_add_image_record, record)
        future.add_done_callback(lambda f: self._stored_elsewhere.emit(f))

    async def _store_record(self, record: ImageRecord) -> None:
        stored = await self._worker.call(_add_image_record, record)
        if stored is not None:
            self.record_stored.emit(stored)

    def _after_store(self, future: Any) -> None:
        exc = future.exception()
        if exc is not None:
            self._fail(exc)
        elif future.result() is not None:
            self.record_stored.emit(future.result())

    def _after_forget(self, future: Any) -> None:
        exc = future.exception()
        if exc is not None:
            self._fail(exc)

    def on_outputs_removed(self, paths: list[Path]) -> None:
        """The queue deleted an unfinished attempt's images before re-running it: forget them
        so a re-run never leaves two records of one file. Safe from any thread."""
        if self._mode is LearningMode.off or not paths:
            return
        future = self._worker.submit(_forget, [str(p) for p in paths])
        # A forget that fails leaves stale records that a re-run would double: say so.
        future.add_done_callback(lambda f: self._forgotten_elsewhere.emit(f))

    # --- ratings, tags, notes -----------------------------------------------------------------

    def rate(self, ref: int | str | Path, stars: int | None) -> asyncio.Task[LearningError | None] | None:
        """Rate an image (by record id, image path or record key): 1–5 stars, 0/None clears.

        Returns the write's task (its result: the error that kept the rating out, or None), or
        None when learning is Off and nothing is written."""
        if self._writes_allowed():
            return self.tasks.spawn(self._change(_known(LearningStore.rate), ref, stars),
                                    name="learning-rate")
        return None

    def tag(self, ref: int | str | Path, tag: str, on: bool = True
            ) -> asyncio.Task[LearningError | None] | None:
        """Add or remove one tag; returns the write's task as `rate` does."""
        if self._writes_allowed():
            return self.tasks.spawn(self._change(_known(LearningStore.tag), ref, tag, on=on),
                                    name="learning-tag")
        return None

    def set_note(self, ref: int | str | Path, note: str) -> None:
        if self._writes_allowed():
            self.tasks.spawn(self._change(LearningStore.set_note, ref, note), name="learning-note")

    async def _change(self, fn: Callable[..., LearningRecord], *args: Any, **kwargs: Any
                      ) -> LearningError | None:
        try:
            record = await self._worker.call(fn, *args, **kwargs)
        except LearningError as exc:
            self._fail(exc)
            return exc
        self.record_changed.emit(record)
        if self._run is not None and any(c.path == record.path for c in self._run.cells):
            self._set_run(self._run.with_cell_for_path(record.path, rating=record.rating,
                                                       tags=record.tags))
            await self._save_run()
        self.refresh_insights()
        return None

    def pick_best(self, row: int, column: int) -> None:
        """"This one is the best of its row": remembered in the run and rated 5 stars."""
        run = self._run
        if run is None or not self._writes_allowed():
            return
        try:
            cell = run.cell(row, column)
        except KeyError:
            return
        if not cell.path:
            self._set_error(ErrorInfo("This image was not made, so it cannot be picked.",
                                      source="Learning"))
            return
        self._set_run(run.pick_best(row, column))
        self.rate(cell.path, 5)

    # --- learning runs ------------------------------------------------------------------------

    def start_learning_run(self, parameter: str, values: str | list[Any] | None = None, *,
                           images_per_value: int = 1, pack: str | None = None,
                           base: PipelineConfig | None = None) -> bool:
        """Plan and start a learning run on the current settings; False with a visible error
        when it cannot start (learning not Active, a run already going, a bad plan)."""
        if self._mode is not LearningMode.active:
            self._set_error(ErrorInfo("Learning runs need the Active learning mode. Switch "
                                      "learning to Active and try again.", source="Learning"))
            return False
        if self.running:
            self._set_error(ErrorInfo("A learning run is already going; wait for it or stop it.",
                                      source="Learning"))
            return False
        if isinstance(values, str):
            values = [v for v in (x.strip() for x in values.replace(";", ",").split(",")) if v]
        config = base if base is not None else self._base_config()
        if not config.txt2img.prompt.strip():
            # Every image would be the model's idea of nothing: a comparison not worth rating.
            self._set_error(ErrorInfo("A learning run needs a prompt. Write one in the Text to "
                                      "image card (every image it compares is made from it), "
                                      "then start again.", source="Learning"))
            return False
        try:
            plan = LearningPlan.create(config, parameter,
                                       values or None, images_per_value=images_per_value, pack=pack)
        except LearningError as exc:
            self._fail(exc)
            return False
        return self.start_plan(plan)

    def start_plan(self, plan: LearningPlan) -> bool:
        if self.running or (self._backend is None and self._run_queue is None):
            if not self.running:
                self._set_error(ErrorInfo("No server is set up, so a learning run cannot start. "
                                          "Connect to a server first.", source="Learning"))
            return False
        from stablenew.pipeline.cancel import CancelToken

        self._set_error(None)
        self._plan = plan
        self._token = CancelToken()
        self._set_run(LearningRunResult.from_plan(plan))
        self.running_changed.emit(True)
        self._run_task = self.tasks.spawn(self._execute(plan, self._token), name="learning-run")
        return True

    def cancel_learning_run(self) -> None:
        """Stop the run: its images still waiting are cancelled in the queue, the one at the
        server is interrupted there; what was made stays in the grid."""
        if self._token is not None:
            self._token.cancel()
            self._wake()

    async def stop_learning_run(self, timeout: float = 5.0) -> None:
        """Cancel the run and wait (bounded) until its job has stopped (the window closes)."""
        self.cancel_learning_run()
        task = self._run_task
        if task is not None and not task.done():
            await asyncio.wait((task,), timeout=timeout)

    async def _execute(self, plan: LearningPlan, token: Any) -> None:
        """The run is one queue job, interactive like Run: each cell is one item with its exact
        config, seed and tags; the grid fills from the job's events. The queue's runner hands
        each saved image to the record hooks, so the records are written there, once."""
        from stablenew.cluster.jobs import JobOrigin
        from stablenew.pipeline.outputs import new_run_folder

        run_queue: Any = None
        job_id = uuid.uuid4().hex[:8]
        added = False
        tracker = RunTracker(plan, replace(LearningRunResult.from_plan(plan), state=RunState.running))
        try:
            try:
                run_queue = await self._queue_for_run()
                # One folder for the whole comparison; its files are named by value and seed.
                folder = await asyncio.to_thread(
                    new_run_folder, Path(self._output_dir()),
                    f"learning {plan.param.label} {plan.base.txt2img.prompt}")
                self._tracker = tracker
                self._track(lambda: replace(tracker.result, state=RunState.running,
                                            job_id=job_id, folder=str(folder)))
                # Saved before the first image lands: after a crash the run is known by its
                # job and folder, and its grid is rebuilt from its records when opened.
                await self._save_run()
                cancelled = token.cancelled
                if not cancelled:
                    self._job_id = job_id
                    self._follower.reset()
                    run_queue.queue.watch_job(job_id, self._queue_event.emit)
                    await run_queue.queue.add_run(
                        plan.images(), node=run_queue.node, job_id=job_id, name=_job_name(plan),
                        output_dir=folder,
                        origin=JobOrigin(pack=plan.pack, preset=plan.preset,
                                         learning_run_id=plan.id))
                    added = True
                    log.info("learning run %s: queue job %s, %d image(s) on %s", plan.id, job_id,
                             plan.image_count, run_queue.node)
                    await self._follow(run_queue, job_id, token, tracker)
                    cancelled = token.cancelled
            except Exception as exc:
                message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                tracker.fatal = tracker.fatal or message
                self._track(lambda: tracker.finish())
                if added:
                    # What is left of a run that failed is not made later behind the user's back.
                    with contextlib.suppress(Exception):
                        await run_queue.queue.cancel_job(job_id)
                if tracker.result.job_id is not None:  # saved as running: say how it ended
                    with contextlib.suppress(Exception):
                        await self._save_run()
                raise
            result = self._track(lambda: tracker.finish(cancelled=cancelled))
            self._set_progress(*tracker.final_progress())
            await self._save_run()
            if result.state in (RunState.failed, RunState.partial) and result.message:
                self._set_error(ErrorInfo(result.message, source="Learning"))
            if run_queue.finished is not None:
                await run_queue.finished()
        finally:
            if run_queue is not None:
                run_queue.queue.watch_job(job_id, None)
            self._tracker = None
            self._job_id = None
            self._token = None
            self._run_task = None
            self.running_changed.emit(False)
            own, self._own_queue = self._own_queue, None
            if own is not None:
                await own.aclose()
                own.deleteLater()
        self.refresh_insights()
        self.refresh_runs()

    async def _queue_for_run(self) -> Any:
        """The window's queue on its preferred node (a RunQueue); without a window, a queue
        of our own on the same database, worked through on the backend for this run."""
        if self._run_queue is not None:
            return await self._run_queue()
        from stablenew.controller.pipeline_controller import RunQueue
        from stablenew.controller.queue_controller import QueueController
        from stablenew.pipeline.runner import PipelineRunner

        backend = await self._backend()  # type: ignore[misc]  # not None: checked on starting the run
        node = str(getattr(backend, "name", "") or getattr(backend, "url", "") or "node")
        output = Path(self._output_dir())
        queue = QueueController(db_path=self._reader.path, output_root=output, parent=self)
        self._own_queue = queue
        queue.start_runner(backend, node=node, on_outputs_removed=self.on_outputs_removed,
                           runner=PipelineRunner(output, record_hooks=(self.on_image_record,),
                                                 node_name=node))
        return RunQueue(queue, node, lambda: queue.running)

    async def _follow(self, run_queue: Any, job_id: str, token: Any, tracker: RunTracker) -> None:
        """Wait until no image of the job is waiting or in flight; Cancel (or a node that
        cannot be used) cancels the job."""
        def queue_stopped(error: Any) -> LearningError:
            return LearningError(
                error.message if error is not None else
                "The queue stopped before this learning run finished. Start it again.",
                detail=error.detail if error is not None else f"queue job {job_id}")

        await self._follower.follow(run_queue, job_id,
                                    stop=lambda: bool(token.cancelled or tracker.fatal),
                                    queue_stopped=queue_stopped)

    def _wake(self) -> None:
        self._follower.wake()

    def _on_queue_event(self, event: Any) -> None:
        """An event of the run's queue job (on the Qt thread): the grid and progress follow."""
        from stablenew.cluster.jobs import ItemState
        from stablenew.cluster.queue_runner import ItemFinished, ItemProgress, ItemStarted
        from stablenew.pipeline.events import ImageSaved

        tracker = self._tracker
        item = getattr(event, "item", None)
        if tracker is None or item is None or item.job_id != self._job_id:
            self._wake()
            return
        place = cell_of(item.variant.id)
        if isinstance(event, ItemStarted):
            self._follower.started(item.id)
            if place is not None:
                self._set_progress(*tracker.started(*place))
        elif isinstance(event, ItemProgress):
            if isinstance(event.event, ImageSaved) and place is not None:
                record = event.event.record
                self._track(lambda: tracker.saved(*place, record))
            return  # steps and previews are the Run's to show; the grid waits for images
        elif isinstance(event, ItemFinished):
            self._follower.finished(item.id)
            if place is not None:
                if event.state is ItemState.failed:
                    self._track(lambda: tracker.failed(*place, event.message,
                                                       fatal=event.fatal_for_node))
                elif event.state is ItemState.cancelled:
                    self._track(lambda: tracker.skipped(*place))
                elif event.state is ItemState.queued:
                    self._track(lambda: tracker.given_back(*place))
                elif event.state is ItemState.done and not tracker.result.cell(*place).path:
                    self._track(lambda: tracker.failed(*place, "No image was saved."))
                self._set_progress(self._progress[0], tracker.fraction)
        self._wake()

    def _set_progress(self, text: str, fraction: float) -> None:
        self._progress = (text, fraction)
        self.progress_changed.emit(text, fraction)

    def _set_run(self, result: LearningRunResult | None) -> None:
        self._run = result
        self.run_changed.emit(result)

    def _track(self, change: Callable[[], LearningRunResult]) -> LearningRunResult:
        """Apply one change of the running grid on top of the one shown, so ratings, tags and
        picks made meanwhile stay."""
        tracker = self._tracker
        if tracker is not None and self._run is not None \
                and self._run.run_id == tracker.result.run_id:
            tracker.result = self._run
        result = change()
        if tracker is not None:
            tracker.result = result
        self._set_run(result)
        return result

    async def _save_run(self) -> None:
        run = self._run
        if run is None:
            return
        await self._worker.call(LearningStore.save_run, run.run_id, pack=run.pack,
                                parameter=run.parameter, status=run.state.value, result=run.to_json())

    def refresh_runs(self) -> None:
        """List the saved learning runs (newest first) for the "earlier runs" picker."""
        async def _list() -> None:
            rows = await self._worker.call(LearningStore.runs)
            current = self._run.run_id if self.running and self._run is not None else None
            listed = []
            for run_id, pack, parameter, status, created in rows:
                if status == RunState.running.value and run_id != current:
                    status = "interrupted"  # StableNew stopped while it ran
                listed.append((run_id, _run_words(parameter, pack, status, created)))
            self.runs_changed.emit(listed)
        self.tasks.spawn(_list(), name="learning-runs")

    def open_run(self, run_id: str) -> None:
        """Show a saved learning run in the comparison grid again, filled from the records of
        its images: one StableNew stopped in the middle shows what the queue made since."""
        async def _open() -> None:
            tracker = self._tracker
            if tracker is not None and tracker.plan.id == run_id:
                self._set_run(tracker.result)  # the run going on: its grid is live already
                return
            saved = LearningRunResult.from_json(
                await self._worker.call(LearningStore.load_run, run_id))
            result = await self._worker.call(_rebuilt_run, saved,
                                             self._mode is not LearningMode.off)
            self._plan = None
            self._run = None
            self._set_run(result)
            if result.state is RunState.interrupted:
                self._set_error(ErrorInfo(result.message, source="Learning"))
        self.tasks.spawn(_open(), name="learning-open-run")

    # --- insights and recommendations ---------------------------------------------------------

    def set_pack(self, pack: str | None) -> None:
        """Show insights for one pack ("" for images without a pack) or None for all."""
        self._pack = pack
        self.refresh_insights()

    def refresh_insights(self) -> None:
        """Recompute insights off the Qt thread; bursts of ratings coalesce into one refresh."""
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        self.tasks.spawn(self._refresh(), name="learning-insights")

    async def _refresh(self) -> None:
        try:
            while True:
                self._refresh_again = False
                pack = self._pack
                insights, packs = await self._worker.call(_compute_insights, pack)
                if not self._refresh_again:
                    break
        finally:
            self._refreshing = False
        self._insights = insights
        self._recommendation = recommend(insights)
        self.packs_changed.emit(packs)
        self.insights_changed.emit(insights)
        self.recommendation_changed.emit(self._recommendation)

    def preview_recommendation(self, base: PipelineConfig | None = None) -> PipelineConfig | None:
        """The current settings with the recommended values set — for showing, not applying."""
        if self._recommendation is None or self._recommendation.empty:
            return None
        return self._recommendation.apply_to(base if base is not None else self._base_config())

    def save_recommended_preset(self, name: str) -> None:
        """Save the recommendation as a user preset named *name* (only when asked to)."""
        recommendation = self._recommendation
        if recommendation is None or recommendation.empty:
            self._set_error(ErrorInfo("There is no recommendation to save yet: rate more images "
                                      "or run a learning run first.", source="Learning"))
            return

        async def _save() -> None:
            from stablenew.pipeline.presets import PresetStore

            preset = recommendation.to_preset(name)
            path = await asyncio.to_thread(lambda: PresetStore().save(preset, replace=False))
            self.preset_saved.emit(str(path))
        self.tasks.spawn(_save(), name="learning-save-preset")

    # --- export -------------------------------------------------------------------------------

    def export(self, path: str | Path, *, copies: bool = False, pack: str | None = None,
               rated_only: bool = False) -> None:
        """Write the export zip in the background; `export_finished` says what went in."""
        mode = ImageMode.copies if copies else ImageMode.paths

        db_path = self._reader.path

        def _write() -> ExportSummary:
            # Its own connection and thread: a long export (image copies) must not hold up
            # ratings, which go through the store's single writer thread meanwhile.
            with LearningStore(db_path) as store:
                return export_bundle(store, Path(path), pack=pack, rated_only=rated_only,
                                     images=mode)

        async def _export() -> None:
            await self._worker.call(lambda store: None)  # writes queued before the export land
            summary = await asyncio.to_thread(_write)
            self.export_finished.emit(summary)
        self.tasks.spawn(_export(), name="learning-export")

    # --- the gallery's rating book ------------------------------------------------------------

    def rating_book(self) -> LearningRatingBook:
        """An object the gallery can use for ratings and tags, backed by this store."""
        return LearningRatingBook(self)

    def read_rating(self, path: str) -> tuple[int | None, tuple[str, ...]]:
        """Rating and tags of an image: an indexed read on a read-only connection that never
        waits for the writer (so it is fine on the Qt thread)."""
        return self._reader.rating(path)

    # --- lifecycle ------------------------------------------------------------------------------

    async def wait_idle(self, timeout: float = 10.0) -> None:
        await self.tasks.wait_idle(timeout)

    async def aclose(self) -> None:
        self.cancel_learning_run()
        await self.tasks.wait_idle(timeout=5)
        await self.tasks.aclose()
        self._worker.close()
        self._reader.close()


class LearningRatingBook:
    """The gallery's RatingBook backed by the learning store (writes go through the controller)."""

    def __init__(self, controller: LearningController) -> None:
        self._controller = controller

    def rating(self, path: str) -> tuple[int | None, tuple[str, ...]]:
        return self._controller.read_rating(path)

    def rate(self, path: str, stars: int | None) -> asyncio.Future[None]:
        """Raises RatingsOff at once while learning is Off; the awaitable raises the store's
        reason when it does not keep the rating (e.g. an image another tool made)."""
        self._refuse_while_off()
        return _kept(self._controller.rate(path, stars))

    def set_tags(self, path: str, tags: tuple[str, ...]) -> asyncio.Future[None]:
        self._refuse_while_off()
        _old, current = self._controller.read_rating(path)
        wanted = {" ".join(t.split()).casefold() for t in tags if t.strip()}
        writes = [self._controller.tag(path, tag, on=False) for tag in sorted(set(current) - wanted)]
        writes += [self._controller.tag(path, tag) for tag in sorted(wanted - set(current))]
        return _kept(*writes)

    def _refuse_while_off(self) -> None:
        if self._controller.mode is LearningMode.off:
            raise RatingsOff(RATINGS_OFF)


RATINGS_OFF = ("Ratings are off: Learning is set to Off, so this was not kept. To keep ratings and "
               "tags, set Learning to Passive or Active (in the Learning tab or in Settings).")


class RatingsOff(LearningError):
    """A rating or tag refused because the learning mode is Off."""


def _kept(*writes: asyncio.Task[LearningError | None] | None) -> asyncio.Future[None]:
    """A future that fails with the first reason one of *writes* was not kept (already running,
    so nothing is lost or left un-awaited if nobody waits for it)."""

    async def wait() -> None:
        for write in writes:
            error = await write if write is not None else None
            if error is not None:
                raise error

    future = asyncio.ensure_future(wait())
    future.add_done_callback(lambda f: f.cancelled() or f.exception())  # read: never "never retrieved"
    return future


def _known(fn: Callable[..., LearningRecord]) -> Callable[..., LearningRecord]:
    """*fn* on a record; an image StableNew made while learning was off (or before this
    database existed) is recorded from its own PNG metadata first, so it can be rated too."""
    def call(store: LearningStore, ref: Any, *args: Any, **kwargs: Any) -> LearningRecord:
        try:
            return fn(store, ref, *args, **kwargs)
        except RecordNotFound:
            if isinstance(ref, int) or not Path(ref).is_file():
                raise
            from stablenew.learning.rebuild import image_record_from_file

            try:
                image = image_record_from_file(Path(ref))
            except (ValueError, OSError):
                image = None
            if image is None:
                raise RecordNotFound(
                    "This image has no StableNew settings in it (another tool made it, or it "
                    "was edited), so it cannot be rated for learning.", detail=str(ref)) from None
            store.add_record(LearningRecord.from_image_record(image))
            return fn(store, ref, *args, **kwargs)
    return call


def _job_name(plan: LearningPlan) -> str:
    prompt = " ".join(plan.base.txt2img.prompt.split())
    prompt = (prompt[:36] + "…") if len(prompt) > 37 else prompt
    return f"{plan.title()}: {prompt}" if prompt else plan.title()


def _run_words(parameter: str, pack: str, status: str, created: float) -> str:
    try:
        label = get_parameter(parameter).label
    except LearningError:
        label = parameter
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(created))
    return f"{when} — {label}{f' ({pack})' if pack else ''} — {status}"


def _add_image_record(store: LearningStore, image: ImageRecord) -> LearningRecord | None:
    """On the writer thread: build the learning record of a saved image and store it."""
    try:
        learning = LearningRecord.from_image_record(image)
    except Exception as exc:  # noqa: BLE001 - a hook must never break the run that called it
        log.warning("learning record for %s not built: %s", image.path, exc)
        return None
    return store.add_record(learning)


def _rebuilt_run(store: LearningStore, saved: LearningRunResult, may_record: bool
                 ) -> LearningRunResult:
    """On the writer thread: a saved run's grid from the records of its images (their ratings
    and tags too). A run StableNew stopped in the middle whose images the queue made later
    without recording them (`stablenew queue run` without --learn) gets their records from
    the PNGs in its folder first, unless learning is Off. Saved again when it changed, so a
    run is never left "running" once nobody runs it."""
    records = store.records(learning_run_id=saved.run_id)
    unfinished = saved.state in (RunState.running, RunState.interrupted)
    if may_record and unfinished and saved.folder and len(records) < len(saved.cells):
        from stablenew.learning.rebuild import image_record_from_file

        known = {r.path for r in records}
        found = []
        for path in sorted(Path(saved.folder).glob("*.png")):
            if str(path) in known or path.name.startswith("."):
                continue
            try:
                image = image_record_from_file(path)
            except (ValueError, OSError) as exc:
                log.info("learning run %s: %s not read: %s", saved.run_id, path.name, exc)
                continue
            if image is not None and image.tags.learning_run_id == saved.run_id:
                found.append(LearningRecord.from_image_record(image))
        if found:
            store.add_records(found)
            records = store.records(learning_run_id=saved.run_id)
    result = saved.with_records(records)
    if unfinished:
        result = result.settled()
    if result != saved:
        store.save_run(result.run_id, pack=result.pack, parameter=result.parameter,
                       status=result.state.value, result=result.to_json())
    return result


def _forget(store: LearningStore, paths: list[str]) -> int:
    forgotten = 0
    for path in paths:
        try:
            store.delete(path)
            forgotten += 1
        except LearningError:  # never recorded: nothing to forget
            pass
    return forgotten


def _compute_insights(store: LearningStore, pack: str | None) -> tuple[Insights, list[str]]:
    insights = build_insights(store.stats(pack), store.tag_counts(pack), pack,
                              store.fair_stats(pack))
    return insights, store.packs()
