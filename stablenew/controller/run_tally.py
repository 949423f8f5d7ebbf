"""What the window has shown of a Run so far, and how each event of its queue job moves the
progress bar, the stage and step shown and the time left (Qt thread only, plain values)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from stablenew.controller.run_progress import RunProgress
from stablenew.pipeline.events import (
    ImageSaved,
    ProgressUpdate,
    RunError,
    RunStarted,
    StageFinished,
    StageStarted,
)


@dataclass
class ShownRun:
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


def fold_event(shown: ShownRun, p: RunProgress, event: object, item: int, total: int
               ) -> RunProgress:
    """Fold one event of image *item* of a Run of *total* images into the progress shown.

    Several images of the Run may be in flight at once (the next one waits at the node
    while one renders): the bar covers the whole Run, and stage and steps follow the
    image the node works on, the first one in flight.
    """
    from stablenew.cluster.jobs import ItemState
    from stablenew.cluster.queue_events import ItemFinished, ItemStarted

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
        p = replace(p, images_saved=p.images_saved + 1)
    elif isinstance(event, RunError):
        shown.first_error = shown.first_error or event.message
        p = replace(p, images_failed=p.images_failed + (1 if event.image_index is not None else 0))
    # RunFinished of one image is not the Run's end: the controller says that once.
    current = min((i for i in shown.fractions if i not in shown.saved), default=None)
    if current != shown.current:
        shown.current = current
        shown.current_since = time.monotonic()
        stage = shown.stages.get(current) if current is not None else None
        if stage is not None and current is not None:
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


def estimate(shown: ShownRun, p: RunProgress, total: int, job_eta: float | None) -> RunProgress:
    """The bar over the whole Run and the time left for all of it: *job_eta* (the queue's
    estimate of the Run's job, from the nodes' measured speeds) or, before anything is
    measured, the runner's own guess for the image rendering now and the pace so far."""
    overall = (shown.finished + sum(shown.fractions.values())) / total
    eta = job_eta
    current = shown.current
    own = shown.etas.get(current) if current is not None else None
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
