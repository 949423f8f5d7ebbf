"""JobFollower: how a controller that shows one queue job (a Run, a learning run) waits for it.

One mechanism for both, since both are queue jobs the user is watching: the controller tells
the follower which images are at a node (from the job's events, which arrive at once) and wakes
it on every other event; `follow` returns when no image of the job is waiting or in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from stablenew.controller.errors import ErrorInfo

log = logging.getLogger("stablenew.controller")

#: How often the database is asked again while waiting: some changes raise no event (images
#: cancelled from the queue panel before they ran).
CHECK_S = 0.5


class FollowedQueue(Protocol):
    """What following a job asks of its queue (a QueueController)."""

    @property
    def error(self) -> ErrorInfo | None: ...
    def cancel_job(self, job_id: str) -> Awaitable[object]: ...
    async def job_unfinished(self, job_id: str) -> bool: ...


class FollowedRun(Protocol):
    """Where the followed job was queued (a RunQueue): its queue, and whether that still works."""

    @property
    def queue(self) -> FollowedQueue: ...
    @property
    def working(self) -> Callable[[], bool]: ...


class JobFollower:
    """Waits (on the controller's thread) for one queue job; a new job starts with `reset`."""

    def __init__(self) -> None:
        self.in_flight: set[Hashable] = set()
        self._changed = asyncio.Event()

    def reset(self) -> None:
        self.in_flight = set()
        self._changed = asyncio.Event()

    def started(self, item: Hashable) -> None:
        self.in_flight.add(item)

    def finished(self, item: Hashable) -> None:
        self.in_flight.discard(item)

    def wake(self) -> None:
        self._changed.set()

    async def follow(self, run_queue: FollowedRun, job_id: str, *, stop: Callable[[], bool],
                     queue_stopped: Callable[[ErrorInfo | None], BaseException],
                     failure: Callable[[], BaseException | None] = lambda: None) -> None:
        """Until nothing of *job_id* waits or runs. Once *stop()* is true the job is cancelled
        (waiting images dropped, the one at a node interrupted there); *failure()* raises at
        once; a queue whose runner stopped with images left raises *queue_stopped(error)*."""
        queue = run_queue.queue
        cancelled = False
        while True:
            if not cancelled and stop():
                # Asked again at every turn until it holds: a cancel that failed (the database
                # busy for a moment) would leave Stop saying "stopping" while images come.
                cancelled = await _cancel(queue, job_id)
            exc = failure()
            if exc is not None:
                raise exc
            # In flight is asked again after the database: an image may start meanwhile.
            if not self.in_flight and not await queue.job_unfinished(job_id) and not self.in_flight:
                return
            if not self.in_flight and not run_queue.working():
                raise queue_stopped(queue.error)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), CHECK_S)


async def _cancel(queue: FollowedQueue, job_id: str) -> bool:
    """Cancel what is left of *job_id*; True once nothing of it can start any more."""
    from stablenew.cluster.queue_store import QueueError, UnknownId

    try:
        await queue.cancel_job(job_id)
    except UnknownId:
        return True  # already cleared from the queue panel: nothing of it is left to run
    except (QueueError, OSError, sqlite3.Error) as exc:
        log.warning("stop: job %s could not be cancelled yet (%r); asking again", job_id, exc)
        return False
    return True
