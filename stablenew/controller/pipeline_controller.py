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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.fields import FieldSpec, field_specs
from stablenew.controller.format import plural
from stablenew.controller.images import decode_image
from stablenew.controller.job_follow import JobFollower
from stablenew.controller.run_progress import RunProgress, RunState
from stablenew.controller.tasks import TaskOwner
from stablenew.errors import StableNewError
from stablenew.pipeline import config as cfg
from stablenew.pipeline.events import (
    ImageSaved,
    ProgressUpdate,
    RunError,
    RunFinished,
    RunStarted,
    RunStatus,
    RunWarning,
    StageFinished,
    StageStarted,
)

log = logging.getLogger("stablenew.controller.pipeline")

#: Repaint rate for progress: fast enough to feel live, slow enough to never flood the Qt thread.
FLUSH_INTERVAL_MS = 80
PREVIEW_SIDE = 768

def _default_of(path: str) -> Any:
    """The PipelineConfig model's default for a dotted field path."""
    node: Any = cfg.PipelineConfig().model_dump(mode="json")
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node.get(part)
        if node is None:
            return None
    return node


# Which server listing fills which picker (by the field's last name, or its full path).
_OPTION_SOURCES = {
    "txt2img.checkpoint": "checkpoints",
    "txt2img.refiner.checkpoint": "checkpoints",
    "txt2img.sampler": "samplers",
    "img2img.sampler": "samplers",
    "txt2img.scheduler": "schedulers",
    "img2img.scheduler": "schedulers",
    "txt2img.hires.upscaler": "upscalers",
    "upscale.upscaler": "upscalers",
    "upscale.upscaler_2": "upscalers",
    "adetailer.passes.0.model": "adetailer_models",
    "adetailer.passes.1.model": "adetailer_models",
}
# The ADetailer card shows two detector passes, as ADetailer's own UI opens with two tabs, each
# with its own switch. Passes after the second (a preset's or an image's third) are not on the
# card: they are kept in their places and run, whether the second runs or not.
#: What the second pass shows before it is used: hands, the usual second detector after faces,
#: switched off until the user turns it on.
_SECOND_PASS_DEFAULTS = {"model": "hand_yolov8n.pt", "enabled": False}
#: How the card names each pass's switch (the model's title is "Run this pass").
_PASS_SWITCHES = {
    0: ("First pass", "Run the first detector. Off skips this pass only: the second and any "
                      "later pass still run in their own places."),
    1: ("Second pass", "Run a second detector after the first, e.g. hands after faces. Off "
                       "skips this pass only: a third pass loaded from a preset or an image "
                       "still runs."),
}
_LATENT_UPSCALERS = ("Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (nearest)")


@dataclass(frozen=True)
class RunQueue:
    """Where Run's work goes: the queue (a QueueController) working on *node*, the preferred
    node its job is pinned to, and whether the queue still works (False: its runner stopped,
    so nothing would ever take the job)."""

    queue: Any
    node: str
    working: Callable[[], bool]
    #: Awaited when the Run is over (the window stops a runner it started only for the Run).
    finished: Callable[[], Awaitable[None]] | None = None


class RunNotQueued(StableNewError):
    """The queue could not take or finish a Run (it stopped, it could not be opened)."""


class _LeftQueued(Exception):
    """The window closes to stop and resume next time: the Run stops following its job and
    leaves what is left of it in the queue."""


class NodeFailed(StableNewError):
    """The node a Run was pinned to stopped answering or cannot be used."""

    fatal_for_node = True


@dataclass
class _ShownRun:
    """What the window has shown of the Run so far (Qt thread only)."""

    started: float  # monotonic
    first_started: float | None = None  # monotonic: the node turned to the Run's first image
    fractions: dict[int, float] = field(default_factory=dict)  # image in flight -> its fraction
    etas: dict[int, float | None] = field(default_factory=dict)  # image in flight -> its ETA
    stages: dict[int, StageStarted] = field(default_factory=dict)  # image -> its latest stage
    finished: int = 0  # images done, failed or cancelled
    failed: int = 0
    done_at: list[float] = field(default_factory=list)  # monotonic
    #: Images in flight whose picture is already saved: the counter has moved past them.
    saved: set[int] = field(default_factory=set)
    current: int | None = None  # the image the node works on (the first one in flight)
    current_since: float = 0.0
    first_error: str = ""


