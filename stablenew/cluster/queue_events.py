"""What the queue tells its listeners: one small frozen dataclass per kind of event.

A queue item's runner events (progress, stage, image saved, ...) travel inside ItemProgress;
every event, the queue's and the runner's, says its `kind` (`pipeline.events.EventKind`), so a
listener may switch on it instead of testing types one by one. Listeners are plain typed
callbacks (`QueueEventCallback`, `pipeline.events.EventCallback`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from stablenew.cluster.jobs import ItemState, Job, WorkItem
from stablenew.pipeline.events import EventKind, RunEvent


@dataclass(frozen=True)
class ItemStarted:
    """A node took an item and sends its first request."""

    kind: ClassVar[EventKind] = EventKind.item_started
    item: WorkItem
    job_name: str
    node: str


@dataclass(frozen=True)
class ItemProgress:
    """A runner event (progress, stage, image saved, ...) of one queue item."""

    kind: ClassVar[EventKind] = EventKind.item_progress
    item: WorkItem
    event: RunEvent


@dataclass(frozen=True)
class ItemFinished:
    """An item's attempt ended: done, failed, cancelled, or back in the queue (a retry)."""

    kind: ClassVar[EventKind] = EventKind.item_finished
    item: WorkItem
    state: ItemState  # done, failed, cancelled, or queued (waiting for a retry / given back)
    message: str = ""
    retry_in: float | None = None
    detail: str = ""
    #: The attempt failed because the node is down or unusable (not because of the item).
    fatal_for_node: bool = False


@dataclass(frozen=True)
class JobFinished:
    """Every item of a job has finished (the controller raises a desktop notification)."""

    kind: ClassVar[EventKind] = EventKind.job_finished
    job: Job


@dataclass(frozen=True)
class NodeProblem:
    """The node stopped answering; the queue waits for it and says so."""

    kind: ClassVar[EventKind] = EventKind.node_problem
    node: str
    message: str
    detail: str = ""


@dataclass(frozen=True)
class Waiting:
    """Work is queued but no node can take it now: what the run waits for, said now and then."""

    kind: ClassVar[EventKind] = EventKind.waiting
    message: str


QueueEvent = ItemStarted | ItemProgress | ItemFinished | JobFinished | NodeProblem | Waiting
QueueEventCallback = Callable[[QueueEvent], None]


def job_of(event: QueueEvent) -> str | None:
    """The id of the job an event belongs to (None: the node's or the queue's own)."""
    if isinstance(event, JobFinished):
        return event.job.id
    if isinstance(event, ItemStarted | ItemProgress | ItemFinished):
        return event.item.job_id
    return None


@dataclass
class RunSummary:
    """What one `QueueRunner.run()` did."""

    done: int = 0
    failed: int = 0
    cancelled: int = 0
    retried: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
