"""The queue as one node's worker sees it: `WorkerStore`, what a `QueueRunner` needs of the
queue, and `ScheduledStore`, the cluster's version whose claims the dispatcher decides."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

from stablenew.cluster.jobs import Claim, ItemState, Job, WorkItem
from stablenew.cluster.queue_reads import QueueReads
from stablenew.cluster.queue_store import MAX_RETRIES, QueueStore, StoreBusy

T = TypeVar("T")
P = ParamSpec("P")

CanTake = Callable[[WorkItem, Job], bool]


class WorkerStore(Protocol):
    """What a node's worker needs of the queue: its reads, claims and the moves of the items
    it holds. `QueueStore` is one; the cluster gives each worker a `ScheduledStore`."""

    @property
    def path(self) -> Path: ...

    @property
    def reads(self) -> QueueReads: ...

    def call_nowait(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

    def checkpoint(self) -> None: ...

    def recover(self) -> list[WorkItem]: ...

    def claim_next(self, node: str, *, can_take: CanTake | None = None, now: float | None = None,
                   scan: int = ..., start: bool = False) -> Claim | None: ...

    def mark_running(self, item_id: int, lease: str, *, now: float | None = None) -> bool: ...

    def complete(self, item_id: int, lease: str, outputs: Sequence[str | Path], *,
                 now: float | None = None) -> bool: ...

    def complete_and_check(self, item_id: int, lease: str, outputs: Sequence[str | Path], *,
                           now: float | None = None) -> tuple[bool, bool]: ...

    def complete_and_claim(self, item_id: int, lease: str, outputs: Sequence[str | Path],
                           node: str, *, job_id: str | None = None, start: bool = True,
                           now: float | None = None) -> tuple[bool, bool, Claim | None]: ...

    def fail(self, item_id: int, lease: str, message: str, *, detail: str = "",
             transient: bool = False, max_retries: int = MAX_RETRIES, backoff_base: float = 2.0,
             now: float | None = None) -> ItemState | None: ...

    def release(self, item_id: int, lease: str) -> bool: ...


class Dispatch(Protocol):
    """The dispatcher as a node's worker reaches it: it decides each claim and hears how each
    item ended (speeds, VRAM limits, free slots)."""

    def claim_for(self, node: str, can_take: CanTake | None, *, now: float | None = None,
                  scan: int = 0, start: bool = False) -> Claim | None: ...

    def item_finished(self, node: str, item_id: int, *, done: bool, message: str = "",
                      detail: str = "") -> None: ...


class ScheduledStore:
    """The queue store as one node's worker in the cluster sees it: its claims go through the
    dispatcher, and the outcomes of its items are reported back."""

    def __init__(self, store: QueueStore, dispatch: Dispatch, node: str) -> None:
        self._store = store
        self._dispatch = dispatch
        self._node = node
        self.path = store.path
        self.reads = store.reads

    def call_nowait(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        # A claim here is the dispatcher's decision, made under its lock: never on the loop.
        raise StoreBusy("a cluster worker's moves run in its database thread")

    def checkpoint(self) -> None:
        self._store.checkpoint()

    def recover(self) -> list[WorkItem]:
        return self._store.recover()

    def claim_next(self, node: str, *, can_take: CanTake | None = None, now: float | None = None,
                   scan: int = 0, start: bool = False) -> Claim | None:
        # scan 0: the dispatcher looks as far into the queue as it plans (its window).
        return self._dispatch.claim_for(self._node, can_take, now=now, scan=scan, start=start)

    def mark_running(self, item_id: int, lease: str, *, now: float | None = None) -> bool:
        return self._store.mark_running(item_id, lease, now=now)

    def complete(self, item_id: int, lease: str, outputs: Sequence[str | Path], *,
                 now: float | None = None) -> bool:
        done = self._store.complete(item_id, lease, outputs, now=now)
        self._dispatch.item_finished(self._node, item_id, done=done)
        return done

    def complete_and_check(self, item_id: int, lease: str, outputs: Sequence[str | Path], *,
                           now: float | None = None) -> tuple[bool, bool]:
        done, left = self._store.complete_and_check(item_id, lease, outputs, now=now)
        self._dispatch.item_finished(self._node, item_id, done=done)
        return done, left

    def complete_and_claim(self, item_id: int, lease: str, outputs: Sequence[str | Path],
                           node: str, *, job_id: str | None = None, start: bool = True,
                           now: float | None = None) -> tuple[bool, bool, Claim | None]:
        """Two steps here, not one transaction: the next claim is the dispatcher's decision,
        made once this item's outcome is known to it."""
        done, left = self.complete_and_check(item_id, lease, outputs, now=now)
        return done, left, self.claim_next(node, now=now, start=start)

    def fail(self, item_id: int, lease: str, message: str, *, detail: str = "",
             transient: bool = False, max_retries: int = MAX_RETRIES, backoff_base: float = 2.0,
             now: float | None = None) -> ItemState | None:
        state = self._store.fail(item_id, lease, message, detail=detail, transient=transient,
                                 max_retries=max_retries, backoff_base=backoff_base, now=now)
        self._dispatch.item_finished(self._node, item_id, done=False, message=message,
                                     detail=detail)
        return state

    def release(self, item_id: int, lease: str) -> bool:
        released = self._store.release(item_id, lease)
        self._dispatch.item_finished(self._node, item_id, done=False)
        return released
