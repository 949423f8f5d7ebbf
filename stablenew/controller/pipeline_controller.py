"""PipelineController: card values → PipelineConfig → a queue job run by the PipelineRunner,
events → coalesced Qt signals."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from PySide6.QtCore import QObject, QTimer, Signal

from stablenew.controller import card_fields
from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.field_spec import FieldValue
from stablenew.controller.fields import FieldSpec
from stablenew.controller.format import plural
from stablenew.controller.images import DecodedImage
from stablenew.controller.job_follow import JobFollower
from stablenew.controller.preview_decoder import PreviewDecoder
from stablenew.controller.run_progress import RunProgress, RunState
from stablenew.controller.run_tally import ShownRun, estimate, fold_event
from stablenew.controller.run_work import (
    NodeFailed,
    PlanProvider,
    PlanWork,
    RunNotQueued,
    RunQueue,
    RunServer,
)
from stablenew.controller.tasks import TaskOwner
from stablenew.pipeline import config as cfg
from stablenew.pipeline.events import (
    ImageSaved,
    ProgressUpdate,
    RunError,
    RunFinished,
    RunStatus,
    RunWarning,
)

if TYPE_CHECKING:
    from stablenew.cluster.estimates import QueueEstimates
    from stablenew.cluster.jobs import JobCounts
    from stablenew.cluster.queue_events import ItemFinished, ItemStarted, QueueEvent
    from stablenew.controller.queue_controller import PlanEntry, QueueController
    from stablenew.pipeline.cancel import CancelToken
    from stablenew.pipeline.events import RunEvent
    from stablenew.pipeline.records import ImageRecord

#: What a flush shows of an image of the Run: the runner's events, and when a node took it
#: and let it go.
ShownEvent: TypeAlias = "RunEvent | ItemStarted | ItemFinished"

log = logging.getLogger("stablenew.controller.pipeline")

#: Repaint rate for progress: fast enough to feel live, slow enough to never flood the Qt thread.
FLUSH_INTERVAL_MS = 80


class _LeftQueued(Exception):
    """The window closes to stop and resume next time: the Run stops following its job and
    leaves what is left of it in the queue."""


def _run_name(config: cfg.PipelineConfig) -> str:
    prompt = " ".join(config.txt2img.prompt.split())
    return "Run: " + ((prompt[:44] + "…") if len(prompt) > 45 else (prompt or "Untitled"))


class PipelineController(QObject):
    """Builds the config from the cards and runs it; views bind to its signals only."""

    config_loaded = Signal(object)  # dict[path, value]: the cards show these values
    run_state_changed = Signal(str)
    progress_changed = Signal(object)  # RunProgress
    #: DecodedImage, and True for a live frame of the image being made (False: a saved image).
    preview_changed = Signal(object, bool)
    image_saved = Signal(object)  # ImageRecord
    error_changed = Signal(object)  # ErrorInfo | None
    message_changed = Signal(str)  # plain information ("Loaded 14 settings from …")
    warning_raised = Signal(str)
    run_finished = Signal(object)  # RunFinished | None
    cards_changed = Signal(str)  # the user changed a card field (its path): the window's state moved
    base_models_changed = Signal()  # the catalog read its checkpoints: a family may differ now

    def __init__(self, server: RunServer | None, output_dir: Callable[[], Path], *,
                 log_dir: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._server = server
        self._output_dir = output_dir
        self._log_dir = log_dir
        self._config = cfg.PipelineConfig()
        # The ADetailer passes the cards were loaded with (see `build_config`).
        self._card_passes = card_fields.passes_on_card(self._config)
        self._record_hooks: list[Callable[[ImageRecord], None]] = []
        self._plan_provider: PlanProvider | None = None
        self._queue_provider: Callable[[], Awaitable[RunQueue]] | None = None
        self._own: QueueController | None = None  # the QueueController of a controller used without a window
        # The Run's queue job: its id, images, those in flight (as events tell, at once).
        self._job_id: str | None = None
        self._estimates: QueueEstimates | None = None  # the queue's QueueEstimates: the Run's time left
        self._plan_total: int | None = None
        self._follower = JobFollower()  # waits for the job: which images are at a node now
        self._node_failure: NodeFailed | None = None
        self._left_queued: _LeftQueued | None = None  # set as the window closes (keep_queued)
        self._shown = ShownRun(started=0.0)
        self._values_provider: Callable[[], Mapping[str, FieldValue]] | None = None
        self.base_model_of: Callable[[str], str] = card_fields.no_base_model  # the catalog's, once read
        self._token: CancelToken | None = None
        self._progress = RunProgress()
        self._error: ErrorInfo | None = None
        self.tasks = TaskOwner("Run", self)
        self.tasks.error_raised.connect(self._set_error)
        # Events may arrive from worker threads; they are queued and flushed on the Qt thread.
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, ShownEvent]] = deque()  # (image of the Run, event)
        self._latest_preview: bytes | None = None
        self._previews = PreviewDecoder[bool](self.tasks.spawn, self._preview_decoded)
        self._dirty = False
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(FLUSH_INTERVAL_MS)
        self._flush_timer.timeout.connect(self._flush)

    # --- what the cards show ----------------------------------------------------------------

    def sections(self) -> dict[str, list[FieldSpec]]:
        """Field descriptions per card section, read from the PipelineConfig model."""
        return card_fields.sections()

    def choices(self, path: str) -> list[str]:
        """Names the connected server offers for a picker field ([] when not a picker or unknown)."""
        caps = self._server.capabilities if self._server is not None else None
        return card_fields.choices(path, caps)

    def reference_models(self) -> list[str]:
        """The connected node's ControlNet and IP-Adapter models (for the References pickers)."""
        caps = self._server.capabilities if self._server is not None else None
        return list(caps.controlnet_models) if caps is not None else []

    def choice_groups(self, path: str) -> list[tuple[str, list[str]]]:
        """The picker's names grouped by model family for the checkpoint pickers."""
        return card_fields.choice_groups(path, self.choices(path))

    def fallback_choice(self, path: str, current: FieldValue) -> str | None:
        """A value the server has, for a picker still on the model's default that the server
        lacks ("R-ESRGAN 4x+" on a node without upscale models); None: keep the current one.

        A value the user or a preset chose is kept (the picker marks it as not installed).
        """
        return card_fields.fallback_choice(path, current, self.choices(path))

    def is_picker(self, path: str) -> bool:
        return card_fields.is_picker(path)

    @property
    def config(self) -> cfg.PipelineConfig:
        """The config of the last run or the last one loaded."""
        return self._config

    @staticmethod
    def values_of(config: cfg.PipelineConfig) -> dict[str, FieldValue]:
        """Flatten a config into the dotted paths the cards use."""
        return card_fields.values_of(config)

    def build_config(self, values: Mapping[str, FieldValue]) -> cfg.PipelineConfig:
        """A validated PipelineConfig from card values; raises ConfigInvalid in plain words."""
        return card_fields.build_config(self._config, self._card_passes, values, self.base_model_of)

    def default_values(self) -> dict[str, FieldValue]:
        return self.values_of(cfg.PipelineConfig())

    def set_values_provider(self, provider: Callable[[], Mapping[str, FieldValue]] | None
                            ) -> None:
        """Where the current card values come from (the window's pipeline panel)."""
        self._values_provider = provider

    def current_config(self) -> cfg.PipelineConfig:
        """The config the cards show now (the last valid one if the cards hold an invalid value)."""
        return self.config_snapshot()()

    def config_snapshot(self) -> Callable[[], cfg.PipelineConfig]:
        """The cards' values read now (Qt thread), and a builder of `current_config` from them
        for any thread (the variant count builds it on its worker)."""
        values = self._values_provider() if self._values_provider is not None else None
        return card_fields.config_builder(self._config, self._card_passes, values,
                                          self.base_model_of)

    def load_config(self, config: cfg.PipelineConfig) -> None:
        """Show *config* in the cards (a preset applied, "use these settings", a dropped PNG)."""
        self._config = config
        self._card_passes = card_fields.passes_on_card(config)
        self.config_loaded.emit(self.values_of(config))

    # --- collaborators ----------------------------------------------------------------------

    def add_record_hook(self, hook: Callable[[ImageRecord], None]) -> None:
        """Called with each saved ImageRecord (the learning store subscribes here)."""
        self._record_hooks.append(hook)

    def set_plan_provider(self, provider: PlanProvider | None) -> None:
        """The randomizer's `plan_for_run(config)`; None runs the config as it is.

        A plan provider is called on the Qt thread when Run is pressed, so the Run is what the
        window shows at that moment, and returns at once: the work (an iterable of configs or
        plan items, iterated off the Qt thread when queued), None (run the config as it is), or
        a `concurrent.futures.Future` of the work, built on the provider's own worker.
        """
        self._plan_provider = provider

    # --- run / stop -------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._progress.state

    @property
    def progress(self) -> RunProgress:
        return self._progress

    @property
    def error(self) -> ErrorInfo | None:
        return self._error

    @property
    def job_id(self) -> str | None:
        """The queue job of the Run in progress (None when idle or not queued yet)."""
        return self._job_id

    def set_run_queue(self, provider: Callable[[], Awaitable[RunQueue]] | None) -> None:
        """Where Run's work goes: the window's queue, ready to work on the preferred node.

        Without one (a controller used on its own, by a tool or a test) Run opens the queue
        database itself and works through it for the length of the Run.
        """
        self._queue_provider = provider

    def run_plan(self, provider: PlanProvider) -> bool:
        """Run the cards' config through *provider* (e.g. every prompt of a pack) instead of once."""
        values = self._values_provider() if self._values_provider is not None else {}
        return self.run(values, plan=provider)

    def run(self, values: Mapping[str, FieldValue], *, plan: PlanProvider | None = None) -> bool:
        """Start a run with exactly these card values; False (and a visible error) if they are invalid.

        The run is a queue item like any other (it survives a crash, it shows in the queue),
        with interactive priority and pinned to the preferred node: there is one way to run work.
        """
        if self.state != RunState.idle:
            return False
        try:
            config = self.build_config(values)
        except (cfg.ConfigInvalid, ValueError) as exc:
            self._set_error(ErrorInfo(f"These settings cannot run: {exc}", source="Run"))
            return False
        provider = plan or self._plan_provider
        try:
            # Variants and packs are taken as they are now; a slow plan comes back as a Future.
            work = provider(config) if provider is not None else None
        except Exception as exc:  # noqa: BLE001 - a plan that cannot be made is the Run's error, shown
            self._set_error(error_from_exception(exc, "Run"))
            return False
        self._config = config
        from stablenew.pipeline.cancel import CancelToken

        self._token = token = CancelToken()
        self._set_error(None)
        self._progress = RunProgress(state=RunState.running, started_at=time.monotonic(),
                                     node=self._server.node_name if self._server else "")
        self.run_state_changed.emit(RunState.running)
        self.progress_changed.emit(self._progress)
        self._flush_timer.start()
        self.tasks.spawn(self._run(config, token, work), name="run")
        return True

    def stop(self) -> None:
        """Trip the cancel token; the state stays "stopping" until the runner has returned."""
        if self.state != RunState.running or self._token is None:
            return
        self._token.cancel()
        self._progress = replace(self._progress, state=RunState.stopping)
        self.run_state_changed.emit(RunState.stopping)
        self.progress_changed.emit(self._progress)
        self._wake()

    async def wait_idle(self, timeout: float = 10.0) -> None:
        await self.tasks.wait_idle(timeout)

    async def _run(self, config: cfg.PipelineConfig, token: CancelToken, work: PlanWork) -> None:
        run_queue: RunQueue | None = None
        added = finished = False
        counts = None
        try:
            # An unreachable server is said at once, before anything is queued.
            await self._connected().ensure_backend()
            run_queue = await (self._queue_provider or self._own_queue)()
            # The plan provider's work (variants, a pack's prompts); None: run the config as is.
            planned = await self._built(work, token)
            if token.cancelled:
                return  # stopped before anything was queued
            from stablenew.pipeline.outputs import plan_run_folder

            # Named now, made by the runner with the first image (no empty folder on failure).
            folder = await asyncio.to_thread(plan_run_folder, self._output_dir(), config.txt2img.prompt)
            job_id = uuid.uuid4().hex[:8]
            self._start_following(job_id)
            self._estimates = getattr(run_queue.queue, "estimates", None)
            run_queue.queue.watch_job(job_id, self._on_queue_event)
            job = await run_queue.queue.add_run(
                planned if planned is not None else config, node=run_queue.node, job_id=job_id,
                name=_run_name(config), output_dir=folder)
            added = True
            self._plan_total = job.counts.total or None
            log.info("run: queue job %s, %d image(s) on %s", job_id, job.counts.total, run_queue.node)
            await self._follow(run_queue, job_id, token)
            try:
                counts = (await run_queue.queue.get_job(job_id)).counts
            except Exception:  # noqa: BLE001 - cleared from the queue meanwhile: what was shown is all we know
                counts = None
            # The last image is in the viewer before the Run says it is over.
            self._flush()
            await self._previews.wait()
            if run_queue.finished is not None:
                await run_queue.finished()
            finished = True
        except _LeftQueued:
            log.info("run: the window closes; what is left of job %s stays in the queue",
                     self._job_id)
        except Exception as exc:  # noqa: BLE001 - every failure of a Run ends as its shown, logged error
            info = error_from_exception(exc, "Run")
            log.error("run failed: %s\n%s", info.message, info.detail)
            self._set_error(info)
            if getattr(exc, "fatal_for_node", False) and self._server is not None:
                self._server.mark_failed(exc)
            if added and run_queue is not None and self._job_id is not None:
                # What is left of a Run that failed is not run later behind the user's back.
                with contextlib.suppress(Exception):
                    await run_queue.queue.cancel_job(self._job_id)
        finally:
            if isinstance(work, concurrent.futures.Future):
                work.cancel()  # the Run ended before its plan was needed: it is not built
            if run_queue is not None and self._job_id is not None:
                run_queue.queue.watch_job(self._job_id, None)
            self._flush()
            self._flush_timer.stop()
            if finished:
                self._finish_run(counts)
            self._token = None
            self._job_id = None
            self._progress = replace(self._progress, state=RunState.idle, eta_seconds=None)
            self.run_state_changed.emit(RunState.idle)
            self.progress_changed.emit(self._progress)
            if self._own is not None and self._queue_provider is None:
                own, self._own = self._own, None
                await own.aclose()
                own.deleteLater()

    @staticmethod
    async def _built(work: PlanWork, token: CancelToken) -> Iterable[PlanEntry] | None:
        """The Run's work once its plan is built (a Future: on the plan provider's worker);
        Stop does not wait for a plan still being built, whose result is then dropped."""
        if not isinstance(work, concurrent.futures.Future):
            return work
        built = asyncio.wrap_future(work)
        stopped = asyncio.ensure_future(token.wait())
        try:
            await asyncio.wait((built, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not built.done():
                built.cancel()  # a plan not started yet is never built; one under way is dropped
        if token.cancelled:
            if not built.cancelled():
                built.exception()  # a plan that failed just as Stop came is not worth an error
            return None
        if work.cancelled():  # the provider's worker shut down (the window is closing)
            raise RunNotQueued("The variants could not be prepared. Press Run again.",
                               detail="the plan provider's worker cancelled the plan")
        return built.result()

    def _connected(self) -> RunServer:
        """The server Run works on; a controller made without one (the card table) cannot run."""
        if self._server is None:
            raise RunNotQueued("There is no server to run on. Set one up in Settings.",
                               detail="PipelineController made without a server")
        return self._server

    async def _own_queue(self) -> RunQueue:
        """The queue of a controller used without a window: its own runner on the server."""
        from stablenew.cluster.machinery import RunMachinery
        from stablenew.controller.queue_controller import QueueController

        server = self._connected()
        backend = await server.ensure_backend()
        node = server.node_name
        if self._own is None:
            self._own = QueueController(output_root=self._output_dir(), parent=self)
        queue = self._own
        if not queue.running:
            queue.start_runner(backend, node=node, machinery=RunMachinery(
                self._output_dir, log_dir=self._log_dir, record_hooks=(self.record,)))
        return RunQueue(queue, node, lambda: queue.running)

    async def _follow(self, run_queue: RunQueue, job_id: str, token: CancelToken) -> None:
        """Wait until no image of the job is waiting or in flight; Stop cancels the job."""
        def queue_stopped(error: ErrorInfo | None) -> RunNotQueued:
            return RunNotQueued(
                error.message if error is not None else
                "The queue stopped before this Run finished. Press Run again.",
                detail=error.detail if error is not None else f"queue job {job_id}")

        await self._follower.follow(run_queue, job_id, stop=lambda: token.cancelled,
                                    failure=lambda: self._node_failure or self._left_queued,
                                    queue_stopped=queue_stopped)

    def _wake(self) -> None:
        self._follower.wake()

    def _start_following(self, job_id: str) -> None:
        self._job_id = job_id
        self._plan_total = None
        self._follower.reset()
        self._node_failure = None
        self._shown = ShownRun(started=time.monotonic())
        with self._lock:
            self._pending.clear()  # nothing of an earlier Run is shown as this one's

    def _finish_run(self, counts: JobCounts | None) -> None:
        """One RunFinished for the whole Run, worded as the runner words a run's end."""
        shown, p = self._shown, self._progress
        total = self._plan_total or 0
        saved, failed = p.images_saved, shown.failed
        seconds = time.monotonic() - shown.started
        stopped = self._token is not None and self._token.cancelled
        if stopped or (counts is not None and counts.cancelled):  # Stop, or the queue panel
            status, message = RunStatus.cancelled, f"Stopped. {plural(saved, 'image')} kept."
        elif saved >= total:
            status, message = RunStatus.completed, f"{plural(saved, 'image')} saved."
        elif saved == 0:
            status = RunStatus.failed
            message = f"No image was saved: {shown.first_error or 'no image could be made'}"
        else:
            status = RunStatus.partial
            message = (f"{saved} of {plural(total, 'image')} saved; {total - saved} did not "
                       "finish.")
        if status is RunStatus.completed:
            self._progress = replace(p, overall_fraction=1.0)
        self.run_finished.emit(RunFinished(self._job_id or "", status, saved, failed, seconds,
                                           message))
        self.message_changed.emit(message)

    # --- events → signals -------------------------------------------------------------------

    def record(self, record: ImageRecord) -> None:
        """Hand one saved image's record to the record hooks (the learning store): the queue's
        runners call this for every image they save, once."""
        for hook in list(self._record_hooks):
            hook(record)

    def _on_queue_event(self, event: QueueEvent) -> None:
        """An event of the Run's queue job (on the loop's thread); shown at the next flush."""
        from stablenew.cluster.jobs import ItemState
        from stablenew.cluster.queue_events import ItemFinished, ItemProgress, ItemStarted

        if isinstance(event, ItemStarted):
            self._follower.started(event.item.index)
        elif isinstance(event, ItemFinished):
            self._follower.finished(event.item.index)
            if event.fatal_for_node and self._node_failure is None:
                self._node_failure = NodeFailed(event.message, detail=event.detail)
        elif not isinstance(event, ItemProgress):
            self._wake()
            return
        index = event.item.index
        inner: ShownEvent = event.event if isinstance(event, ItemProgress) else event
        if isinstance(event, ItemFinished) and event.state is ItemState.failed:
            self._shown.failed += 1
            self._shown.first_error = self._shown.first_error or event.message
        with self._lock:
            if isinstance(inner, ProgressUpdate):
                if inner.preview:
                    self._latest_preview = inner.preview
                # Only the newest progress of an image matters: drop its older one still waiting.
                if self._pending and self._pending[-1][0] == index and \
                        isinstance(self._pending[-1][1], ProgressUpdate):
                    self._pending.pop()
            self._pending.append((index, inner))
        if not isinstance(event, ItemProgress):
            self._wake()

    def _flush(self) -> None:
        if self._job_id is not None and self._plan_total is None:
            return  # the job's size is not known yet: its first events wait for it
        with self._lock:
            events = list(self._pending)
            self._pending.clear()
            preview, self._latest_preview = self._latest_preview, None
        if not events and preview is None:
            return
        progress = self._progress
        for index, event in events:
            progress = self._apply(progress, event, index)
        progress = self._estimate(progress)
        self._progress = progress
        self.progress_changed.emit(progress)
        if preview is not None:
            self._decode_preview(preview)

    def _apply(self, p: RunProgress, event: ShownEvent, item: int = 0) -> RunProgress:
        """Fold one event of image *item* of the Run into the progress shown; a saved image,
        a warning and an error are told at once."""
        if isinstance(event, ImageSaved):
            record = event.record
            if record.image_index != item:  # the image's place in the Run, not in its item
                record = replace(record, image_index=item)
            self.image_saved.emit(record)
            if record.path:
                self._decode_preview(Path(record.path))
        elif isinstance(event, RunWarning):
            self.warning_raised.emit(event.message)
        elif isinstance(event, RunError):
            self._set_error(ErrorInfo(event.message, event.detail, "Run"))
        return fold_event(self._shown, p, event, item, self._plan_total or 1)

    def _estimate(self, p: RunProgress) -> RunProgress:
        """The bar over the whole Run and the time left for all of it: the queue's estimate of
        the Run's job (the same figure as its row), from the nodes' measured speeds."""
        eta = None
        if self._estimates is not None and self._job_id is not None:
            eta = self._estimates.job_eta(self._job_id)
        return estimate(self._shown, p, self._plan_total or 1, eta)

    def _decode_preview(self, source: bytes | Path) -> None:
        # Server frames come as bytes, saved images as their file (live: False).
        self._previews.show(source, isinstance(source, bytes))

    def _preview_decoded(self, image: DecodedImage, live: bool) -> None:
        if not live or self.state != RunState.idle:  # a frame decoded after the Run is no result
            self.preview_changed.emit(image, live)

    def _set_error(self, info: ErrorInfo | None) -> None:
        self._error = info
        self.error_changed.emit(info)

    def clear_error(self) -> None:
        self._set_error(None)

    # --- PNG drop / "use these settings" ----------------------------------------------------

    def load_from_image(self, path: str | Path) -> None:
        """Read an image's A1111/StableNew settings off the Qt thread and show them in the cards."""
        self.tasks.spawn(self._load_from_image(Path(path)), name="load-image-settings")

    async def _load_from_image(self, path: Path) -> None:
        from stablenew.pipeline.infotext_config import config_from_image

        try:
            config, loaded, unknown = await asyncio.to_thread(config_from_image, path,
                                                              base=self._config)
        except Exception as exc:  # noqa: BLE001 - an image whose settings cannot be read is shown, not raised
            self._set_error(error_from_exception(exc, "Image settings"))
            return
        self.load_config(config)
        message = f"Loaded {len(loaded)} setting{'s' if len(loaded) != 1 else ''} from {path.name}"
        if loaded:
            shown = ", ".join(loaded[:6]) + (f" and {len(loaded) - 6} more" if len(loaded) > 6 else "")
            message += f" ({shown})"
        message += "."
        if unknown:
            message += f" Not understood: {', '.join(unknown)}."
        self.message_changed.emit(message)

    async def aclose(self, *, keep_queued: bool = False) -> None:
        """Stop following the Run. Its job is cancelled, unless *keep_queued* (the user closed
        the window to stop and resume next time): then what is left of it stays in the queue."""
        if self._token is not None and not keep_queued:
            self._token.cancel()
        elif self._token is not None:
            # Ended by the follower itself, not only by cancelling its task: a cancellation
            # can be lost in a wait that finishes at the same moment (Python 3.11's wait_for).
            self._left_queued = _LeftQueued()
            self._wake()
        await self.tasks.aclose(timeout=3)
