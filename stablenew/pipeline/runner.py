"""PipelineRunner: drives every image of a run through the enabled stages on one Backend.

The node is the scarce resource, so the runner keeps it busy: the next image's first
request is sent as soon as the current image's last one has gone out, so the server starts
it the moment it finishes (it queues behind ours), while finished images are written
(metadata, PNG, thumbnail) in writer threads. Cancelling interrupts our running and queued
jobs (never anyone else's) and returns within a second; one failing image is recorded and
the batch carries on, unless the node itself is gone or fails image after image.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from stablenew.backends.a1111_truth import same_checkpoint
from stablenew.backends.errors import BackendError, JobInterrupted
from stablenew.backends.protocol import Backend
from stablenew.backends.types import Capabilities, GeneratedImage, JobResult, Progress
from stablenew.pipeline import infotext_write as it
from stablenew.pipeline import outputs, stages
from stablenew.pipeline.cancel import CancelToken, RunCancelled
from stablenew.pipeline.config import MAX_SEED, PipelineConfig, StageName
from stablenew.pipeline.eta import EtaEstimator
from stablenew.pipeline.events import (
    EventCallback,
    ImageSaved,
    ProgressUpdate,
    RunError,
    RunEvent,
    RunFinished,
    RunStarted,
    RunStatus,
    RunWarning,
    StageFinished,
    StageStarted,
)
from stablenew.pipeline.records import ImageRecord, RunTags
from stablenew.pipeline.runlog import RunLog
from stablenew.storage.words import plural

log = logging.getLogger(__name__)

RecordHook = Callable[[ImageRecord], None]

#: Time allowed for the node to acknowledge an interrupt before we stop waiting for it.
INTERRUPT_TIMEOUT_S = 0.5
#: Failing images in a row after which the node counts as unusable for this run.
MAX_FAILURES_IN_A_ROW = 3
#: Finished images being written at once; more would only queue up behind the disk.
MAX_PENDING_SAVES = 4


#: Interrupts and abandoned jobs still unwinding when a run returned (kept referenced until
#: they finish, so they are never destroyed while pending).
_BACKGROUND: set[asyncio.Future] = set()


def _retrieve(task: asyncio.Future) -> None:
    """Done callback on every task the runner starts: take its outcome, so a job that ends
    after its run gave up on it (a cancelled cluster worker) is never reported by asyncio as
    "Task exception was never retrieved". Jobs the run awaits still raise to it as usual."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("background task %r ended with %r", task, task.exception())


def _keep_until_done(task: asyncio.Future) -> None:
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)

_SAVE_POOL: ThreadPoolExecutor | None = None
_SAVE_POOL_LOCK = threading.Lock()


def _save_pool() -> ThreadPoolExecutor:
    """Writer threads of their own, so saves never queue ahead of a backend's decoding work
    in the loop's default executor (that would delay the next request)."""
    global _SAVE_POOL
    with _SAVE_POOL_LOCK:
        if _SAVE_POOL is None:
            _SAVE_POOL = ThreadPoolExecutor(max_workers=MAX_PENDING_SAVES,
                                            thread_name_prefix="stablenew-save")
        return _SAVE_POOL


@dataclass
class RunResult:
    """What a run produced: saved records (in image order), errors, and how it ended."""

    run_id: str
    status: RunStatus
    records: list[ImageRecord]
    errors: list[RunError]
    output_dir: Path
    seconds: float
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    #: Whether the run made its folder (it does so with the first image it writes).
    folder_made: bool = False


#: The step before a config's first stage: (config, tags, cancel) -> (the config to send, its
#: tags, a notice for the user or ""). It never raises for a failure of its own (a down LLM).
PromptStep = Callable[[PipelineConfig, RunTags, CancelToken],
                      Awaitable[tuple[PipelineConfig, RunTags, str]]]


