"""PipelineController: card values → PipelineConfig → PipelineRunner, events → coalesced Qt signals."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.fields import FieldSpec, field_specs
from stablenew.controller.images import decode_image
from stablenew.controller.run_progress import RunProgress, RunState
from stablenew.controller.tasks import TaskOwner
from stablenew.pipeline import config as cfg
from stablenew.pipeline.events import (
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

log = logging.getLogger("stablenew.controller.pipeline")

#: Repaint rate for progress: fast enough to feel live, slow enough to never flood the Qt thread.
FLUSH_INTERVAL_MS = 80
PREVIEW_SIDE = 768

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
}
_LATENT_UPSCALERS = ("Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (nearest)")


class PipelineController(QObject):
    """Builds the config from the cards and runs it; views bind to its signals only."""

    config_loaded = Signal(object)  # dict[path, value]: the cards show these values
    run_state_changed = Signal(str)
    progress_changed = Signal(object)  # RunProgress
    preview_changed = Signal(object)  # DecodedImage
    image_saved = Signal(object)  # ImageRecord
    error_changed = Signal(object)  # ErrorInfo | None
    message_changed = Signal(str)  # plain information ("Loaded 14 settings from …")
    warning_raised = Signal(str)
    run_finished = Signal(object)  # RunFinished | None

    def __init__(self, server: Any, output_dir: Callable[[], Path], *, log_dir: Path | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._server = server
        self._output_dir = output_dir
        self._log_dir = log_dir
        self._config = cfg.PipelineConfig()
        self._record_hooks: list[Callable[[Any], None]] = []
        self._plan_provider: Callable[[Any], Any] | None = None
        self._plan_index = 0
        self._plan_total: int | None = None
        self._item_seconds: list[float] = []
        self._values_provider: Callable[[], dict[str, Any]] | None = None
        self._token: Any = None
        self._progress = RunProgress()
        self._error: ErrorInfo | None = None
        self.tasks = TaskOwner("Run", self)
        self.tasks.error_raised.connect(self._set_error)
        # Events may arrive from worker threads; they are queued and flushed on the Qt thread.
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, RunEvent]] = deque()
        self._latest_preview: bytes | None = None
        self._decoding = False
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
            "adetailer.passes.0": field_specs(cfg.ADetailerPassSettings, "adetailer.passes.0."),
            "upscale": field_specs(cfg.UpscaleSettings, "upscale."),
        }

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
        return values

    def build_config(self, values: dict[str, Any]) -> Any:
        """A validated PipelineConfig from card values; raises ConfigInvalid in plain words."""
        data = self._config.model_dump(mode="json")
        for path, value in values.items():
            cfg.set_path(data, path, value)
        return cfg.validate_config(data)

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
        self.config_loaded.emit(self.values_of(config))

    # --- collaborators ----------------------------------------------------------------------

    def add_record_hook(self, hook: Callable[[Any], None]) -> None:
        """Called with each saved ImageRecord (the learning store subscribes here)."""
        self._record_hooks.append(hook)

    def set_plan_provider(self, provider: Callable[[Any], Any] | None) -> None:
        """The randomizer's `plan_for_run(config)`; None runs the config as it is."""
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

    def run_plan(self, provider: Callable[[Any], Any]) -> bool:
        """Run the cards' config through *provider* (e.g. every prompt of a pack) instead of once."""
        values = self._values_provider() if self._values_provider is not None else {}
        return self.run(values, plan=provider)

    def run(self, values: dict[str, Any], *, plan: Callable[[Any], Any] | None = None) -> bool:
        """Start a run with exactly these card values; False (and a visible error) if they are invalid."""
        if self.state != RunState.idle:
            return False
        try:
            config = self.build_config(values)
        except (cfg.ConfigInvalid, ValueError) as exc:
            self._set_error(ErrorInfo(f"These settings cannot run: {exc}", source="Run"))
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
        self.tasks.spawn(self._run(config, self._token, plan or self._plan_provider), name="run")
        return True

    def stop(self) -> None:
        """Trip the cancel token; the state stays "stopping" until the runner has returned."""
        if self.state != RunState.running or self._token is None:
            return
        self._token.cancel()
        self._progress = replace(self._progress, state=RunState.stopping)
        self.run_state_changed.emit(RunState.stopping)
        self.progress_changed.emit(self._progress)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        await self.tasks.wait_idle(timeout)

    async def _run(self, config: Any, token: Any, plan: Callable[[Any], Any] | None) -> None:
        from stablenew.pipeline.runner import PipelineRunner

        result = None
        try:
            backend = await self._server.ensure_backend()
            runner = PipelineRunner(self._output_dir(), record_hooks=tuple(self._record_hooks),
                                    log_dir=self._log_dir, node_name=self._server.node_name)
            # A plan provider may expand the config (variants, a pack's prompts); None: run it as is.
            items = plan(config) if plan is not None else None
            self._plan_total = None
            self._item_seconds = []
            if items is None:
                result = await runner.run(config, backend, token, self._on_event)
            else:
                # Each plan item is its own runner run; progress and ETA cover the whole plan.
                count = getattr(items, "count", None)
                self._plan_total = count if isinstance(count, int) and count > 0 else None
                for index, item in enumerate(items):
                    if token.cancelled:
                        break
                    self._plan_index = index
                    result = await runner.run(item.config, backend, token, self._on_event,
                                              tags=getattr(item, "tags", None))
        except Exception as exc:
            info = error_from_exception(exc, "Run")
            log.error("run failed: %s\n%s", info.message, info.detail)
            self._set_error(info)
            if getattr(exc, "fatal_for_node", False):
                self._server.mark_failed(exc)
        finally:
            self._flush()
            self._flush_timer.stop()
            self._token = None
            self._progress = replace(self._progress, state=RunState.idle, eta_seconds=None)
            self.run_state_changed.emit(RunState.idle)
            self.progress_changed.emit(self._progress)
        if result is not None:
            log.info("run %s ended: %s", result.run_id, result.status)

    # --- events → signals -------------------------------------------------------------------

    def _on_event(self, event: RunEvent) -> None:
        with self._lock:
            if isinstance(event, ProgressUpdate):
                if event.preview:
                    self._latest_preview = event.preview
                # Only the newest progress matters: drop the older one still waiting.
                if self._pending and isinstance(self._pending[-1][1], ProgressUpdate):
                    self._pending.pop()
            # Tagged with the plan item it belongs to, which may be over by the time it is shown.
            self._pending.append((self._plan_index, event))

    def _flush(self) -> None:
        with self._lock:
            events = list(self._pending)
            self._pending.clear()
            preview, self._latest_preview = self._latest_preview, None
        if not events and preview is None:
            return
        progress = self._progress
        for index, event in events:
            progress = self._apply(progress, event, index)
        self._progress = progress
        self.progress_changed.emit(progress)
        if preview is not None:
            self._decode_preview(preview)

    def _apply(self, p: RunProgress, event: RunEvent, item: int = 0) -> RunProgress:
        total = self._plan_total
        if isinstance(event, RunStarted):
            # Without a plan count each item starts its bar again; with one it carries on.
            return replace(p, total_images=total or event.total_images, stage_count=len(event.stages),
                           node=event.node or p.node,
                           overall_fraction=p.overall_fraction if total else 0.0)
        if isinstance(event, StageStarted):
            return replace(p, stage=event.stage, stage_index=event.index, stage_count=event.count,
                           image_index=item if total else event.image_index, step=None, steps=None,
                           stage_fraction=0.0)
        if isinstance(event, StageFinished):
            return replace(p, stage_fraction=1.0)
        if isinstance(event, ProgressUpdate):
            overall, eta = event.overall_fraction, event.eta_seconds
            if total:
                overall = (item + event.overall_fraction) / total
                left = total - item - 1
                if eta is not None and left and self._item_seconds:
                    eta += left * sum(self._item_seconds) / len(self._item_seconds)
                elif left:
                    eta = None  # the length of one item is known once the first has finished
            return replace(p, stage=event.stage or p.stage,
                           image_index=item if total else event.image_index,
                           step=event.step, steps=event.steps, stage_fraction=event.stage_fraction,
                           overall_fraction=max(p.overall_fraction, min(1.0, overall)),
                           eta_seconds=eta)
        if isinstance(event, ImageSaved):
            self.image_saved.emit(event.record)
            if event.record.path:
                self._decode_preview(Path(event.record.path))
            return replace(p, images_saved=p.images_saved + 1)
        if isinstance(event, RunWarning):
            self.warning_raised.emit(event.message)
            return p
        if isinstance(event, RunError):
            self._set_error(ErrorInfo(event.message, event.detail, "Run"))
            return replace(p, images_failed=p.images_failed + (1 if event.image_index is not None else 0))
        if isinstance(event, RunFinished):
            self._item_seconds.append(event.seconds)
            self.run_finished.emit(event)
            if event.status is RunStatus.cancelled:
                self.message_changed.emit(f"Stopped. {event.images_saved} image(s) kept.")
            elif event.message:
                self.message_changed.emit(event.message)
            done = event.status is RunStatus.completed and (not total or item + 1 >= total)
            return replace(p, overall_fraction=1.0 if done else p.overall_fraction)
        return p

    def _decode_preview(self, source: bytes | Path) -> None:
        if self._decoding:
            if isinstance(source, bytes):
                self._latest_preview = source  # decoded after the one in flight
            return
        self._decoding = True
        self.tasks.spawn(self._decode(source), name="preview")

    async def _decode(self, source: bytes | Path) -> None:
        try:
            image = await asyncio.to_thread(decode_image, source, PREVIEW_SIDE)
            self.preview_changed.emit(image)
        except (OSError, ValueError) as exc:  # a broken preview frame is not worth an error banner
            log.debug("preview not decodable: %s", exc)
        finally:
            self._decoding = False

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
        except Exception as exc:
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

    async def aclose(self) -> None:
        if self._token is not None:
            self._token.cancel()
        await self.tasks.aclose(timeout=3)
