"""What the queue tells its listeners: one small frozen dataclass per kind of event.

A queue item's runner events (progress, stage, image saved, ...) travel inside ItemProgress;
every event, the queue's and the runner's, says its `kind` (`pipeline.events.EventKind`), so a
listener may switch on it instead of testing types one by one. Listeners are plain typed
callbacks, or an `EventStream` read with `async for`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

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


E = TypeVar("E")


class EventStream(Generic[E]):
    """A callback that queues what it is given, read back with `async for` on the loop that
    made it; safe to call from any thread. `close()` ends the iteration once it is drained."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._items: deque[E] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def __call__(self, event: E) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: E) -> None:
        self._items.append(event)
        self._ready.set()

    def close(self) -> None:
        """No more events: the iteration ends after those already given."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._end)

    def _end(self) -> None:
        self._closed = True
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[E]:
        while True:
            while self._items:
                yield self._items.popleft()
            if self._closed:
                return
            self._ready.clear()
            await self._ready.wait()