class PipelineRunner:
    """Runs PipelineConfigs on any Backend, writing described images under `output_root`.

    One runner may serve several runs at once (one per node); each run keeps its own state.
    Record hooks and `on_event` are called on the event loop's thread.
    """

    def __init__(self, output_root: Path, *, record_hooks: Sequence[RecordHook] = (),
                 log_dir: Path | None = None, thumbnails: bool = True,
                 node_name: str | None = None, prompt_step: PromptStep | None = None) -> None:
        self.output_root = Path(output_root)
        #: Runs before each config's first stage (the local-LLM enhance step): every path that
        #: runs work (Run, batches, learning runs, `stablenew run`) goes through this runner.
        self.prompt_step = prompt_step
        self._hooks: list[RecordHook] = list(record_hooks)
        self.log_dir = log_dir
        self.thumbnails = thumbnails
        self.node_name = node_name
        # Fixed output folders (the queue's, one per job) already created by an earlier run:
        # a queued image skips the thread hop to create it again. The atomic writer recreates
        # a folder that was deleted meanwhile.
        self._prepared_dirs: set[Path] = set()

    def add_record_hook(self, hook: RecordHook) -> None:
        self._hooks.append(hook)

    async def run(self, config: PipelineConfig, backend: Backend, cancel_token: CancelToken,
                  on_event: EventCallback | None = None, *, tags: RunTags | None = None,
                  input_images: Sequence[Path | bytes] | None = None,
                  output_dir: Path | None = None, name_prefix: str | None = None) -> RunResult:
        tags = tags or RunTags()
        notice = ""
        if self.prompt_step is not None and input_images is None and not cancel_token.cancelled:
            config, tags, notice = await self.prompt_step(config, tags, cancel_token)
        run = _Run(self, config, backend, cancel_token, on_event, tags=tags,
                   input_images=input_images, output_dir=output_dir, name_prefix=name_prefix)
        if notice:
            run.notices.append(notice)
        return await run.execute()


@dataclass
class _Pending:
    """A job sent to the node whose answer has not been taken yet."""

    stage: StageName
    job: Any
    image_index: int
    work: asyncio.Future[Any] | None = None  # set when the job is sent
    active: bool = False  # its turn on the node has come (progress belongs to it now)


class _Ahead:
    """Sends the first request of the next image (or batch) before the current one ends."""

    def __init__(self, run: _Run, count: int,
                 send: Callable[[int], Awaitable[_Pending | None]]) -> None:
        self.run = run
        self.count = count
        self._send = send
        self._sent: dict[int, _Pending | None] = {}

    async def send(self, n: int) -> None:
        if n >= self.count or n in self._sent or self.run.fatal is not None \
                or self.run.token.cancelled:
            return
        self._sent[n] = await self._send(n)

    async def take(self, n: int) -> _Pending | None:
        """The request for item n, sending it now unless it went ahead; None if it failed."""
        if self.run.fatal is not None:
            return None
        self.run._check_cancel()
        if n not in self._sent:
            await self.send(n)
        return self._sent.pop(n, None)


@dataclass
class _Image:
    """One image on its way through the chain."""

    index: int
    seed: int
    data: bytes = b""
    size: tuple[int, int] = (0, 0)
    chain: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: Path | None = None  # the input file a re-run started from
    #: Each stage's server report for this image: what the image's metadata is made of.
    reports: dict[str, it.StageReport] = field(default_factory=dict)
    #: Why the image is not finished work ("" when it is): kept, named and counted as such.
    incomplete: str = ""
    #: The stage that failed after the ones in `chain` ran ("" when none did).
    stopped_before: str = ""


def _as_ran(config: PipelineConfig, image: _Image) -> tuple[PipelineConfig, dict[str, Any]]:
    """The config corrected by what the server reported running, and what it said instead.

    A1111 runs an unknown sampler as its first one and drops a checkpoint name it does not
    know; a ComfyUI node given no checkpoint loads one of its own. The saved config then
    reproduces the image, and `asked` keeps what the config said.
    """
    chain = [StageName(s) for s in image.chain]
    ran = it.first_ran(chain, image.reports)
    if ran is None:
        return config, {}
    t = config.txt2img
    update: dict[str, Any] = {}
    asked: dict[str, Any] = {}
    if ran.checkpoint and not (t.checkpoint and same_checkpoint(t.checkpoint, ran.checkpoint)):
        update["checkpoint"] = ran.checkpoint
        asked["txt2img.checkpoint"] = t.checkpoint
    same_sampler = t.sampler.casefold() in (ran.sampler.casefold(),
                                            f"{ran.sampler} {ran.scheduler}".casefold())
    if chain and chain[0] is StageName.txt2img and ran.sampler and not same_sampler:
        update["sampler"] = ran.sampler
        asked["txt2img.sampler"] = t.sampler
    if not update:
        return config, {}
    return config.model_copy(update={"txt2img": t.model_copy(update=update)}), asked


class _FolderFailed(Exception):
    """The run's folder could not be made (the cause says why)."""


