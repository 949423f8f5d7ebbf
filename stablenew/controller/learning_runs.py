"""LearningRunController: guided comparisons of one setting at a time — planning a learning run,
running it as one queue job, filling its grid from the job's events, and earlier runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from stablenew.backends.lora_tags import lora_names
from stablenew.controller.errors import ErrorInfo
from stablenew.controller.job_follow import JobFollower
from stablenew.learning.errors import LearningError
from stablenew.learning.parameters import (
    LORA_PREFIX,
    PARAMETERS,
    get_parameter,
    lora_parameter,
)
from stablenew.learning.plans import LearningPlan
from stablenew.learning.records import LearningRecord
from stablenew.learning.runs import LearningRunResult, RunState, RunTracker, cell_of
from stablenew.learning.runs import RunCell as RunCell  # for the views, which see only controllers
from stablenew.learning.store import LearningStore
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.settings import LearningMode

if TYPE_CHECKING:
    from stablenew.backends.protocol import Backend
    from stablenew.controller.learning_controller import LearningController
    from stablenew.controller.queue_controller import QueueController
    from stablenew.controller.run_work import RunQueue
    from stablenew.pipeline.cancel import CancelToken

log = logging.getLogger("stablenew.controller.learning")


class LearningRunController(QObject):
    """The learning runs of a LearningController: one run at a time, its grid and progress."""

    run_changed = Signal(object)  # LearningRunResult | None: the comparison grid
    progress_changed = Signal(str, float)  # "Learning run: steps — 3 of 5 values", 0..1
    running_changed = Signal(bool)
    runs_changed = Signal(list)  # list[(run id, label in words)], newest first
    _queue_event = Signal(object)  # an event of the run's queue job, from whichever thread

    def __init__(
        self,
        learning: LearningController,
        *,
        backend: Callable[[], Awaitable[Backend]] | None,
        run_queue: Callable[[], Awaitable[RunQueue]] | None,
        output_dir: Callable[[], Path],
        base_config: Callable[[], PipelineConfig],
    ) -> None:
        super().__init__(learning)
        self._learning = learning
        self._backend = backend
        self._run_queue = run_queue
        self._own_queue: QueueController | None = None  # the queue of a run without a window
        self._output_dir = output_dir
        self._base_config = base_config
        self._run: LearningRunResult | None = None
        self._plan: LearningPlan | None = None
        self._token: CancelToken | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._tracker: RunTracker | None = None
        self._job_id: str | None = None  # the queue job of the run going on
        self._follower = JobFollower()  # waits for that job: its items at a node now
        self._progress = ("", 0.0)
        self._queue_event.connect(self._on_queue_event)

    # --- state ------------------------------------------------------------------------------

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

    # --- choices for the plan builder (plain values: views never import the core) -------------

    @staticmethod
    def parameter_choices() -> list[tuple[str, str]]:
        """(key, label) of every setting a learning run can vary; "lora:" asks for a name."""
        return ([(key, p.label) for key, p in PARAMETERS.items() if p.runnable]
                + [(LORA_PREFIX, "LoRA weight")])

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
            return lora_names(self._base_config().txt2img.prompt)
        except Exception:  # noqa: BLE001 - no usable current config: the user types a name instead
            return []

    # --- the grid -----------------------------------------------------------------------------

    def pick_best(self, row: int, column: int) -> None:
        """"This one is the best of its row": remembered in the run and rated 5 stars."""
        run = self._run
        if run is None or not self._learning.writes_allowed():
            return
        try:
            cell = run.cell(row, column)
        except KeyError:
            return
        if not cell.path:
            self._learning.show_error(ErrorInfo("This image was not made, so it cannot be picked.",
                                                source="Learning"))
            return
        self._set_run(run.pick_best(row, column))
        self._learning.rate(cell.path, 5)

    async def show_record(self, record: LearningRecord) -> None:
        """A rating, tag or note changed: the grid that shows its image shows it too."""
        if self._run is not None and any(c.path == record.path for c in self._run.cells):
            self._set_run(self._run.with_cell_for_path(record.path, rating=record.rating,
                                                       tags=record.tags))
            await self._save_run()

    # --- learning runs ------------------------------------------------------------------------

    def start_learning_run(self, parameter: str, values: str | Sequence[object] | None = None, *,
                           images_per_value: int = 1, pack: str | None = None,
                           base: PipelineConfig | None = None) -> bool:
        """Plan and start a learning run on the current settings; False with a visible error
        when it cannot start (learning not Active, a run already going, a bad plan)."""
        if self._learning.mode is not LearningMode.active:
            self._learning.show_error(ErrorInfo("Learning runs need the Active learning mode. "
                                                "Switch learning to Active and try again.",
                                                source="Learning"))
            return False
        if self.running:
            self._learning.show_error(ErrorInfo("A learning run is already going; wait for it "
                                                "or stop it.", source="Learning"))
            return False
        if isinstance(values, str):
            values = [v for v in (x.strip() for x in values.replace(";", ",").split(",")) if v]
        config = base if base is not None else self._base_config()
        if not config.txt2img.prompt.strip():
            # Every image would be the model's idea of nothing: a comparison not worth rating.
            self._learning.show_error(ErrorInfo(
                "A learning run needs a prompt. Write one in the Text to image card (every "
                "image it compares is made from it), then start again.", source="Learning"))
            return False
        try:
            plan = LearningPlan.create(config, parameter,
                                       values or None, images_per_value=images_per_value, pack=pack)
        except LearningError as exc:
            self._learning.fail(exc)
            return False
        return self.start_plan(plan)

    def start_plan(self, plan: LearningPlan) -> bool:
        if self.running or (self._backend is None and self._run_queue is None):
            if not self.running:
                self._learning.show_error(ErrorInfo("No server is set up, so a learning run "
                                                    "cannot start. Connect to a server first.",
                                                    source="Learning"))
            return False
        from stablenew.pipeline.cancel import CancelToken

        self._learning.clear_error()
        self._plan = plan
        token = self._token = CancelToken()
        self._set_run(LearningRunResult.from_plan(plan))
        self.running_changed.emit(True)
        self._run_task = self._learning.tasks.spawn(self._execute(plan, token),
                                                    name="learning-run")
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

    async def _execute(self, plan: LearningPlan, token: CancelToken) -> None:
        """The run is one queue job, interactive like Run: each cell is one item with its exact
        config, seed and tags; the grid fills from the job's events. The queue's runner hands
        each saved image to the record hooks, so the records are written there, once."""
        from stablenew.cluster.jobs import JobOrigin
        from stablenew.pipeline.outputs import new_run_folder

        run_queue: RunQueue | None = None
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
                    # One validated config per cell: a worker's job, for a big grid.
                    images = await asyncio.to_thread(plan.images)
                    await run_queue.queue.add_run(
                        images, node=run_queue.node, job_id=job_id, name=_job_name(plan),
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
                if added and run_queue is not None:
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
                self._learning.show_error(ErrorInfo(result.message, source="Learning"))
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
        self._learning.insights.refresh_insights()
        self.refresh_runs()

    async def _queue_for_run(self) -> RunQueue:
        """The window's queue on its preferred node (a RunQueue); without a window, a queue
        of our own on the same database, worked through on the backend for this run."""
        if self._run_queue is not None:
            return await self._run_queue()
        from stablenew.cluster.machinery import RunMachinery
        from stablenew.controller.queue_controller import QueueController
        from stablenew.controller.run_work import RunQueue

        assert self._backend is not None  # start_plan refuses a run with neither
        backend = await self._backend()
        node = str(getattr(backend, "name", "") or getattr(backend, "url", "") or "node")
        output = Path(self._output_dir())
        queue = QueueController(db_path=self._learning.database, output_root=output, parent=self)
        self._own_queue = queue
        queue.start_runner(backend, node=node, machinery=RunMachinery(
            output, record_hooks=(self._learning.on_image_record,),
            on_outputs_removed=self._learning.on_outputs_removed))
        return RunQueue(queue, node, lambda: queue.running)

    async def _follow(self, run_queue: RunQueue, job_id: str, token: CancelToken,
                      tracker: RunTracker) -> None:
        """Wait until no image of the job is waiting or in flight; Cancel (or a node that
        cannot be used) cancels the job."""
        def queue_stopped(error: ErrorInfo | None) -> LearningError:
            return LearningError(
                error.message if error is not None else
                "The queue stopped before this learning run finished. Start it again.",
                detail=error.detail if error is not None else f"queue job {job_id}")

        await self._follower.follow(run_queue, job_id,
                                    stop=lambda: bool(token.cancelled or tracker.fatal),
                                    queue_stopped=queue_stopped)

    def _wake(self) -> None:
        self._follower.wake()

    def _on_queue_event(self, event: object) -> None:
        """An event of the run's queue job (on the Qt thread): the grid and progress follow."""
        from stablenew.cluster.jobs import ItemState
        from stablenew.cluster.queue_events import ItemFinished, ItemProgress, ItemStarted
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
        await self._learning.worker.call(LearningStore.save_run, run.run_id, pack=run.pack,
                                         parameter=run.parameter, status=run.state.value,
                                         result=run.to_json())

    # --- earlier runs -------------------------------------------------------------------------

    def refresh_runs(self) -> None:
        """List the saved learning runs (newest first) for the "earlier runs" picker."""
        async def _list() -> None:
            rows = await self._learning.worker.call(LearningStore.runs)
            current = self._run.run_id if self.running and self._run is not None else None
            listed = []
            for run_id, pack, parameter, status, created in rows:
                if status == RunState.running.value and run_id != current:
                    status = "interrupted"  # StableNew stopped while it ran
                listed.append((run_id, _run_words(parameter, pack, status, created)))
            self.runs_changed.emit(listed)
        self._learning.tasks.spawn(_list(), name="learning-runs")

    def open_run(self, run_id: str) -> None:
        """Show a saved learning run in the comparison grid again, filled from the records of
        its images: one StableNew stopped in the middle shows what the queue made since."""
        async def _open() -> None:
            tracker = self._tracker
            if tracker is not None and tracker.plan.id == run_id:
                self._set_run(tracker.result)  # the run going on: its grid is live already
                return
            worker = self._learning.worker
            saved = LearningRunResult.from_json(await worker.call(LearningStore.load_run, run_id))
            result = await worker.call(_rebuilt_run, saved,
                                       self._learning.mode is not LearningMode.off)
            self._plan = None
            self._run = None
            self._set_run(result)
            if result.state is RunState.interrupted:
                self._learning.show_error(ErrorInfo(result.message, source="Learning"))
        self._learning.tasks.spawn(_open(), name="learning-open-run")


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
