"""What the funnel's view shows, as plain values: a stage's images as tiles, the breadcrumb, the
earlier funnels to reopen and the offer to queue stopped images again (FunnelController makes
them)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from stablenew.cluster.funnel import Funnel, FunnelStage
from stablenew.cluster.jobs import ItemState, WorkItem
from stablenew.controller.format import plural

#: The longest side of a funnel tile's picture.
THUMB_SIDE = 160

#: The queue states of an image still to come (queued, or at a node).
UNDER_WAY = (ItemState.queued, ItemState.assigned, ItemState.running)

#: What a tile says of an image that is not there yet, by its queue state.
WAITING_TEXT = {ItemState.queued: "Waiting", ItemState.assigned: "Starting",
                ItemState.running: "Being made", ItemState.failed: "Could not be made",
                ItemState.cancelled: "Cancelled", ItemState.done: "Made"}


@dataclass(frozen=True)
class FunnelImage:
    """One image of the stage looked at, as its tile shows it."""

    index: int
    seed: int
    path: str | None
    state: ItemState
    picked: bool
    error: str = ""

    @property
    def caption(self) -> str:
        if self.path is not None:
            return f"✓ Picked — seed {self.seed}" if self.picked else f"Seed {self.seed}"
        return f"{WAITING_TEXT[self.state]} — seed {self.seed}"


@dataclass(frozen=True)
class Crumb:
    """One stage in the breadcrumb: its label, and whether it is made and looked at."""

    stage: FunnelStage
    made: bool
    current: bool


@dataclass(frozen=True)
class PastFunnel:
    """An earlier funnel in the list to reopen: its id and how the list says it."""

    id: str
    words: str


@dataclass(frozen=True)
class AgainOffer:
    """The images of the stage looked at that stopped (cancelled, failed, or their job gone from
    the queue) and may be queued once more."""

    stage: FunnelStage
    count: int

    @property
    def label(self) -> str:
        return f"{self.stage.verb} again — {plural(self.count, 'image')}"


def with_made(funnel: Funnel, states: dict[str, list[WorkItem]]) -> Funnel:
    """*funnel* with the images its stages' queue items have made (itself when none is new)."""
    for index, run in enumerate(funnel.runs):
        images = list(run.images)
        for item in states.get(run.job_id, []):
            if (item.state is ItemState.done and item.outputs and 0 <= item.index < len(images)
                    and images[item.index] != item.outputs[-1]):
                images[item.index] = item.outputs[-1]
        if images != run.images:
            funnel = funnel.with_images(index, images)
    return funnel


def past_words(funnel: Funnel) -> str:
    """An earlier funnel as its list says it: prompt, the stage reached, picks and when."""
    run = funnel.runs[-1] if funnel.runs else None
    stage = run.stage.label if run is not None else "Nothing made"
    picks = sum(len(r.picks) for r in funnel.runs)
    made = time.localtime(funnel.created_at)
    when = f"{made.tm_mday} {time.strftime('%b %H:%M', made)}"
    return f"{funnel.name} — {stage}, {plural(picks, 'pick')} — {when}"