class _Run:
    """The state of one `PipelineRunner.run` call."""

    def __init__(self, runner: PipelineRunner, config: PipelineConfig, backend: Backend,
                 token: CancelToken, on_event: EventCallback | None, *, tags: RunTags,
                 input_images: Sequence[Path | bytes] | None, output_dir: Path | None,
                 name_prefix: str | None) -> None:
        self.runner = runner
        self.config = config
        self.backend = backend
        self.token = token
        self.on_event = on_event
        self.tags = tags
        self.inputs = list(input_images) if input_images is not None else None
        self.fixed_dir = Path(output_dir) if output_dir is not None else None
        self.name_prefix = name_prefix
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.node: str = runner.node_name or str(getattr(backend, "name", "") or getattr(backend, "url", ""))
        try:
            self.node_kind = str(backend.kind.value)
        except Exception:  # noqa: BLE001 - a backend that cannot say its kind still runs
            self.node_kind = ""
        self.records: list[ImageRecord] = []
        self.errors: list[RunError] = []
        self.warnings: list[str] = []
        #: Said as warnings once the run has started (the prompt step's, e.g. "the LLM did not
        #: answer: the prompt was sent as written").
        self.notices: list[str] = []
        self.saves: set[asyncio.Task[None]] = set()
        self.outstanding: list[_Pending] = []  # jobs sent and not yet answered
        self.save_slots = asyncio.Semaphore(MAX_PENDING_SAVES)
        self.output_dir = self.fixed_dir or runner.output_root
        self.log: RunLog | None = None
        self.eta: EtaEstimator | None = None
        self.fatal: RunError | None = None
        self.failures_in_a_row = 0
        self._folder_ready = False
        self._folder_lock = threading.Lock()  # taken in the writer threads
        self._callback_failed = False

    # --- the run ----------------------------------------------------------------------------

    async def execute(self) -> RunResult:
        started = time.monotonic()
        cancelled = False
        try:
            chain = stages.plan_stages(self.config, from_images=self.inputs is not None)
        except stages.NothingToRun as exc:
            return self._early_failure(str(exc), started)
        if self.inputs is not None and not self.inputs:
            return self._early_failure("No input images were given.", started)
        problem = await self._precheck(chain)
        if problem:
            return self._early_failure(problem, started)
        # The folder itself is made with the first saved image: a run that saves nothing
        # leaves no empty folder behind. Whether it can be made is known now.
        if self.fixed_dir is not None and self.fixed_dir in self.runner._prepared_dirs:
            self._folder_ready = True
        else:
            where = self.fixed_dir or self.runner.output_root
            problem = await asyncio.to_thread(outputs.folder_problem, where)
            if problem:
                return self._early_failure(
                    f"The output folder {where} cannot be created. Choose another folder in "
                    "Settings.", started, detail=problem)
        if self.runner.log_dir is not None:
            self.log = RunLog(Path(self.runner.log_dir) / f"{self.run_id}.jsonl")
        total = len(self.inputs) if self.inputs is not None else (
            self.config.txt2img.batch_size * self.config.txt2img.batch_count)
        self.chain = chain
        self.eta = EtaEstimator(self._plan(chain, total))
        self._emit(RunStarted(self.run_id, total, tuple(s.value for s in chain),
                              self.output_dir, self.node))
        for notice in self.notices:
            self._warn(notice, None)
        try:
            if self.inputs is not None:
                await self._run_from_images(chain)
            else:
                await self._run_from_prompt(chain)
        except RunCancelled:
            cancelled = True
        finally:
            # Nothing of ours may keep running on the node once the run is over.
            await self._abandon_outstanding()
            # Finished images are whole and worth keeping; let their writes complete.
            await self._drain_saves()
        seconds = time.monotonic() - started
        status, message = self._outcome(cancelled, total)
        self.records.sort(key=lambda r: r.image_index)
        failed = len({e.image_index for e in self.errors if e.image_index is not None})
        self._emit(RunFinished(self.run_id, status, len(self.records), failed, seconds, message))
        if self.log is not None:
            self.log.close()
        return RunResult(self.run_id, status, self.records, self.errors, self.output_dir,
                         seconds, message, self.warnings, folder_made=self._folder_ready)

    async def _precheck(self, chain: Sequence[StageName]) -> str | None:
        """What a stage needs that the node lacks, before anything is sent (None: all there).

        The node's last probe is used when it has one; a problem found on it is checked once
        more on a fresh probe, since a model may have been installed since.
        """
        known = getattr(self.backend, "capabilities", None)
        caps = known if isinstance(known, Capabilities) else None
        fresh = caps is None
        for _ in range(2):
            if fresh or caps is None:
                try:
                    caps = await self.backend.probe()
                except Exception as exc:  # noqa: BLE001 - the stages will report an unusable node themselves
                    log.info("pre-check skipped: probing %s failed: %r", self.node, exc)
                    return None
            problem = stages.unavailable(self.config, chain, caps, self.node)
            if problem is None or fresh:
                return problem
            fresh = True
        return None

    def _ensure_folder(self) -> Path:
        """Blocking (writer thread): make the run's folder with its first image; its path."""
        with self._folder_lock:
            if not self._folder_ready:
                try:
                    self.output_dir = self._prepare_folder()
                except OSError as exc:
                    raise _FolderFailed(exc) from exc
                if self.fixed_dir is not None:
                    self.runner._prepared_dirs.add(self.fixed_dir)
                self._folder_ready = True
            return self.output_dir

    def _prepare_folder(self) -> Path:
        if self.fixed_dir is not None:
            self.fixed_dir.mkdir(parents=True, exist_ok=True)
            return self.fixed_dir
        return outputs.new_run_folder(self.runner.output_root, self.config.txt2img.prompt)

    def _plan(self, chain: Sequence[StageName], total: int) -> list[tuple[str, float]]:
        later = [(s.value, stages.stage_units(self.config, s)) for s in chain
                 if s is not StageName.txt2img]
        plan: list[tuple[str, float]] = []
        if chain[0] is StageName.txt2img:
            t = self.config.txt2img
            for _ in range(t.batch_count):
                plan.append((StageName.txt2img.value, stages.stage_units(self.config,
                                                                          StageName.txt2img)))
                plan.extend(later * t.batch_size)
        else:
            plan.extend(later * total)
        return plan

    def _base_seed(self, count: int) -> int:
        seed = self.config.txt2img.seed
        if seed == -1:
            # As A1111 does: a random seed, resolved here so it is recorded and reproducible.
            seed = random.randrange(0, MAX_SEED - count + 1)
        return seed

    async def _run_from_prompt(self, chain: Sequence[StageName]) -> None:
        t = self.config.txt2img
        base = self._base_seed(t.batch_size * t.batch_count)
        later = [s for s in chain if s is not StageName.txt2img]

        async def send(batch: int) -> _Pending | None:
            first = batch * t.batch_size
            seed = (base + first) % (MAX_SEED + 1)
            job = stages.txt2img_job(self.config, seed, self._task_id(first, StageName.txt2img))
            return self._send(StageName.txt2img, job, first)

        ahead = _Ahead(self, t.batch_count, send)
        for batch in range(t.batch_count):
            pending = await ahead.take(batch)
            if pending is None:
                return
            first = pending.image_index
            indices = list(range(first, first + t.batch_size))
            if not later:
                await ahead.send(batch + 1)  # queued behind this one: the node never idles
            try:
                result, took = await self._await(pending)
            except RunCancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - a stage's failure is that image's error; the run goes on
                self._fail(indices, exc, StageName.txt2img)
                for _ in indices:
                    self._skip_later(later)
                continue
            images = list(result.images[: t.batch_size])
            for offset, index in enumerate(indices):
                if offset >= len(images):
                    self._image_error(index, "The server returned fewer images than asked for.",
                                      f"asked {t.batch_size}, got {len(result.images)}")
                    self._skip_later(later)
                    continue
                gen = images[offset]
                image = self._new_image(index, gen, pending.job.sampling.seed + offset, result)
                image.timings[StageName.txt2img.value] = took
                image.chain.append(StageName.txt2img.value)
                last = offset == len(indices) - 1
                await self._continue(image, later,
                                     on_last_send=partial(ahead.send, batch + 1) if last else None)

    async def _run_from_images(self, chain: Sequence[StageName]) -> None:
        assert self.inputs is not None
        inputs = self.inputs
        base = self._base_seed(len(inputs))
        loaded: dict[int, _Image] = {}

        async def send(index: int) -> _Pending | None:
            source = inputs[index]
            try:
                data = source if isinstance(source, bytes) else await asyncio.to_thread(
                    Path(source).read_bytes)
                size = outputs.image_size(data)
            except Exception as exc:  # noqa: BLE001 - an unreadable input image is that image's error
                name = "" if isinstance(source, bytes) else f" {Path(source).name}"
                self._image_error(index, f"The input image{name} could not be read.", repr(exc))
                self._skip_later(chain)
                return None
            width, height = stages.expected_size(self.config, chain, size)
            limit = self.config.limits.max_output_pixels
            if width * height > limit:
                self._image_error(
                    index, f"Input image {index + 1} would become {width}×{height} "
                    f"({width * height / 1e6:.1f} MP), above the limit of {limit / 1e6:g} MP "
                    "(Largest output). Lower the upscale, or raise the limit.",
                    f"input {size[0]}x{size[1]}, stages {[s.value for s in chain]}")
                self._skip_later(chain)
                return None
            image = _Image(index, (base + index) % (MAX_SEED + 1), data, size,
                           source=None if isinstance(source, bytes) else Path(source))
            loaded[index] = image
            return self._send(chain[0], self._job_for(chain[0], image), index)

        ahead = _Ahead(self, len(inputs), send)
        for index in range(len(inputs)):
            pending = await ahead.take(index)
            if pending is None:
                if self.fatal is not None:
                    return
                continue  # this input could not be read; the error is recorded
            await self._continue(loaded.pop(index), list(chain), first=pending,
                                 on_last_send=partial(ahead.send, index + 1))

    def _job_for(self, stage: StageName, image: _Image):
        return stages.build_job(self.config, stage, seed=image.seed, image=image.data,
                                size=image.size, task_id=self._task_id(image.index, stage))

    async def _continue(self, image: _Image, later: Sequence[StageName], *,
                        first: _Pending | None = None,
                        on_last_send: Callable[[], Awaitable[object]] | None = None) -> None:
        """Run the remaining stages on one image, then hand it to a writer thread.

        `first` is the first stage's request when it was sent ahead; `on_last_send` runs
        right after the last stage's request goes out, to queue the next image behind it.
        An image a stage left unfinished goes no further: it is kept as it is, marked so.
        """
        for position, stage in enumerate(later):
            if self.fatal is not None:
                self._skip_later(later[position:])
                return
            if image.incomplete:
                self._skip_later(later[position:])
                if on_last_send is not None:
                    await on_last_send()  # the next image still goes out now
                break
            if position == 0 and first is not None:
                pending = first
            else:
                pending = self._send(stage, self._job_for(stage, image), image.index)
            if position == len(later) - 1 and on_last_send is not None:
                await on_last_send()
            try:
                result, took = await self._await(pending)
            except RunCancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - a stage's failure is that image's error; earlier stages are kept
                self._fail([image.index], exc, stage)
                self._skip_later(later[position + 1:])
                await self._keep_earlier(image, stage)
                return
            if not result.images:
                self._image_error(image.index, f"The server returned no image for {stage.value}.",
                                  repr(result.info)[:500])
                self._skip_later(later[position + 1:])
                await self._keep_earlier(image, stage)
                return
            gen = result.images[0]
            image.data = gen.data
            image.reports[stage.value] = it.StageReport(gen.infotext, result.info, result.ran)
            image.incomplete = result.incomplete
            image.warnings.extend(result.warnings)
            image.timings[stage.value] = took
            image.chain.append(stage.value)
            try:
                image.size = outputs.image_size(gen.data)
            except Exception as exc:  # noqa: BLE001 - an unreadable answer is that image's error
                self._image_error(image.index, "The server sent an image that could not be read.",
                                  repr(exc))
                self._skip_later(later[position + 1:])
                return
        self.failures_in_a_row = 0
        await self._schedule_save(image)

    async def _keep_earlier(self, image: _Image, failed: StageName) -> None:
        """A later stage failed: what the earlier ones made is kept, named for the last stage
        that ran ("…-txt2img-only.png"), and not counted as done (the error is reported)."""
        if not image.chain:
            return  # nothing was made yet
        image.stopped_before = failed.value
        await self._schedule_save(image)

    # --- backend calls ----------------------------------------------------------------------

    def _send(self, stage: StageName, job, image_index: int) -> _Pending:
        """Put one job on its way to the node; `_await` later takes its answer.

        A job may be sent while an earlier one still runs: the node queues it (A1111's FIFO
        lock, ComfyUI's queue) and starts it the moment the earlier one ends.
        """
        self._check_cancel()
        pending = _Pending(stage, job, image_index)

        def on_progress(progress: Progress) -> None:
            if not pending.active or self.token.cancelled:
                return  # still queued behind the previous job, or being stopped
            self.eta.progress(progress.fraction)  # type: ignore[union-attr]  # set before any job is sent
            self._emit_progress(stage, image_index, progress.step, progress.steps,
                                progress.fraction, progress.preview, progress.phase,
                                progress.more_passes)

        method = getattr(self.backend, stages.STAGE_CALLS[stage])
        pending.work = asyncio.ensure_future(method(job, on_progress))
        pending.work.add_done_callback(_retrieve)
        self.outstanding.append(pending)
        return pending

    async def _await(self, pending: _Pending) -> tuple[JobResult, float]:
        """Wait for a sent job, racing it against the cancel token; returns (result, seconds).

        Its clock starts here: the job before it has just finished, so this is when the node
        turned to it, whether it was sent early or now.
        """
        self._check_cancel()
        assert self.eta is not None and pending.work is not None
        stage, image_index, work = pending.stage, pending.image_index, pending.work
        count = len(self.chain)
        position = self.chain.index(stage) + 1
        pending.active = True
        self._emit(StageStarted(stage.value, position, count, image_index))
        self.eta.start(stage.value)
        self._emit_progress(stage, image_index, None, None, 0.0, None)
        started = time.monotonic()
        stop = asyncio.ensure_future(self.token.wait())
        stop.add_done_callback(_retrieve)
        try:
            await asyncio.wait((work, stop), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Our caller gave up on the whole run: still free the node before leaving.
            stop.cancel()
            await self._abandon_outstanding()
            raise
        stop.cancel()
        if not work.done():
            self.eta.abandon()
            raise RunCancelled  # execute() interrupts everything still outstanding
        self._forget(pending)
        try:
            result = work.result()
        except BaseException:
            self.eta.abandon()
            if self.token.cancelled:
                raise RunCancelled from None
            raise
        seconds = time.monotonic() - started
        self.eta.finish()
        for warning in result.warnings:
            self._warn(warning, image_index)
        self._emit(StageFinished(stage.value, position, count, image_index, seconds))
        self._emit_progress(stage, image_index, None, None, 1.0, None)
        return result, seconds

    def _forget(self, pending: _Pending) -> None:
        if pending in self.outstanding:
            self.outstanding.remove(pending)

    async def _abandon_outstanding(self) -> None:
        """Interrupt every job of ours still running or queued on the node, all at once."""
        left, self.outstanding = self.outstanding, []
        if not left:
            return

        async def interrupt(pending: _Pending) -> None:
            try:
                await self.backend.interrupt(pending.job.task_id)
            except Exception as exc:  # noqa: BLE001 - an unreachable node cannot be interrupted; we still stop
                log.info("interrupt of %s failed: %r", pending.job.task_id, exc)

        interrupts = [asyncio.ensure_future(interrupt(p)) for p in left
                      if p.work is not None and not p.work.done()]
        works = [p.work for p in left if p.work is not None]
        for task in interrupts:
            task.add_done_callback(_retrieve)
            # The interrupt itself carries on in the background (never cut off half-sent)
            # when the node is slow and the run returns first.
            _keep_until_done(task)
        try:
            if interrupts:
                # A slow node gets INTERRUPT_TIMEOUT_S.
                await asyncio.wait(interrupts, timeout=INTERRUPT_TIMEOUT_S)
        finally:
            # Even when our caller cancels again during this wait, no job is left running.
            for work in works:
                work.cancel()
                if not work.done():
                    _keep_until_done(work)  # may unwind after we return; `_retrieve` takes it
        await asyncio.wait(works, timeout=0.2)

    def _check_cancel(self) -> None:
        if self.token.cancelled:
            raise RunCancelled

    def _task_id(self, index: int, stage: StageName) -> str:
        return f"task(stablenew-{self.run_id}-{index}-{stage.value}-{uuid.uuid4().hex[:6]})"

    # --- saving -----------------------------------------------------------------------------

    def _new_image(self, index: int, gen: GeneratedImage, fallback_seed: int,
                   result: JobResult) -> _Image:
        # The server reports the seed it used; trust it over our arithmetic.
        seed = gen.seed if 0 <= gen.seed <= MAX_SEED else fallback_seed
        try:
            size = outputs.image_size(gen.data)
        except Exception:  # noqa: BLE001 - an unreadable size falls back to the size asked for
            size = (self.config.txt2img.width, self.config.txt2img.height)
        image = _Image(index, seed, gen.data, size, incomplete=result.incomplete)
        image.reports[StageName.txt2img.value] = it.StageReport(gen.infotext, result.info,
                                                                result.ran)
        image.warnings.extend(result.warnings)
        return image

    async def _schedule_save(self, image: _Image) -> None:
        await self.save_slots.acquire()
        task = asyncio.ensure_future(self._save(image))
        task.add_done_callback(_retrieve)
        self.saves.add(task)
        task.add_done_callback(self.saves.discard)

    async def _save(self, image: _Image) -> None:
        try:
            asked = self._config_for(image.seed)
            config, changed = _as_ran(asked, image)
            name = outputs.image_file_name(config.txt2img.prompt, image.index, image.seed,
                                           prefix=self.name_prefix)
            if image.incomplete:
                name = name[: -len(".png")] + "-incomplete.png"
            elif image.stopped_before:
                name = name[: -len(".png")] + f"-{image.chain[-1]}-only.png"
            created = time.time()
            started = time.monotonic()
            try:
                path, thumb = await asyncio.get_running_loop().run_in_executor(
                    _save_pool(), self._write, image, config, changed, name, created)
            except _FolderFailed as exc:
                # Every image would fail the same way: stop instead of burning the GPU.
                error = RunError(f"The output folder under {self.runner.output_root} cannot be "
                                 "created. Choose another folder in Settings.",
                                 repr(exc.__cause__), image.index, fatal=True)
                self.fatal = self.fatal or error
                self.errors.append(error)
                self._emit(error)
                return
            except Exception as exc:  # noqa: BLE001 - a save that fails is that image's error, with what to do
                message = getattr(exc, "message", None) or (
                    f"Image {image.index + 1} could not be saved to {self.output_dir}. Check that "
                    "the folder is writable and the disk is not full.")
                self._image_error(image.index, message, getattr(exc, "detail", "") or repr(exc))
                return
            image.timings["save"] = time.monotonic() - started
            if image.stopped_before:
                # The stage's failure is already reported; this says what is left of the image.
                self._warn(f"Image {image.index + 1}: the {image.stopped_before} step failed, so "
                           f"the image from the steps before it is kept as {name} (not counted "
                           "as done).", image.index)
                return
            if image.incomplete:
                # Kept for the user to look at, but it is not the image that was asked for:
                # no record, so it counts as failed (and a queue item is made again).
                self._image_error(
                    image.index, f"Image {image.index + 1} was not finished: {image.incomplete}. "
                    f"What the server returned is kept as {name}, not counted as done.",
                    f"stages {image.chain}")
                return
            record = ImageRecord(
                run_id=self.run_id, image_index=image.index, config=config, seed=image.seed,
                stages=tuple(image.chain), node=self.node, node_kind=self.node_kind, path=path,
                thumbnail=thumb, tags=self.tags, timings=dict(image.timings),
                warnings=tuple(image.warnings), created_at=created, source=image.source)
            self.records.append(record)
            for hook in self.runner._hooks:
                try:
                    hook(record)
                except Exception as exc:  # a broken subscriber must not lose the image
                    log.exception("record hook %r failed", hook)
                    self._warn(f"An image was saved but could not be recorded: {exc}",
                               image.index)
            self._emit(ImageSaved(record))
        finally:
            self.save_slots.release()

    def _write(self, image: _Image, config: PipelineConfig, asked: dict[str, Any], name: str,
               created: float) -> tuple[Path, Path | None]:
        """Blocking: describe the image from its stages' reports, write the PNG (making the
        run's folder with the first one), then the thumbnail (worker thread)."""
        path = self._ensure_folder() / name
        first = image.size if StageName.txt2img.value not in image.chain else None
        parameters = it.describe_image(config, image.seed, image.chain, image.reports,
                                       size=first)
        if image.incomplete:
            parameters += f", Incomplete: {it.quote(image.incomplete)}"
        if image.stopped_before:
            parameters += f", Stopped before: {image.stopped_before}"
        payload = it.stablenew_payload(
            config=config, seed=image.seed, stages=image.chain, run_id=self.run_id,
            image_index=image.index, tags=self.tags, node=self.node, node_kind=self.node_kind,
            timings=image.timings, created_at=created,
            source=str(image.source) if image.source is not None else None)
        if asked:
            payload["asked"] = asked  # what the config said where the server ran otherwise
        if image.incomplete:
            payload["incomplete"] = image.incomplete
        if image.stopped_before:
            payload["stopped_before"] = image.stopped_before  # `stages` lists what ran
        chunks = {it.PARAMETERS_KEY: parameters,
                  it.STABLENEW_KEY: json.dumps(payload, ensure_ascii=False, separators=(",", ":"))}
        outputs.write_png(path, image.data, chunks)
        if not self.runner.thumbnails:
            return path, None
        thumb = outputs.thumbnail_path(path)
        try:
            outputs.write_thumbnail(image.data, thumb)
        except Exception as exc:  # noqa: BLE001 - the image is safe; a missing thumbnail is only cosmetic
            log.warning("thumbnail for %s failed: %r", path, exc)
            return path, None
        return path, thumb

    def _config_for(self, seed: int) -> PipelineConfig:
        # model_copy skips re-validation: only the seed changes and it is already in range.
        t = self.config.txt2img.model_copy(update={"seed": seed})
        return self.config.model_copy(update={"txt2img": t})

    async def _drain_saves(self) -> None:
        while self.saves:
            await asyncio.gather(*list(self.saves), return_exceptions=True)

    # --- errors, events ---------------------------------------------------------------------

    def _fail(self, indices: Sequence[int], exc: BaseException, stage: StageName) -> None:
        if isinstance(exc, BackendError):
            message = exc.message
            if isinstance(exc, JobInterrupted):
                message = ("The job was stopped on the server (someone pressed Interrupt there "
                           "or it restarted).")
            detail = f"{stage.value}: {type(exc).__name__}: {exc.detail or exc.message}"
            fatal = exc.fatal_for_node
        else:
            message = (f"Something unexpected went wrong during {stage.value}. The details "
                       "were logged; please report them.")
            detail = "".join(traceback.format_exception(exc))[-4000:]
            fatal = False
            log.error("unexpected error in %s: %s", stage.value, detail)
        self.failures_in_a_row += 1
        if not fatal and self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            # A node failing every image (out of memory, shutting down, broken model) would
            # only burn through the rest of the batch: treat it as unusable.
            message = (f"{self.failures_in_a_row} images in a row failed on this server, so the "
                       f"run stopped. Check the server's console. Last error: {message}")
            fatal = True
        if fatal:
            error = RunError(message, detail, indices[0] if indices else None, fatal=True)
            self.fatal = error
            self.errors.append(error)
            self._emit(error)
            return
        for index in indices:
            self._image_error(index, message, detail)

    def _image_error(self, index: int, message: str, detail: str = "") -> None:
        error = RunError(message, detail, index)
        self.errors.append(error)
        self._emit(error)

    def _skip_later(self, later: Sequence[StageName]) -> None:
        if self.eta is not None:
            for stage in later:
                self.eta.skip(stage.value)

    def _warn(self, message: str, index: int | None) -> None:
        self.warnings.append(message)
        self._emit(RunWarning(message, index))

    def _emit_progress(self, stage: StageName, index: int, step: int | None, steps: int | None,
                       fraction: float, preview: bytes | None, phase: str = "",
                       more_passes: bool = False) -> None:
        assert self.eta is not None
        self._emit(ProgressUpdate(stage.value, index, step, steps, min(max(fraction, 0.0), 1.0),
                                  self.eta.overall_fraction, self.eta.eta_seconds(), preview,
                                  phase, more_passes))

    def _emit(self, event: RunEvent) -> None:
        if self.log is not None:
            self.log.write(event)
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            if not self._callback_failed:
                self._callback_failed = True
                log.exception("on_event callback failed (later failures are not logged)")

    def _outcome(self, cancelled: bool, total: int) -> tuple[RunStatus, str]:
        saved = len(self.records)
        of_total = f"{saved} of {plural(total, 'image')}"
        if cancelled:
            return RunStatus.cancelled, f"Stopped after {of_total}."
        if self.fatal is not None:
            status = RunStatus.partial if saved else RunStatus.failed
            return status, f"Stopped after {of_total}: {self.fatal.message}"
        failed = total - saved
        if failed <= 0:
            return RunStatus.completed, f"{plural(saved, 'image')} saved."
        if saved == 0:
            first = self.errors[0].message if self.errors else "no image could be made"
            return RunStatus.failed, f"No image was saved: {first}"
        return RunStatus.partial, f"{of_total} saved; {failed} failed."

    def _early_failure(self, message: str, started: float, detail: str = "") -> RunResult:
        error = RunError(message, detail, None, fatal=True)
        self.errors.append(error)
        self._emit(error)
        seconds = time.monotonic() - started
        self._emit(RunFinished(self.run_id, RunStatus.failed, 0, 0, seconds, message))
        return RunResult(self.run_id, RunStatus.failed, [], self.errors, self.output_dir, seconds,
                         message)

