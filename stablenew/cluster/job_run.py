"""A run the user waits for, as a queue job: `stablenew run` adds its config as an interactive
job pinned to its node, works through that job alone and reports it as one run.

Through the queue it gets what every other path has: crash recovery (a killed run's images go
back to waiting, its partial files are removed), the learning record of each image, the prompt
step, and the one-runner lock — taken when free (then the crash recovery runs too); when a
window or `stablenew queue run` holds it, this job still runs, on its own node, beside it.
The queue's events are folded back into the runner's events of one run of N images, so a
caller shows progress as for a direct run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.cluster.jobs import INTERACTIVE_PRIORITY, ItemState, Job
from stablenew.cluster.queue_events import ItemFinished, ItemProgress, QueueEvent
from stablenew.pipeline.events import (
    EventCallback,
    ImageSaved,
    ProgressUpdate,
    RunError,
    RunEvent,
    RunFinished,
    RunStarted,
    RunWarning,
    StageFinished,
    StageStarted,
)
from stablenew.pipeline.run_result import RunResult, run_outcome

if TYPE_CHECKING:
    from stablenew.backends.protocol import Backend
    from stablenew.cluster.machinery import RunMachinery
    from stablenew.cluster.queue_runner import QueueRunner
    from stablenew.cluster.queue_store import QueueStore
    from stablenew.pipeline.cancel import CancelToken
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.pipeline.records import ImageRecord

log = logging.getLogger(__name__)

#: Failing images in a row after which the node counts as unusable for this run (as a run's).
MAX_FAILURES_IN_A_ROW = 3


def run_name(config: PipelineConfig) -> str:
    """How a Run's job is named in the queue: its prompt, shortened."""
    prompt = " ".join(config.txt2img.prompt.split())
    return "Run: " + ((prompt[:44] + "…") if len(prompt) > 45 else (prompt or "Untitled"))


