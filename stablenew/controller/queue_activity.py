"""QueueActivity: what the queue is working on right now, in the words the command bar shows.

The queue's runner reports every image it starts, each image's progress and its end; this
keeps the image the node works on (the first one started that is still in flight), its job,
and a time left for that job from the pace measured so far, and says so at a human rate.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from stablenew.cluster.jobs import ItemState, Job, WorkItem
from stablenew.cluster.queue_events import ItemFinished, ItemProgress, ItemStarted
from stablenew.controller.format import eta_in_words
from stablenew.controller.preview_decoder import PreviewDecoder, Spawn
from stablenew.controller.run_progress import RunProgress, RunState
from stablenew.pipeline.events import ImageSaved, ProgressUpdate, StageStarted

if TYPE_CHECKING:
    from stablenew.cluster.queue_events import QueueEvent


#: How often the bar is told (it repaints no faster than a person reads).
SHOW_MS = 100
#: Finished images whose pace sets the estimate (recent ones: the node's speed may change).
PACE_SAMPLES = 8


@dataclass(frozen=True)
class QueueWork:
    """The queued image the node works on now, and its job, as the command bar shows them."""

    job_id: str
    job_name: str
    image: int  # 1-based place of the image in its job
    total: int  # images in the job (0 while not known)
    eta_seconds: float | None  # time left for the whole job; None until measured
    progress: RunProgress  # the same snapshot the status bar shows for a Run

    @property
    def details(self) -> tuple[str, ...]:
        """("image 2 of 3", "about 10 s left"): what the bar says after the job's name."""
        where = (f"image {self.image} of {self.total}",) if self.total else ()
        return (*where, eta_in_words(self.eta_seconds))


@dataclass
class _InFlight:
    item: WorkItem
    job_name: str
    started: float  # monotonic
    fraction: float = 0.0
    own_eta: float | None = None  # the server's time left for this image
    update: ProgressUpdate | None = None
    stage: StageStarted | None = None


class QueueActivity(QObject):
    """Follows the queue's events (on the loop's thread) and emits `changed(QueueWork | None)`,
    and `preview_changed(DecodedImage, caption)` with the live preview of what runs (decoded
    off the Qt thread) and each image the queue saves."""

    changed = Signal(object)
    preview_changed = Signal(object, str)

    def __init__(self, job_of: Callable[[str], Job | None],
                 spawn: Spawn | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._job_of = job_of  # the job as the last snapshot of the queue has it (counts)
        # Decoded in the queue's TaskOwner: closed with the queue.
        self._previews = (PreviewDecoder[str](spawn, self.preview_changed.emit, name="queue-preview")
                          if spawn is not None else None)
        self._in_flight: dict[int, _InFlight] = {}
        self._finished_at: deque[float] = deque(maxlen=PACE_SAMPLES + 1)  # monotonic
        self._shown: QueueWork | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SHOW_MS)
        self._timer.timeout.connect(self._show)

    @property
    def current(self) -> QueueWork | None:
        return self._shown

    def on_event(self, event: QueueEvent) -> None:
        if isinstance(event, ItemStarted):
            self._in_flight[event.item.id] = _InFlight(event.item, event.job_name, time.monotonic())
        elif isinstance(event, ItemProgress):
            entry = self._in_flight.get(event.item.id)
            inner = event.event
            if entry is not None and isinstance(inner, ProgressUpdate):
                entry.fraction = inner.overall_fraction
                entry.own_eta = inner.eta_seconds
                entry.update = inner
                if inner.preview:
                    self._show_preview(inner.preview, "Live preview · " + entry.job_name)
            elif isinstance(inner, ImageSaved) and inner.record.path:
                name = entry.job_name if entry is not None else ""
                self._show_preview(Path(inner.record.path), "Latest result · " + name)
            elif entry is not None and isinstance(inner, StageStarted):
                entry.stage = inner
                entry.update = None
        elif isinstance(event, ItemFinished):
            entry = self._in_flight.pop(event.item.id, None)
            if entry is not None and event.state is ItemState.done:
                self._finished_at.append(time.monotonic())
        else:
            return
        if not self._timer.isActive():
            self._timer.start()

    def clear(self) -> None:
        """The queue stopped: nothing of it is in flight any more."""
        self._in_flight.clear()
        self._show()

    def _show_preview(self, source: bytes | Path, caption: str) -> None:
        if self._previews is not None:
            self._previews.show(source, caption)

    def refresh(self) -> None:
        """The queue's snapshot changed (a job's counts): say it again at the next turn."""
        if self._in_flight and not self._timer.isActive():
            self._timer.start()

    def _seconds_per_image(self, current: _InFlight) -> float | None:
        done = self._finished_at
        if len(done) >= 2:
            # Throughput (images at the node overlap): the spacing of recent finishes.
            return (done[-1] - done[0]) / (len(done) - 1)
        if current.own_eta is not None:
            return (time.monotonic() - current.started) + current.own_eta
        return None

    def _work(self) -> QueueWork | None:
        if not self._in_flight:
            return None
        # The node renders the image it was sent first; the next ones wait behind it.
        current = min(self._in_flight.values(), key=lambda e: (e.started, e.item.id))
        job = self._job_of(current.item.job_id)
        total = job.counts.total if job is not None else 0
        left_after = 0
        if job is not None:
            c = job.counts
            left_after = max(0, c.queued + c.assigned + c.running - 1)
        eta: float | None = None
        per_image = self._seconds_per_image(current)
        if current.own_eta is not None and per_image is not None:
            eta = current.own_eta + left_after * per_image
        elif per_image is not None:
            eta = max(0.0, per_image - (time.monotonic() - current.started)) + left_after * per_image
        update, stage = current.update, current.stage
        finished = (total - left_after - 1) if total else 0
        progress = RunProgress(
            state=RunState.running,
            stage=stage.stage if stage else (update.stage if update else ""),
            stage_index=stage.index if stage else 1, stage_count=stage.count if stage else 1,
            image_index=current.item.index, total_images=total,
            step=update.step if update else None, steps=update.steps if update else None,
            stage_fraction=update.stage_fraction if update else 0.0,
            overall_fraction=min(1.0, (max(0, finished) + current.fraction) / total) if total else 0.0,
            eta_seconds=eta, node=current.item.node or "")
        return QueueWork(current.item.job_id, current.job_name, current.item.index + 1, total, eta,
                         progress)

    def _show(self) -> None:
        work = self._work()
        if work is None and self._shown is None:
            return
        self._shown = work
        self.changed.emit(work)
