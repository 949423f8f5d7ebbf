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
import logging
import random
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path

from stablenew.backends.errors import BackendError, JobInterrupted
from stablenew.backends.protocol import Backend
from stablenew.backends.types import Capabilities, JobResult, Progress
from stablenew.pipeline import outputs, stages
from stablenew.pipeline.cancel import CancelToken, RunCancelled
from stablenew.pipeline.config import MAX_SEED, PipelineConfig, StageName
from stablenew.pipeline.eta import EtaEstimator
from stablenew.pipeline.events import (
    EventCallback,
    ProgressUpdate,
    RunError,
    RunFinished,
    RunStarted,
    RunStatus,
    StageFinished,
    StageStarted,
)
from stablenew.pipeline.records import ImageRecord, RunTags
from stablenew.pipeline.run_result import PromptStep, RunResult, run_outcome
from stablenew.pipeline.run_saving import (
    MAX_PENDING_SAVES,
    LoraHashes,
    RunImage,
    RunSaving,
    keep_until_done,
    retrieve,
)
from stablenew.pipeline.runlog import RunLog
from stablenew.pipeline.send_ahead import Pending, SendAhead

# RunResult and PromptStep live with the words for a run's end; this is still their home.
__all__ = ["PipelineRunner", "PromptStep", "RecordHook", "RunResult"]

log = logging.getLogger(__name__)

RecordHook = Callable[[ImageRecord], None]

#: Time allowed for the node to acknowledge an interrupt before we stop waiting for it.
INTERRUPT_TIMEOUT_S = 0.5
#: Failing images in a row after which the node counts as unusable for this run.
MAX_FAILURES_IN_A_ROW = 3


class PipelineRunner:
    """Runs PipelineConfigs on any Backend, writing described images under `output_root`.

    One runner may serve several runs at once (one per node); each run keeps its own state.
    Record hooks and `on_event` are called on the event loop's thread.
    """

    def __init__(self, output_root: Path, *, record_hooks: Sequence[RecordHook] = (),
                 log_dir: Path | None = None, thumbnails: bool = True,
                 node_name: str | None = None, prompt_step: PromptStep | None = None,
                 lora_hashes: LoraHashes | None = None) -> None:
        self.output_root = Path(output_root)
        #: The catalog's `Lora hashes` for servers that do not write them (ComfyUI).
        self.lora_hashes = lora_hashes
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
        if input_images is None and config.img2img.init_image and not config.txt2img.enabled:
            # A config that starts from a picture (the card's init image, a queued "More like
            # this"): one input per image the batch settings ask for, each its own seed.
            t = config.txt2img
            input_images = [Path(config.img2img.init_image)] * (t.batch_size * t.batch_count)
        if self.prompt_step is not None and input_images is None and not cancel_token.cancelled:
            config, tags, notice = await self.prompt_step(config, tags, cancel_token)
        run = _Run(self, config, backend, cancel_token, on_event, tags=tags,
                   input_images=input_images, output_dir=output_dir, name_prefix=name_prefix)
        if notice:
            run.notices.append(notice)
        return await run.execute()


