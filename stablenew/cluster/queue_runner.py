"""QueueRunner: drives the persistent queue's items through the PipelineRunner on one node.

One node, at most `depth` requests at the server (default 2: one running and the next one
already waiting in its queue, so the GPU never idles between items — A1111 stalls when many
wait). More lanes than that run items, so one item's image is written to disk while the
server already works on the next ones. Each lane claims an item, runs it with a deterministic
output name, and records the outcome in one transaction.
Transient errors retry with exponential backoff; rejections fail at once with the server's
reason; a cancelled item's request is interrupted on the node. The cluster scheduler builds
on the same claim API with a lane set per node.

A Run pressed in the window is a job of interactive priority pinned to its node. The images
already at the node finish (an image half rendered is not thrown away, as in A1111 or
SwarmUI, where a new prompt waits for the one generating); claimed images not yet sent give
way to it and go back to the queue untried. It is never retried: its failure is said at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from stablenew.backends.errors import BackendError, MissingResource
from stablenew.cluster.attempt_failure import attempt_failure
from stablenew.cluster.item_backend import ItemBackend, Turnstile
from stablenew.cluster.item_outputs import clean_attempt
from stablenew.cluster.jobs import INTERACTIVE_PRIORITY, Claim, ItemState, Job, WorkItem, output_name_prefix
from stablenew.cluster.off_loop import run_to_end
from stablenew.cluster.queue_events import (
    ItemFinished,
    ItemProgress,
    ItemStarted,
    JobFinished,
    NodeProblem,
    QueueEvent,
    QueueEventCallback,
    RunSummary,
)
from stablenew.cluster.queue_store import MAX_RETRIES, QueueStore, StoreBusy
from stablenew.cluster.runner_lock import RunnerLock
from stablenew.cluster.stall import StallLimits
from stablenew.pipeline.events import RunStatus
from stablenew.pipeline.records import RunTags

if TYPE_CHECKING:
    from stablenew.backends.protocol import Backend
    from stablenew.cluster.scheduled_store import WorkerStore
    from stablenew.pipeline.cancel import CancelToken
    from stablenew.pipeline.events import RunEvent
    from stablenew.pipeline.records import ImageRecord
    from stablenew.pipeline.runner import PipelineRunner, PromptStep, RunResult

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_STALL_LIMITS = StallLimits()


class QueueRunner:
    """Runs queue items on one Backend until stopped (or until the queue is empty)."""

    def __init__(
        self,
        store: WorkerStore,
        backend: Backend,
        *,
        runner: PipelineRunner | None = None,
        node: str | None = None,
        depth: int = 2,
        lanes: int | None = None,
        max_retries: int = MAX_RETRIES,
        backoff_base: float = 2.0,
        poll_interval: float = 0.25,
        max_node_wait: float = 30.0,
        on_event: QueueEventCallback | None = None,
        record_hooks: tuple[Callable[[ImageRecord], None], ...] = (),
        on_outputs_removed: Callable[[list[Path]], None] | None = None,
        log_dir: Path | None = None,
        thumbnails: bool = True,
        on_node_fault: Callable[[Claim, BackendError], bool] | None = None,
        on_node_lacks: Callable[[MissingResource], Awaitable[None]] | None = None,
        stall_limits: StallLimits | None = DEFAULT_STALL_LIMITS,
        prompt_step: PromptStep | None = None,
        job: str | None = None,
    ) -> None:
        """Without *runner*, one is made as `RunMachinery` makes them (for tests and benches:
        the product's paths hand in the machinery's). With *job*, only that job's images are
        taken, and `run(until_empty=True)` returns once it is finished (`stablenew run`)."""
        self.store = store
        self.job = job
        #: When a request's own progress counts as stalled (None: only its deadline counts).
        self.stall_limits = stall_limits
        # The plain store (not the cluster's wrapper, whose claims are the dispatcher's
        # decisions): a lane's per-image moves run on the event loop when they need no waiting.
        self._plain: QueueStore | None = store if isinstance(store, QueueStore) else None
        self.backend = backend
        self.node: str = node or str(getattr(backend, "name", "") or getattr(backend, "url", "")
                                     or "node")
        if runner is None:
            from stablenew.cluster.machinery import RunMachinery
            from stablenew.storage.paths import AppPaths

            runner = RunMachinery(AppPaths.default().default_output_dir, log_dir=log_dir,
                                  record_hooks=record_hooks, thumbnails=thumbnails,
                                  prompt_step=prompt_step).pipeline_runner(self.node)
        self.runner = runner
        self.depth = max(1, depth)
        # Items being worked on at once: the requests at the server plus as many whose images
        # are being written (PNG, thumbnail, fsync) meanwhile.
        self.lanes = max(self.depth, lanes if lanes is not None else 4 * self.depth)
        self._slots: Turnstile | None = None
        self._changes = 0  # counts notify() calls: lanes compare it to never miss a wake-up
        self._unsent: set[int] = set()  # in-flight items whose first request is not out yet
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.poll_interval = poll_interval
        self.max_node_wait = max_node_wait
        self._on_event = on_event
        # Images of an unfinished attempt are deleted before the item runs again; whoever
        # recorded them (the learning store) forgets them here, so a re-run never leaves a
        # second record of the same file.
        self._on_outputs_removed = on_outputs_removed
        # The cluster: an item whose node failed it (down, refused the login) may be handed
        # back untried for another node instead of spending one of its retries; the callback
        # (run in the database thread) returns True when it did so.
        self._on_node_fault = on_node_fault
        # The cluster: the node lacked what its lists showed (they went stale); the callback
        # reads them again before the item goes back, so the next plan sees what it has.
        self._on_node_lacks = on_node_lacks
        self._inflight: dict[int, tuple[str, CancelToken]] = {}
        self._priority: dict[int, int] = {}  # in-flight item -> its job's priority
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._node_ok: asyncio.Event | None = None
        self._node_lock: asyncio.Lock | None = None
        self._db_pool: ThreadPoolExecutor | None = None  # the database thread, while running
        self._loop: asyncio.AbstractEventLoop | None = None
        self.summary = RunSummary()

    # --- control (safe from any thread) ---------------------------------------------------------

    def notify(self) -> None:
        """Something changed (new job, resume): look for work now instead of at the next poll."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._changed)

    def stop(self) -> None:
        """Stop: interrupt the items in flight and give them back to the queue untouched."""
        self._stopping = True
        for _lease, token in list(self._inflight.values()):
            token.cancel()
        self.notify()

    def interrupt(self, item_id: int) -> None:
        """Stop an in-flight item now (after the store marked it cancelled)."""
        entry = self._inflight.get(item_id)
        if entry is not None:
            entry[1].cancel()

    # --- the loop ---------------------------------------------------------------------------------

    async def run(self, *, until_empty: bool = False, recover: bool = True,
                  exclusive: bool = True) -> RunSummary:
        """Work through the queue; with *until_empty*, return once nothing is left to do.

        *exclusive* takes the queue's one-runner lock; the cluster dispatcher holds that lock
        itself and runs one worker per node without it.
        """
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._node_ok = asyncio.Event()
        self._node_ok.set()
        self._node_lock = asyncio.Lock()
        self._slots = Turnstile(self.depth)
        self._stopping = False
        started = time.monotonic()
        lock = RunnerLock(self.store.path) if exclusive else None
        try:
            if lock is not None:  # file I/O that may be slow (a network drive): off the loop
                await run_to_end(lock.acquire)
            await self._db_thread()  # before the lanes: the first of them would start it here
            if recover:
                await self.recover()
            await self._work(until_empty)
        finally:
            if lock is not None:
                await run_to_end(lock.release)
            self.summary.seconds = time.monotonic() - started
        return self.summary

    async def _work(self, until_empty: bool) -> None:
        watcher = asyncio.create_task(self._watch(), name="queue-watch")
        lanes = [asyncio.create_task(self._lane(until_empty), name=f"queue-lane-{i}")
                 for i in range(self.lanes)]
        try:
            await asyncio.gather(*lanes)
        finally:
            self._stopping = True
            for lane in lanes:
                lane.cancel()
            watcher.cancel()
            await asyncio.gather(watcher, *lanes, return_exceptions=True)
            # Cancelled lanes' last calls end before the run does (the loop does not wait).
            pool, self._db_pool = self._db_pool, None
            if pool is not None:
                await run_to_end(pool.shutdown)

    async def recover(self) -> list[WorkItem]:
        """Items a crash left in flight go back to the queue, their partial outputs removed."""
        items = await self._db(self.store.recover)
        for item in items:
            await self._db(self._clean_outputs, item)
        if items:
            log.info("queue: %d item(s) a crash left in flight went back to the queue", len(items))
        return items

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # SQLite and file clean-up off the event loop, in one thread (commits are serial anyway).
        pool = await self._db_thread()
        return await asyncio.get_running_loop().run_in_executor(pool, partial(fn, *args, **kwargs))

    async def _db_thread(self) -> ThreadPoolExecutor:
        """The database thread, started from a helper thread (Thread.start waits for it)."""
        if self._db_pool is None:
            self._db_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="queue-db")
            await asyncio.to_thread(self._db_pool.submit, int)  # a call that does nothing
        return self._db_pool

    async def _hot(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A lane's per-image move (ONE transaction): on the loop's thread when the store and
        the database are free, which saves the hop to the database thread and back (a
        wake-up and a GIL hand-over each way, more than the commit itself costs); in the
        database thread otherwise, so the loop never waits for a lock."""
        if self._plain is not None:
            with contextlib.suppress(StoreBusy):
                return self._plain.call_nowait(fn, *args, **kwargs)
        return await self._db(fn, *args, **kwargs)

    async def _lane(self, until_empty: bool) -> None:
        assert self._wake is not None and self._node_ok is not None and self._slots is not None
        ahead: tuple[Claim, int] | None = None  # claimed while finishing the previous item
        try:
            while not self._stopping:
                if ahead is None:
                    await self._node_ok.wait()
                    seen = self._changes
                    # Claimed straight into running: the lane sends the request as soon as
                    # the node has a free slot, and one commit per claim keeps overhead low.
                    claim = await self._landing(lambda taken: taken, self._claim)
                    if claim is None:
                        if until_empty and not self._inflight and await self._db(
                                self._nothing_left):
                            self.notify()  # let the other lanes see it too
                            return
                        await self._idle(seen)
                        continue
                    # Taken before any other await: lanes resume in claim order, so the
                    # node's slots are handed out in the queue's order.
                    ahead = (claim, self._slots.ticket())
                claim, ticket = ahead
                ahead = None
                ahead = await self._run_claim(claim, ticket)
        finally:
            if ahead is not None:  # stopping with an item claimed but never started
                self._slots.forfeit(ahead[1])
                await run_to_end(self._give_back, self._db_pool, ahead[0].item, ahead[0].lease)

    def _give_back(self, item: WorkItem, lease: str, job: Job | None = None) -> None:
        """Give a claimed item back while stopping, with *job* what its attempt left too. A
        failure must not hide the stop: logged, not raised (the next start recovers the item)."""
        try:
            released = self.store.release(item.id, lease)
        except Exception:  # noqa: BLE001 - see the docstring: recovery gives the item back later
            log.warning("queue: %s could not be given back now; the next start recovers it",
                        item.label, exc_info=True)
            return
        if released and job is not None:  # not when it is no longer ours (done meanwhile)
            self._clean_outputs(item, job)

    async def _landing(self, claim_of: Callable[[T], Claim | None], fn: Callable[..., T],
                       *args: Any, **kwargs: Any) -> T:
        """`_hot` for a move that claims the lane's next item (*claim_of* finds it): a claim
        landing after the lane was cancelled goes back to the queue (was lost till a restart)."""
        if self._plain is not None:
            with contextlib.suppress(StoreBusy):
                return self._plain.call_nowait(fn, *args, **kwargs)
        landed: list[T] = []

        def move() -> T:
            landed.append(fn(*args, **kwargs))
            return landed[0]

        try:
            return await run_to_end(move, self._db_pool)
        except asyncio.CancelledError:
            taken = claim_of(landed[0]) if landed else None
            if taken is not None:
                await run_to_end(self._give_back, self._db_pool, taken.item, taken.lease)
            raise

    def _claim(self) -> Claim | None:
        if self.job is None:
            return self.store.claim_next(self.node, start=True)
        return self.store.claim_next(self.node, start=True, can_take=self._ours)

    def _ours(self, item: WorkItem, job: Job) -> bool:
        return job.id == self.job

    def _nothing_left(self) -> bool:
        if self.job is not None:
            return not self.store.reads.job_unfinished(self.job)
        # Paused counts as empty for --until-empty (the queue will not move until resumed),
        # unless a Run waits: a pause never holds it back. Items waiting for a retry's
        # backoff are still work left.
        if self.store.reads.next_retry_at() is None:
            return True
        return self.store.reads.is_paused() and (
            self.store.reads.top_queued_priority(self.node) or 0) < INTERACTIVE_PRIORITY

    async def _idle(self, seen: int) -> None:
        """Wait for a change, unless one came since *seen* (so a wake-up is never lost)."""
        assert self._wake is not None
        timeout = self.poll_interval
        retry_at = await self._db(self.store.reads.next_retry_at)
        if retry_at is not None:
            timeout = max(0.0, min(timeout, retry_at - time.time()))
        if self._changes != seen:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _changed(self) -> None:
        assert self._wake is not None
        self._changes += 1
        self._wake.set()

    async def _watch(self) -> None:
        """Poll for changes made elsewhere (another process, the GUI): cancel in-flight items
        that were cancelled, wake idle lanes when work appears."""
        last = -1
        while True:
            await asyncio.sleep(self.poll_interval)
            revision = await self._db(self.store.reads.revision)
            if revision == last:
                continue
            last = revision
            if self._plain is not None:
                # Commits happen on the loop's thread; the WAL's checkpoint (an fsync) here.
                await self._db(self._plain.checkpoint)
            # Judge each in-flight item against the lease it had when its state was read: a
            # lane may have finished it and claimed it again (a retry) in the meantime.
            watched = dict(self._inflight)
            states, paused, top = await self._db(self._look, list(watched))
            for item_id, (lease, token) in watched.items():
                if self._inflight.get(item_id, (None, None))[1] is not token:
                    continue
                state, current = states.get(item_id, (ItemState.cancelled, None))
                priority = self._priority.get(item_id, 0)
                if state is ItemState.cancelled or current != lease:
                    token.cancel()
                elif item_id in self._unsent and (
                        (paused and priority < INTERACTIVE_PRIORITY)
                        or (top is not None and priority < top)):
                    # Images already at the node finish; those still waiting for their turn go
                    # back to the queue untried when it is paused, or when work of a higher
                    # priority (a Run pressed in the window) waits: it goes first.
                    token.cancel()
            self.notify()

    def _look(self, item_ids: list[int]
              ) -> tuple[dict[int, tuple[ItemState, str | None]], bool, int | None]:
        top = self.store.reads.top_queued_priority(self.node) if self._unsent else None
        return self.store.reads.item_states(item_ids), self.store.reads.is_paused(), top

    async def _run_claim(self, claim: Claim, ticket: int) -> tuple[Claim, int] | None:
        """Run one claimed item; returns the lane's next item when it was claimed in the same
        round trip that recorded this one's result."""
        from stablenew.pipeline.cancel import CancelToken

        item, job = claim.item, claim.job
        token = CancelToken()
        self._inflight[item.id] = (claim.lease, token)
        self._priority[item.id] = job.priority
        self._unsent.add(item.id)
        assert self._slots is not None
        try:
            if item.state is ItemState.assigned and not await self._db(
                    self.store.mark_running, item.id, claim.lease):
                return None  # cancelled between claim and send
            self._emit(ItemStarted(item, job.name, self.node))
            return await self._execute(claim, token, ticket)
        except asyncio.CancelledError:
            # The process is stopping: give the item back untouched; it runs again later.
            await run_to_end(self._give_back, self._db_pool, item, claim.lease, job)
            raise
        finally:
            self._slots.forfeit(ticket)
            self._inflight.pop(item.id, None)
            self._priority.pop(item.id, None)
            self._unsent.discard(item.id)
            if not self._inflight:
                # Idle lanes re-check now (the queue may be empty) instead of at the next poll.
                self.notify()

    async def _execute(self, claim: Claim, token: CancelToken, ticket: int
                       ) -> tuple[Claim, int] | None:
        item, job = claim.item, claim.job
        tap = ItemBackend(self.backend, self._slots, ticket,
                        on_send=lambda: self._unsent.discard(item.id),
                        stall_limits=self.stall_limits)
        tags = RunTags(pack=job.origin.pack, preset=job.origin.preset,
                       learning_run_id=job.origin.learning_run_id, variant_id=item.variant.id,
                       variant_label=item.variant.label or job.origin.variant_label,
                       job_id=item.label)

        def forward(event: RunEvent) -> None:
            self._emit(ItemProgress(item, event))

        error: BaseException | None = None
        result: RunResult | None = None
        try:
            result = await self.runner.run(claim.config, tap, token,
                                           forward if self._on_event is not None else None,
                                           tags=tags,
                                           output_dir=Path(job.output_dir),
                                           name_prefix=output_name_prefix(item, job))
        except BackendError as exc:
            error = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unusable config: fail this item, keep going
            error = exc
            log.exception("queue: item %s crashed the runner", item.label)

        made = result if error is None and result is not None \
            and result.status is RunStatus.completed else None
        # A Stop (or a cancel) that lands after the image was saved does not unmake it: the
        # gallery and the learning store were told of it as it was saved, so it is done work.
        if token.cancelled and made is None:
            await self._after_cancel(claim)
            return None
        if made is not None:
            outputs = [str(r.path) for r in made.records]
            upcoming: Claim | None
            if self._plain is not None:
                # The fast path claims any job's next image: not for a runner of one job.
                claiming = not self._stopping and self._node_ok is not None \
                    and self._node_ok.is_set() and self.job is None
                if claiming:
                    done, unfinished, upcoming = await self._landing(
                        itemgetter(2), self._plain.complete_and_claim, item.id, claim.lease, outputs,
                        self.node, job_id=item.job_id)
                else:
                    done, unfinished = await self._hot(self.store.complete_and_check, item.id,
                                                       claim.lease, outputs)
                    upcoming = None
            else:
                done, unfinished, upcoming = await self._landing(
                    itemgetter(2), self._finish_and_claim, item.id, claim.lease, outputs)
            ahead = None
            if upcoming is not None:
                assert self._slots is not None
                ahead = (upcoming, self._slots.ticket())  # before any other await: in order
            if done:
                self.summary.done += 1
                self._emit(ItemFinished(item, ItemState.done))
                if not unfinished:
                    await self._maybe_job_finished(job.id)
            else:
                await self._after_cancel(claim)
            return ahead
        await self._failed(claim, tap, result, error)
        return None

    def _finish_and_claim(self, item_id: int, lease: str, outputs: list[str]
                          ) -> tuple[bool, bool, Claim | None]:
        """Record a finished image and claim the lane's next one in a single trip to the
        database thread: the next request is ready the moment this one is recorded."""
        done, unfinished = self.store.complete_and_check(item_id, lease, outputs)
        upcoming = None
        if not self._stopping and self._node_ok is not None and self._node_ok.is_set():
            upcoming = self._claim()
        return done, unfinished, upcoming

    async def _failed(self, claim: Claim, tap: ItemBackend, result: RunResult | None,
                      error: BaseException | None) -> None:
        item = claim.item
        typed = error if isinstance(error, BackendError) else tap.error
        message, detail, transient = attempt_failure(typed, error, result)
        # What the attempt left goes, except an image kept and labelled as unfinished
        # (…-incomplete.png, …-<stage>-only.png): it stays while the item is not made again.
        await self._db(self._clean_outputs, item, claim.job, keep_labelled=True)
        fatal = typed is not None and typed.fatal_for_node
        # A Run the user waits for is not retried later or handed to another node: its
        # failure is said at once, as a direct run would (they press Run again).
        interactive = claim.job.priority >= INTERACTIVE_PRIORITY
        lacks = False
        if isinstance(typed, MissingResource) and self._on_node_lacks is not None:
            # Its lists went stale: read again first, so the next plan sees what it has.
            await self._on_node_lacks(typed)
            lacks = True
        if (typed is not None and (fatal or lacks) and self._on_node_fault is not None
                and not interactive and await self._db(self._on_node_fault, claim, typed)):
            self._emit(ItemFinished(item, ItemState.queued,
                                    f"{message} Given back for another node.", detail=detail,
                                    fatal_for_node=fatal))
            if fatal:
                await self._wait_for_node(typed)
            return
        state = await self._db(self.store.fail, item.id, claim.lease, message, detail=detail,
                               transient=transient and not interactive,
                               max_retries=self.max_retries,
                               backoff_base=self.backoff_base)
        if state is ItemState.queued:
            await self._db(self._clean_outputs, item, claim.job)  # the retry makes it anew
            self.summary.retried += 1
            self._emit(ItemFinished(item, state, message, retry_in=self.backoff_base,
                                    detail=detail, fatal_for_node=fatal))
            self.notify()
        elif state is ItemState.failed:
            self.summary.failed += 1
            self.summary.failures.append((item.label, message))
            self._emit(ItemFinished(item, state, message, detail=detail, fatal_for_node=fatal))
            await self._maybe_job_finished(item.job_id)
        if typed is not None and fatal:
            await self._wait_for_node(typed)

    async def _after_cancel(self, claim: Claim) -> None:
        item = claim.item
        await self._db(self._clean_outputs, item, claim.job)
        # Still ours (stopping, or taken away without a cancel): back to the queue, untried.
        if await self._db(self.store.release, item.id, claim.lease):
            self._emit(ItemFinished(item, ItemState.queued, "Given back to the queue untried."))
            return
        self.summary.cancelled += 1
        self._emit(ItemFinished(item, ItemState.cancelled))
        await self._maybe_job_finished(item.job_id)

    async def _maybe_job_finished(self, job_id: str) -> None:
        try:
            job = await self._db(self.store.reads.finished_job, job_id)
        except sqlite3.Error as exc:  # the database busy for too long: the next image asks again
            log.warning("queue: job %s not checked for its end: %r", job_id, exc)
            return
        if job is not None:
            self._emit(JobFinished(job))

    async def _wait_for_node(self, error: BackendError) -> None:
        """The node is down: every lane waits while one pings it with growing pauses, so other
        items do not burn their retries; after `max_node_wait` the lanes try again anyway (the
        failing item's own retries then decide)."""
        assert self._node_ok is not None and self._node_lock is not None
        if self._node_lock.locked():
            return
        async with self._node_lock:
            self._node_ok.clear()
            self._emit(NodeProblem(self.node, error.message, error.detail))
            delay = self.backoff_base
            give_up = time.monotonic() + self.max_node_wait
            try:
                while not self._stopping and time.monotonic() < give_up:
                    try:
                        await self.backend.ping()
                        return
                    except BackendError as exc:
                        log.info("queue: node %s still down: %s", self.node, exc.detail or exc)
                    await self._sleep_or_wake(min(delay, max(0.0, give_up - time.monotonic())))
                    delay = min(delay * 2, self.max_node_wait)
            finally:
                self._node_ok.set()

    async def _sleep_or_wake(self, seconds: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _clean_outputs(self, item: WorkItem, job: Job | None = None, *,
                       keep_labelled: bool = False) -> None:
        clean_attempt(self.store.reads, item, job, self._on_outputs_removed, keep_labelled=keep_labelled)

    def _emit(self, event: QueueEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # a listener's bug must not stop the queue
            log.exception("queue: event listener failed on %r", type(event).__name__)
