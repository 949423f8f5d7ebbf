"""Events the runner emits while it works; plain frozen dataclasses, no Qt.

The controller turns them into Qt signals (coalescing bursts); the CLI prints them; the
JSON-lines run log records them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from stablenew.pipeline.records import ImageRecord


class EventKind(StrEnum):
    """Every kind of event the core emits: the runner's, then the queue's
    (`cluster.queue_events`). Each event class names its kind in `kind`."""

    run_started = "run_started"
    stage_started = "stage_started"
    stage_finished = "stage_finished"
    progress = "progress"
    image_saved = "image_saved"
    warning = "warning"
    error = "error"
    run_finished = "run_finished"
    item_started = "item_started"
    item_progress = "item_progress"
    item_finished = "item_finished"
    job_finished = "job_finished"
    node_problem = "node_problem"
    waiting = "waiting"


class RunStatus(StrEnum):
    completed = "completed"  # every image went through every enabled stage
    partial = "partial"  # some images failed, the rest were saved
    cancelled = "cancelled"
    failed = "failed"  # nothing useful came out, or the node became unusable


@dataclass(frozen=True)
class RunStarted:
    kind: ClassVar[EventKind] = EventKind.run_started
    run_id: str
    total_images: int
    stages: tuple[str, ...]
    output_dir: Path
    node: str


@dataclass(frozen=True)
class StageStarted:
    kind: ClassVar[EventKind] = EventKind.stage_started
    stage: str
    index: int  # 1-based position of the stage in the enabled chain
    count: int  # number of enabled stages
    image_index: int


@dataclass(frozen=True)
class StageFinished:
    kind: ClassVar[EventKind] = EventKind.stage_finished
    stage: str
    index: int
    count: int
    image_index: int
    seconds: float


@dataclass(frozen=True)
class ProgressUpdate:
    kind: ClassVar[EventKind] = EventKind.progress
    stage: str
    image_index: int
    step: int | None
    steps: int | None
    stage_fraction: float  # 0..1 within the current stage of the current image
    overall_fraction: float  # 0..1 of the whole run
    eta_seconds: float | None  # whole run; None until there is a measurement
    preview: bytes | None = None
    phase: str = ""  # the sampling pass the steps count ("hires"), as in backends.types.Progress
    more_passes: bool = False  # another pass follows in this stage (hires after the first pass)


@dataclass(frozen=True)
class ImageSaved:
    kind: ClassVar[EventKind] = EventKind.image_saved
    record: ImageRecord


@dataclass(frozen=True)
class RunWarning:
    kind: ClassVar[EventKind] = EventKind.warning
    message: str
    image_index: int | None = None


@dataclass(frozen=True)
class RunError:
    kind: ClassVar[EventKind] = EventKind.error
    message: str  # plain words for the user
    detail: str = ""  # for logs and the "details" expander
    image_index: int | None = None
    fatal: bool = False  # the run stops (node unusable)


@dataclass(frozen=True)
class RunFinished:
    kind: ClassVar[EventKind] = EventKind.run_finished
    run_id: str
    status: RunStatus
    images_saved: int
    images_failed: int
    seconds: float
    message: str = ""


RunEvent = (
    RunStarted | StageStarted | StageFinished | ProgressUpdate | ImageSaved | RunWarning
    | RunError | RunFinished
)
EventCallback = Callable[[RunEvent], None]