class JobRun:
    """Folds the queue events of one job into the events of one run, and keeps its result."""

    def __init__(self, job: Job, on_event: EventCallback | None) -> None:
        self.job = job
        self.total = job.counts.total
        self.on_event = on_event
        self.records: list[ImageRecord] = []
        self.errors: list[RunError] = []
        self.warnings: list[str] = []
        self.fatal: RunError | None = None
        self.started = time.monotonic()
        self._said_start = False
        self._finished = 0
        self._failed_items: set[int] = set()
        self._in_a_row = 0
        self._item_seconds: list[float] = []
        self._item_started: dict[int, float] = {}
        #: Set when the job must end early (a fatal error): the caller stops the runner.
        self.must_stop = asyncio.Event()

    def __call__(self, event: QueueEvent) -> None:
        if isinstance(event, ItemProgress):
            self._inner(event.item.index, event.event)
        elif isinstance(event, ItemFinished):
            self._item_finished(event)

    def _inner(self, index: int, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self._item_started[index] = time.monotonic()
            if not self._said_start:
                self._said_start = True
                self._emit(RunStarted(self.job.id, self.total, event.stages,
                                      Path(self.job.output_dir), event.node))
        elif isinstance(event, StageStarted | StageFinished | RunWarning):
            if isinstance(event, RunWarning):
                self.warnings.append(event.message)
            self._emit(dataclasses.replace(event, image_index=index))
        elif isinstance(event, ProgressUpdate):
            self._emit(self._progress(index, event))
        elif isinstance(event, ImageSaved):
            record = dataclasses.replace(event.record, image_index=index)
            self.records.append(record)
            self._emit(ImageSaved(record))
        elif isinstance(event, RunError):
            error = dataclasses.replace(event, image_index=index, fatal=False)
            self._failed_items.add(index)
            self.errors.append(error)
            self._emit(error)

    def _progress(self, index: int, event: ProgressUpdate) -> ProgressUpdate:
        """The item's progress as the whole run's: its fraction added to the finished ones,
        the time left from the measured time per image (or this image's own estimate)."""
        left = self.total - self._finished - event.overall_fraction
        per_image: float | None = None
        if self._item_seconds:
            per_image = sum(self._item_seconds) / len(self._item_seconds)
        elif event.eta_seconds is not None and event.overall_fraction > 0:
            spent = time.monotonic() - self._item_started.get(index, time.monotonic())
            per_image = spent + event.eta_seconds
        eta = max(0.0, left * per_image) if per_image is not None else None
        overall = (self._finished + event.overall_fraction) / max(self.total, 1)
        return dataclasses.replace(event, image_index=index, overall_fraction=min(overall, 1.0),
                                   eta_seconds=eta)

    def _item_finished(self, event: ItemFinished) -> None:
        index = event.item.index
        if event.state is ItemState.queued:
            return  # given back untried: it runs again
        self._finished += 1
        began = self._item_started.pop(index, None)
        if event.state is ItemState.done:
            self._in_a_row = 0
            if began is not None:
                self._item_seconds.append(time.monotonic() - began)
            return
        if event.state is not ItemState.failed:
            return
        if index not in self._failed_items:
            self._failed_items.add(index)
            error = RunError(event.message, event.detail, index)
            self.errors.append(error)
            self._emit(error)
        self._in_a_row += 1
        message = event.message
        if not event.fatal_for_node and self._in_a_row >= MAX_FAILURES_IN_A_ROW:
            message = (f"{self._in_a_row} images in a row failed on this server, so the run "
                       f"stopped. Check the server's console. Last error: {event.message}")
        elif not event.fatal_for_node:
            return
        if self.fatal is None:
            self.fatal = RunError(message, event.detail, index, fatal=True)
            self._emit(self.fatal)
            self.must_stop.set()

    def result(self, cancelled: bool) -> RunResult:
        """The run's result, and its RunFinished said."""
        seconds = time.monotonic() - self.started
        self.records.sort(key=lambda r: r.image_index)
        status, message = run_outcome(len(self.records), self.total, cancelled=cancelled,
                                      fatal=self.fatal, errors=self.errors)
        failed = len(self._failed_items)
        self._emit(RunFinished(self.job.id, status, len(self.records), failed, seconds, message))
        folder = Path(self.job.output_dir)
        errors = ([*self.errors, self.fatal] if self.fatal is not None else self.errors)
        return RunResult(self.job.id, status, list(self.records), errors, folder, seconds,
                         message, self.warnings, folder_made=folder.is_dir())

    def _emit(self, event: RunEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001 - a listener's bug must not stop the run
            log.exception("run: event listener failed on %s", event.kind)


async def run_as_job(machinery: RunMachinery, store: QueueStore, backend: Backend,
                     config: PipelineConfig, *, node: str, cancel: CancelToken,
                     on_event: EventCallback | None = None, name: str = "",
                     output_dir: Path) -> RunResult:
    """Queue *config* as an interactive job pinned to *node*, work through it on *backend*
    and return it as one run; *cancel* cancels what is left of it (Ctrl+C)."""
    from stablenew.cluster.off_loop import run_to_end
    from stablenew.cluster.queue_store import QueueError
    from stablenew.cluster.runner_lock import RunnerLock

    def add() -> Job:
        return store.add_job(config, name=name or run_name(config), priority=INTERACTIVE_PRIORITY,
                             output_dir=output_dir, node_pin=node)

    job = await asyncio.to_thread(add)
    fold = JobRun(job, on_event)
    lock = RunnerLock(store.path)
    try:
        # A cancel while the lock is being taken still lets it be taken, then released.
        await run_to_end(lock.acquire)
        held = True
    except QueueError:
        held = False  # a window or `queue run` works on the queue: no recovery behind its back
    except asyncio.CancelledError:
        await run_to_end(lock.release)
        raise
    runner = machinery.queue_runner(store, backend, node=node, on_event=fold, job=job.id)
    try:
        work = asyncio.ensure_future(runner.run(until_empty=True, recover=held, exclusive=False))
        stop = asyncio.ensure_future(cancel.wait())
        fatal = asyncio.ensure_future(fold.must_stop.wait())
        try:
            await asyncio.wait((work, stop, fatal), return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                await _cancel_rest(store, runner, job.id)
                await work
            else:
                work.result()
        finally:
            for waiter in (stop, fatal, work):
                waiter.cancel()
    finally:
        if held:
            await run_to_end(lock.release)
    return fold.result(cancelled=cancel.cancelled and fold.fatal is None)


async def _cancel_rest(store: QueueStore, runner: QueueRunner, job_id: str) -> None:
    """What is left of the job is cancelled (not given back for later), its images at the
    node interrupted there."""
    await asyncio.to_thread(store.cancel_job, job_id)
    runner.stop()