def _run_name(config: Any) -> str:
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

    def __init__(self, server: Any, output_dir: Callable[[], Path], *, log_dir: Path | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._server = server
        self._output_dir = output_dir
        self._log_dir = log_dir
        self._config = cfg.PipelineConfig()
        # The ADetailer passes the cards were loaded with (see `build_config`).
        self._card_passes = self._passes_on_card(self._config)
        self._record_hooks: list[Callable[[Any], None]] = []
        self._plan_provider: Callable[[Any], Any] | None = None
        self._queue_provider: Callable[[], Awaitable[RunQueue]] | None = None
        self._own: Any = None  # the QueueController of a controller used without a window
        # The Run's queue job: its id, images, those in flight (as events tell, at once).
        self._job_id: str | None = None
        self._estimates: Any = None  # the queue's QueueEstimates: the Run's time left
        self._plan_total: int | None = None
        self._follower = JobFollower()  # waits for the job: which images are at a node now
        self._node_failure: NodeFailed | None = None
        self._left_queued: _LeftQueued | None = None  # set as the window closes (keep_queued)
        self._shown = _ShownRun(started=0.0)
        self._values_provider: Callable[[], dict[str, Any]] | None = None
        self._token: Any = None
        self._progress = RunProgress()
        self._error: ErrorInfo | None = None
        self.tasks = TaskOwner("Run", self)
        self.tasks.error_raised.connect(self._set_error)
        # Events may arrive from worker threads; they are queued and flushed on the Qt thread.
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, Any]] = deque()  # (image of the Run, event)
        self._latest_preview: bytes | None = None
        self._decoding: asyncio.Task[None] | None = None  # the preview being decoded
        self._dirty = False
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(FLUSH_INTERVAL_MS)
        self._flush_timer.timeout.connect(self._flush)

    # --- what the cards show ----------------------------------------------------------------

    def sections(self) -> dict[str, list[FieldSpec]]:
        """Field descriptions per card section, read from the PipelineConfig model."""
        return {
            "txt2img": field_specs(cfg.Txt2ImgSettings, "txt2img."),
            "txt2img.hires": field_specs(cfg.HiresSettings, "txt2img.hires."),
            "txt2img.refiner": field_specs(cfg.RefinerSettings, "txt2img.refiner."),
            "img2img": field_specs(cfg.Img2ImgSettings, "img2img."),
            "adetailer": field_specs(cfg.ADetailerSettings, "adetailer."),
            "adetailer.passes.0": self._pass_specs(0),
            # Its switch first: the card shows it as the head of the second pass's section.
            "adetailer.passes.1": self._pass_specs(1, _SECOND_PASS_DEFAULTS),
            "upscale": field_specs(cfg.UpscaleSettings, "upscale."),
        }

    @staticmethod
    def _pass_specs(index: int, defaults: dict[str, Any] | None = None) -> list[FieldSpec]:
        """One detector pass's fields, its switch first and named for its place on the card."""
        specs = []
        for spec in field_specs(cfg.ADetailerPassSettings, f"adetailer.passes.{index}."):
            spec = replace(spec, default=(defaults or {}).get(spec.name, spec.default))
            if spec.name == "enabled":
                title, description = _PASS_SWITCHES[index]
                spec = replace(spec, title=title, description=description)
            specs.append(spec)
        return sorted(specs, key=lambda spec: spec.name != "enabled")

    def choices(self, path: str) -> list[str]:
        """Names the connected server offers for a picker field ([] when not a picker or unknown)."""
        source = _OPTION_SOURCES.get(path)
        caps = self._server.capabilities if self._server is not None else None
        if source is None or caps is None:
            return []
        names = list(getattr(caps, source, ()) or ())
        if path == "txt2img.hires.upscaler":
            names = [n for n in _LATENT_UPSCALERS if n not in names] + names
        if path == "upscale.upscaler_2":
            names = ["None", *[n for n in names if n != "None"]]
        return names

    def fallback_choice(self, path: str, current: Any) -> str | None:
        """A value the server has, for a picker still on the model's default that the server
        lacks ("R-ESRGAN 4x+" on a node without upscale models); None: keep the current one.

        A value the user or a preset chose is kept (the picker marks it as not installed).
        """
        if _OPTION_SOURCES.get(path) != "upscalers":
            return None  # a checkpoint or sampler left empty means "the server's own"
        names = self.choices(path)
        if not names or current in names or current != _default_of(path):
            return None
        plain = {"none", "lanczos", "nearest"}
        models = [n for n in names if n.lower() not in plain and not n.lower().startswith("latent")]
        if models:
            return models[0]
        return next((n for n in ("Lanczos", "None") if n in names), names[0])

    def is_picker(self, path: str) -> bool:
        return path in _OPTION_SOURCES

    @property
    def config(self) -> Any:
        """The config of the last run or the last one loaded (a PipelineConfig)."""
        return self._config

    @staticmethod
    def values_of(config: Any) -> dict[str, Any]:
        """Flatten a config into the dotted paths the cards use."""
        values: dict[str, Any] = {}

        def walk(node: Any, prefix: str) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    walk(value, f"{prefix}{key}.")
            elif isinstance(node, list):
                for index, value in enumerate(node):
                    walk(value, f"{prefix}{index}.")
            else:
                values[prefix[:-1]] = node

        walk(config.model_dump(mode="json"), "")
        passes = config.adetailer.passes
        if len(passes) < 2:  # the card's second pass shows what it would run once switched on
            second = cfg.ADetailerPassSettings(**_SECOND_PASS_DEFAULTS).model_dump(mode="json")
            values.update({f"adetailer.passes.1.{key}": value for key, value in second.items()})
        # The References sections take their units as one list (none is a value too).
        for stage in (config.txt2img, config.img2img):
            name = "txt2img" if stage is config.txt2img else "img2img"
            values[f"{name}.references"] = [r.model_dump(mode="json") for r in stage.references]
        return values

    def build_config(self, values: dict[str, Any]) -> Any:
        """A validated PipelineConfig from card values; raises ConfigInvalid in plain words."""
        data = self._config.model_dump(mode="json")
        # The passes as the cards were loaded, the second one always in its place (on or off),
        # so a pass after it keeps its place and nothing depends on the last Run's config.
        passes = data["adetailer"]["passes"] = [dict(p) for p in self._card_passes]
        for path, value in values.items():
            cfg.set_path(data, path, value)
        if len(passes) == 2 and not passes[1].get("enabled", True):
            # A second pass that is off and has no pass after it changes nothing: left out, so
            # a preset saved from the cards stays as small as one made before it existed.
            del passes[1]
        return cfg.validate_config(data)

    @staticmethod
    def _passes_on_card(config: Any) -> list[dict[str, Any]]:
        """The config's detector passes with a second one in place (defaults when it has none)."""
        passes = [p.model_dump(mode="json") for p in config.adetailer.passes]
        if len(passes) < 2:
            passes.insert(1, cfg.ADetailerPassSettings(**_SECOND_PASS_DEFAULTS).model_dump(mode="json"))
        return passes

    def default_values(self) -> dict[str, Any]:
        return self.values_of(cfg.PipelineConfig())

    def set_values_provider(self, provider: Callable[[], dict[str, Any]] | None) -> None:
        """Where the current card values come from (the window's pipeline panel)."""
        self._values_provider = provider

    def current_config(self) -> Any:
        """The config the cards show now (the last valid one if the cards hold an invalid value)."""
        if self._values_provider is not None:
            try:
                return self.build_config(self._values_provider())
            except (cfg.ConfigInvalid, ValueError):
                pass
        return self._config

    def load_config(self, config: Any) -> None:
        """Show *config* in the cards (a preset applied, "use these settings", a dropped PNG)."""
        self._config = config
        self._card_passes = self._passes_on_card(config)
        self.config_loaded.emit(self.values_of(config))

    # --- collaborators ----------------------------------------------------------------------

    def add_record_hook(self, hook: Callable[[Any], None]) -> None:
        """Called with each saved ImageRecord (the learning store subscribes here)."""
        self._record_hooks.append(hook)

    def set_plan_provider(self, provider: Callable[[Any], Any] | None) -> None:
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

    def run_plan(self, provider: Callable[[Any], Any]) -> bool:
        """Run the cards' config through *provider* (e.g. every prompt of a pack) instead of once."""
        values = self._values_provider() if self._values_provider is not None else {}
        return self.run(values, plan=provider)

    def run(self, values: dict[str, Any], *, plan: Callable[[Any], Any] | None = None) -> bool:
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

        self._token = CancelToken()
        self._set_error(None)
        self._progress = RunProgress(state=RunState.running, started_at=time.monotonic(),
                                     node=self._server.node_name if self._server else "")
        self.run_state_changed.emit(RunState.running)
        self.progress_changed.emit(self._progress)
        self._flush_timer.start()
        self.tasks.spawn(self._run(config, self._token, work), name="run")
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

    async def _run(self, config: Any, token: Any, work: Any) -> None:
        run_queue: RunQueue | None = None
        added = finished = False
        counts = None
        try:
            # An unreachable server is said at once, before anything is queued.
            await self._server.ensure_backend()
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
            if self._decoding is not None:
                await asyncio.wait((self._decoding,))
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
            if getattr(exc, "fatal_for_node", False):
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
    async def _built(work: Any, token: Any) -> Any:
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

    async def _own_queue(self) -> RunQueue:
        """The queue of a controller used without a window: its own runner on the server."""
        from stablenew.controller.queue_controller import QueueController
        from stablenew.pipeline.runner import PipelineRunner

        backend = await self._server.ensure_backend()
        node = self._server.node_name
        if self._own is None:
            self._own = QueueController(output_root=self._output_dir(), parent=self)
        queue = self._own
        if not queue.running:
            queue.start_runner(backend, node=node, runner=PipelineRunner(
                self._output_dir(), record_hooks=(self.record,), log_dir=self._log_dir,
                node_name=node))
        return RunQueue(queue, node, lambda: queue.running)

    async def _follow(self, run_queue: RunQueue, job_id: str, token: Any) -> None:
        """Wait until no image of the job is waiting or in flight; Stop cancels the job."""
        def queue_stopped(error: Any) -> RunNotQueued:
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
        self._shown = _ShownRun(started=time.monotonic())
        with self._lock:
            self._pending.clear()  # nothing of an earlier Run is shown as this one's

    def _finish_run(self, counts: Any) -> None:
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

    def record(self, record: Any) -> None:
        """Hand one saved image's record to the record hooks (the learning store): the queue's
        runners call this for every image they save, once."""
        for hook in list(self._record_hooks):
            hook(record)

    def _on_queue_event(self, event: Any) -> None:
        """An event of the Run's queue job (on the loop's thread); shown at the next flush."""
        from stablenew.cluster.jobs import ItemState
        from stablenew.cluster.queue_runner import ItemFinished, ItemProgress, ItemStarted

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
        inner: Any = event.event if isinstance(event, ItemProgress) else event
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

    def _apply(self, p: RunProgress, event: Any, item: int = 0) -> RunProgress:
        """Fold one event of image *item* of the Run into the progress shown.

        Several images of the Run may be in flight at once (the next one waits at the node
        while one renders): the bar covers the whole Run, and stage and steps follow the
        image the node works on, the first one in flight.
        """
        from stablenew.cluster.jobs import ItemState
        from stablenew.cluster.queue_runner import ItemFinished, ItemStarted

        shown = self._shown
        total = self._plan_total or 1
        if isinstance(event, ItemStarted):
            shown.fractions[item] = 0.0
            if shown.first_started is None:
                shown.first_started = time.monotonic()
        elif isinstance(event, ItemFinished):
            shown.fractions.pop(item, None)
            shown.etas.pop(item, None)
            shown.saved.discard(item)
            if event.state in (ItemState.done, ItemState.failed, ItemState.cancelled):
                shown.finished += 1
                if event.state is ItemState.done:
                    shown.done_at.append(time.monotonic())
        elif isinstance(event, RunStarted):
            p = replace(p, total_images=total, stage_count=len(event.stages),
                        node=event.node or p.node)
        elif isinstance(event, StageStarted):
            shown.stages[item] = event
        elif isinstance(event, StageFinished):
            if item == shown.current:
                p = replace(p, stage_fraction=1.0)
        elif isinstance(event, ProgressUpdate):
            if item in shown.fractions:
                shown.fractions[item] = event.overall_fraction
                shown.etas[item] = event.eta_seconds
            if item == shown.current:
                p = replace(p, stage=event.stage or p.stage, image_index=item, step=event.step,
                            steps=event.steps, stage_fraction=event.stage_fraction,
                            phase=event.phase, more_passes=event.more_passes)
        elif isinstance(event, ImageSaved):
            # The image is in hand no more: the counter names the next one at once, not only
            # when the queue's ItemFinished follows (a repaint in between showed "image 3 of 4"
            # with 3 saved, at the last step of the image just saved).
            shown.saved.add(item)
            record = event.record
            if record.image_index != item:  # the image's place in the Run, not in its item
                record = replace(record, image_index=item)
            self.image_saved.emit(record)
            if record.path:
                self._decode_preview(Path(record.path))
            p = replace(p, images_saved=p.images_saved + 1)
        elif isinstance(event, RunWarning):
            self.warning_raised.emit(event.message)
        elif isinstance(event, RunError):
            self._set_error(ErrorInfo(event.message, event.detail, "Run"))
            shown.first_error = shown.first_error or event.message
            p = replace(p, images_failed=p.images_failed + (1 if event.image_index is not None else 0))
        # RunFinished of one image is not the Run's end: `_finish_run` says that once.
        current = min((i for i in shown.fractions if i not in shown.saved), default=None)
        if current != shown.current:
            shown.current = current
            shown.current_since = time.monotonic()
            stage = shown.stages.get(current) if current is not None else None
            if stage is not None:
                p = replace(p, stage=stage.stage, stage_index=stage.index, stage_count=stage.count,
                            image_index=current, step=None, steps=None, stage_fraction=0.0,
                            phase="", more_passes=False)
            else:  # between images: no step of the one just saved stays on show
                p = replace(p, step=None, steps=None, phase="", more_passes=False)
        elif isinstance(event, StageStarted) and item == current:
            p = replace(p, stage=event.stage, stage_index=event.index, stage_count=event.count,
                        image_index=item, step=None, steps=None, stage_fraction=0.0,
                        phase="", more_passes=False)
        return p

    def _estimate(self, p: RunProgress) -> RunProgress:
        """The bar over the whole Run and the time left for all of it: the queue's estimate of
        the Run's job (the same figure as its row), from the nodes' measured speeds."""
        shown = self._shown
        total = self._plan_total or 1
        overall = (shown.finished + sum(shown.fractions.values())) / total
        eta = None
        current = shown.current
        own = shown.etas.get(current) if current is not None else None
        if self._estimates is not None and self._job_id is not None:
            eta = self._estimates.job_eta(self._job_id)
        if eta is None and own is not None:  # nothing measured yet: the runner's own guess
            left = max(0, total - shown.finished - 1)  # images after the one rendering now
            if left and shown.done_at:
                # Throughput so far (with images in flight at once, not each one's duration),
                # from the first image's start: time spent waiting behind others is not the Run's.
                began = shown.first_started if shown.first_started is not None else shown.started
                per_image = (shown.done_at[-1] - began) / len(shown.done_at)
            elif left:
                per_image = (time.monotonic() - shown.current_since) + own
            else:
                per_image = 0.0
            eta = own + left * per_image
        return replace(p, overall_fraction=max(p.overall_fraction, min(1.0, overall)),
                       eta_seconds=eta)

    def _decode_preview(self, source: bytes | Path) -> None:
        if self._decoding is not None:
            if isinstance(source, bytes):
                self._latest_preview = source  # decoded after the one in flight
            return
        self._decoding = self.tasks.spawn(self._decode(source), name="preview")

    async def _decode(self, source: bytes | Path) -> None:
        try:
            image = await asyncio.to_thread(decode_image, source, PREVIEW_SIDE)
            # Server frames come as bytes, saved images as their file.
            self.preview_changed.emit(image, isinstance(source, bytes))
        except (OSError, ValueError) as exc:  # a broken preview frame is not worth an error banner
            log.debug("preview not decodable: %s", exc)
        finally:
            self._decoding = None

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
        from stablenew.pipeline.infotext import config_from_image

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