class _Run(RunSaving):
    """The state of one `PipelineRunner.run` call (its saving and events: `RunSaving`)."""

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
        self.node = str(runner.node_name or getattr(backend, "name", "")
                        or getattr(backend, "url", ""))
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
        self.outstanding: list[Pending] = []  # jobs sent and not yet answered
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
        fresh = False
        for _ in range(2):
            if caps is None:
                try:
                    caps = await self.backend.probe()
                except Exception as exc:  # noqa: BLE001 - the stages will report an unusable node themselves
                    log.info("pre-check skipped: probing %s failed: %r", self.node, exc)
                    return None
                fresh = True
            problem = stages.unavailable(self.config, chain, caps, self.node)
            if problem is None or fresh:
                return problem
            caps = None
        return None

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

        async def send(batch: int) -> Pending | None:
            first = batch * t.batch_size
            seed = (base + first) % (MAX_SEED + 1)
            job = stages.txt2img_job(self.config, seed, self._task_id(first, StageName.txt2img))
            return self._send(StageName.txt2img, job, first)

        ahead = SendAhead(self, t.batch_count, send)
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
        loaded: dict[int, RunImage] = {}

        async def send(index: int) -> Pending | None:
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
            image = RunImage(index, (base + index) % (MAX_SEED + 1), data, size,
                           source=None if isinstance(source, bytes) else Path(source))
            loaded[index] = image
            return self._send(chain[0], self._job_for(chain[0], image), index)

        ahead = SendAhead(self, len(inputs), send)
        for index in range(len(inputs)):
            pending = await ahead.take(index)
            if pending is None:
                if self.fatal is not None:
                    return
                continue  # this input could not be read; the error is recorded
            await self._continue(loaded.pop(index), list(chain), first=pending,
                                 on_last_send=partial(ahead.send, index + 1))

    def _job_for(self, stage: StageName, image: RunImage):
        return stages.build_job(self.config, stage, seed=image.seed, image=image.data,
                                size=image.size, task_id=self._task_id(image.index, stage))

    async def _continue(self, image: RunImage, later: Sequence[StageName], *,
                        first: Pending | None = None,
                        on_last_send: Callable[[], Awaitable[object]] | None = None) -> None:
        """Run the remaining stages on one image, then hand it to a writer thread.

        `first` is the first stage's request when it was sent ahead; `on_last_send` runs
        right after the last stage's request goes out, to queue the next image behind it.
        An image a stage left unfinished goes no further: it is kept as it is, marked so.
        """
        from stablenew.pipeline.infotext_write import StageReport  # not needed before the first send

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
            image.reports[stage.value] = StageReport(gen.infotext, result.info, result.ran)
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

    async def _keep_earlier(self, image: RunImage, failed: StageName) -> None:
        """A later stage failed: what the earlier ones made is kept, named for the last stage
        that ran ("…-txt2img-only.png"), and not counted as done (the error is reported)."""
        if not image.chain:
            return  # nothing was made yet
        image.stopped_before = failed.value
        await self._schedule_save(image)

    # --- backend calls ----------------------------------------------------------------------

    def _send(self, stage: StageName, job, image_index: int) -> Pending:
        """Put one job on its way to the node; `_await` later takes its answer.

        A job may be sent while an earlier one still runs: the node queues it (A1111's FIFO
        lock, ComfyUI's queue) and starts it the moment the earlier one ends.
        """
        self._check_cancel()
        pending = Pending(stage, job, image_index)

        def on_progress(progress: Progress) -> None:
            if not pending.active or self.token.cancelled:
                return  # still queued behind the previous job, or being stopped
            self.eta.progress(progress.fraction)  # type: ignore[union-attr]  # set before any job is sent
            self._emit_progress(stage, image_index, progress.step, progress.steps,
                                progress.fraction, progress.preview, progress.phase,
                                progress.more_passes)

        method = getattr(self.backend, stages.STAGE_CALLS[stage])
        work = pending.work = asyncio.ensure_future(method(job, on_progress))
        work.add_done_callback(retrieve)
        self.outstanding.append(pending)
        return pending

    async def _await(self, pending: Pending) -> tuple[JobResult, float]:
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
        stop.add_done_callback(retrieve)
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

    def _forget(self, pending: Pending) -> None:
        if pending in self.outstanding:
            self.outstanding.remove(pending)

    async def _abandon_outstanding(self) -> None:
        """Interrupt every job of ours still running or queued on the node, all at once."""
        left, self.outstanding = self.outstanding, []
        if not left:
            return

        async def interrupt(pending: Pending) -> None:
            try:
                await self.backend.interrupt(pending.job.task_id)
            except Exception as exc:  # noqa: BLE001 - an unreachable node cannot be interrupted; we still stop
                log.info("interrupt of %s failed: %r", pending.job.task_id, exc)

        works = [p.work for p in left if p.work is not None]
        interrupts = [asyncio.ensure_future(interrupt(p)) for p in left
                      if p.work is not None and not p.work.done()]
        for task in interrupts:
            task.add_done_callback(retrieve)
            # The interrupt itself carries on in the background (never cut off half-sent)
            # when the node is slow and the run returns first.
            keep_until_done(task)
        try:
            if interrupts:
                # A slow node gets INTERRUPT_TIMEOUT_S.
                await asyncio.wait(interrupts, timeout=INTERRUPT_TIMEOUT_S)
        finally:
            # Even when our caller cancels again during this wait, no job is left running.
            for work in works:
                work.cancel()
                if not work.done():
                    keep_until_done(work)  # may unwind after we return; `retrieve` takes it
        await asyncio.wait(works, timeout=0.2)

    def _check_cancel(self) -> None:
        if self.token.cancelled:
            raise RunCancelled

    def _task_id(self, index: int, stage: StageName) -> str:
        return f"task(stablenew-{self.run_id}-{index}-{stage.value}-{uuid.uuid4().hex[:6]})"

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

    def _skip_later(self, later: Sequence[StageName]) -> None:
        if self.eta is not None:
            for stage in later:
                self.eta.skip(stage.value)

    def _emit_progress(self, stage: StageName, index: int, step: int | None, steps: int | None,
                       fraction: float, preview: bytes | None, phase: str = "",
                       more_passes: bool = False) -> None:
        assert self.eta is not None
        self._emit(ProgressUpdate(stage.value, index, step, steps, min(max(fraction, 0.0), 1.0),
                                  self.eta.overall_fraction, self.eta.eta_seconds(), preview,
                                  phase, more_passes))

    def _outcome(self, cancelled: bool, total: int) -> tuple[RunStatus, str]:
        return run_outcome(len(self.records), total, cancelled=cancelled, fatal=self.fatal,
                           errors=self.errors)

    def _early_failure(self, message: str, started: float, detail: str = "") -> RunResult:
        error = RunError(message, detail, None, fatal=True)
        self.errors.append(error)
        self._emit(error)
        seconds = time.monotonic() - started
        self._emit(RunFinished(self.run_id, RunStatus.failed, 0, 0, seconds, message))
        return RunResult(self.run_id, RunStatus.failed, [], self.errors, self.output_dir, seconds,
                         message)

