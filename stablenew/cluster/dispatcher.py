"""ClusterDispatcher: one queue, many nodes — each node's worker takes only what the plan gives it.

Every healthy node gets a `QueueRunner` (the same worker the single-PC queue uses: retries,
deterministic outputs, cancel, crash safety). Its claims go through the dispatcher
(`ScheduledStore`), and `Placement` decides which queued item that node may take right now.

A node holds at most one running plus one ready request per slot (A1111/Forge stall when many
wait; ComfyUI's queue stays on our side so it survives and can be re-planned). Speeds per node
and size class are learned from completed items, VRAM limits from out-of-memory failures. An
item no node could ever take fails with a reason naming what is missing. When a node stops
answering, its worker stops and its in-flight items go back to the queue for the others; when
it answers again it gets a new worker. The stages of an item may be routed to another node
(`routing`); the dry run is `dry_run`; learned speeds are kept by `estimates`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from stablenew.backends.errors import BackendError, MissingResource
from stablenew.cluster import queue_runner as qr
from stablenew.cluster.health import NodeHealth, NodeMonitor
from stablenew.cluster.item_outputs import clean_attempt
from stablenew.cluster.jobs import Claim, ItemState, Job, WorkItem
from stablenew.cluster.node_book import InFlight, NodeBook, NodeStatus, WorkingOn
from stablenew.cluster.nodes import NodeConfig
from stablenew.cluster.off_loop import run_to_end
from stablenew.cluster.placement import Placement
from stablenew.cluster.queue_events import (
    ItemFinished,
    NodeProblem,
    QueueEvent,
    QueueEventCallback,
    RunSummary,
    Waiting,
)
from stablenew.cluster.queue_store import MAX_RETRIES, QueueStore
from stablenew.cluster.routing import StageRouter, routed_capabilities, upscale_target
from stablenew.cluster.run_end import RunEnd
from stablenew.cluster.runner_lock import RunnerLock
from stablenew.cluster.scheduled_store import CanTake, ScheduledStore
from stablenew.cluster.scheduler import NodeView, Policy
from stablenew.cluster.stall import NodeStalled

if TYPE_CHECKING:
    from stablenew.backends.protocol import Backend
    from stablenew.backends.types import Capabilities, UpscaleJob
    from stablenew.pipeline.runner import PipelineRunner

log = logging.getLogger(__name__)

#: Queued items looked at per planning round (in run order); later ones wait their turn.
DEFAULT_WINDOW = 256
#: Seconds before a node's worker that died of an error is started again.
RESTART_PAUSE = 5.0
#: Times one node may hand the same item back for its own fault (down, login refused).
MAX_FAULT_RELEASES = 2
#: Seconds before the loop tries the lock again that a claim in a database thread holds.
LOCK_RETRY_S = 0.005


@dataclass
class ClusterSummary(RunSummary):
    """What one `ClusterDispatcher.run()` did, over every node: a runner's summary, per node."""

    per_node: dict[str, int] = field(default_factory=dict)
    #: Why the run stopped with work left (every node refused our credentials, ...).
    stalled: str = ""


def _is_oom(message: str, detail: str) -> bool:
    text = f"{message} {detail}".lower()
    return "out of memory" in text or "outofmemory" in text


class ClusterDispatcher:
    """Runs the persistent queue over every healthy node (see the module docstring)."""

    def __init__(
        self,
        store: QueueStore,
        nodes: Sequence[NodeConfig] | NodeMonitor,
        *,
        policy: Policy | str = Policy.earliest_finish,
        window: int = DEFAULT_WINDOW,
        health_interval: float = 10.0,
        health_timeout: float = 5.0,
        poll_interval: float = 0.25,
        backoff_base: float = 2.0,
        max_retries: int = MAX_RETRIES,
        stop_grace: float = 2.0,
        give_up_after: float = 300.0,
        on_event: QueueEventCallback | None = None,
        on_node_change: Callable[[NodeHealth], None] | None = None,
        runner_factory: Callable[[str], PipelineRunner] | None = None,
        runner_kwargs: dict[str, Any] | None = None,
        speeds: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.store = store
        if isinstance(nodes, NodeMonitor):
            self.monitor = nodes
        else:
            self.monitor = NodeMonitor(nodes, interval=health_interval, timeout=health_timeout)
        self.poll_interval = poll_interval
        self.backoff_base = backoff_base
        self.max_retries = max_retries
        self.stop_grace = stop_grace
        #: With until_empty: when the run stops with work left (no node usable for
        #: `give_up_after` seconds, all refusing us) and what it says while it waits.
        self.run_end = RunEnd(store, self.monitor, give_up_after=give_up_after)
        self._on_event = on_event
        self._on_node_change = on_node_change
        self._runner_factory = runner_factory
        self._runner_kwargs = dict(runner_kwargs or {})
        self._lock = threading.RLock()
        self._last_statuses: list[NodeStatus] = []
        self._nodes: dict[str, NodeBook] = {}
        for name in self.monitor.names():
            cfg = self.monitor.config(name)
            health = self.monitor.health(name)  # the monitor may have probed already
            view = NodeView(name, health.capabilities, tier=cfg.tier,
                            max_concurrent=cfg.max_concurrent, healthy=health.usable,
                            enabled=cfg.enabled)
            view.speeds.update((speeds or {}).get(name, {}))
            self._nodes[name] = NodeBook(cfg, view)
        #: Which item each node takes next (shares the book of nodes above).
        self.placement = Placement(store, self.monitor, self._nodes, policy=Policy(policy),
                                   window=window)
        self._tasks: set[asyncio.Task[None]] = set()
        self._unassignable_key: tuple[int, int, tuple[tuple[str, int], ...]] | None = None
        self._fault_releases: dict[tuple[int, str], int] = {}
        self._job_sizes: dict[str, int] = {}
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.summary = ClusterSummary()
        self.monitor.subscribe(self._health_changed)

    def detach(self) -> None:
        """Stop following the monitor's changes: a dispatcher made over a long-lived monitor
        (the Nodes room's, for a plan) must not stay subscribed to it after use."""
        self.monitor.unsubscribe(self._health_changed)

    # --- control (safe from any thread) ---------------------------------------------------------

    def notify(self) -> None:
        """Something changed (new job, resume, a node freed up): every idle node looks again."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake.set)
        for node in list(self._nodes.values()):
            if node.runner is not None:
                node.runner.notify()

    def stop(self) -> None:
        """Stop every node's worker; items in flight go back to the queue untouched."""
        self._stopping = True
        for node in list(self._nodes.values()):
            if node.runner is not None:
                node.runner.stop()
        self.notify()

    def interrupt(self, item_id: int) -> None:
        for node in list(self._nodes.values()):
            if node.runner is not None:
                node.runner.interrupt(item_id)

    # --- changing the set of nodes while running (the Nodes panel) ---------------------------------

    async def add_node(self, config: NodeConfig) -> NodeHealth:
        """Add (or replace) a node; it starts taking work as soon as its probe succeeds."""
        if config.name in self._nodes:
            await self.remove_node(config.name)
        view = NodeView(config.name, None, tier=config.tier,
                        max_concurrent=config.max_concurrent, healthy=False,
                        enabled=config.enabled)
        def join() -> None:
            self._nodes[config.name] = NodeBook(config, view)
            self.placement.used.setdefault(config.name, 0)

        await self._under_lock(join)
        return await self.monitor.add(config)

    async def remove_node(self, name: str) -> None:
        """Stop a node's worker (its in-flight items go back to the queue) and forget it."""
        node = self._nodes.get(name)
        if node is not None:
            node.leaving = True  # a single store: claims read it under the lock
        await self._stop_worker(name)
        await self._under_lock(partial(self._nodes.pop, name, None))
        await self.monitor.remove(name)
        self.notify()

    # --- reading -----------------------------------------------------------------------------------

    def views(self) -> list[NodeView]:
        with self._lock:
            return [self.placement.view(n, time.monotonic()) for n in self._nodes.values()]

    def speeds(self) -> dict[str, dict[str, float]]:
        """Learned speeds per node and size class (to keep between runs)."""
        with self._lock:
            return {name: dict(n.view.speeds) for name, n in self._nodes.items()}

    def statuses(self) -> list[NodeStatus]:
        """Each node's state and work. The window reads this every second on its own thread, so
        it never waits for a worker that holds the lock through a database transaction (which
        may wait up to SQLite's busy timeout): meanwhile the last complete view is returned."""
        if not self._lock.acquire(blocking=False):
            return list(self._last_statuses)
        try:
            out = [n.status(self.monitor.health(name)) for name, n in self._nodes.items()]
            self._last_statuses = out
        finally:
            self._lock.release()
        return list(out)

    # --- the run -----------------------------------------------------------------------------------

    async def run(self, *, until_empty: bool = False, recover: bool = True) -> ClusterSummary:
        """Work through the queue on every healthy node; with *until_empty*, return once
        nothing is left to do (or nothing can move: no node will take the rest)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        started = time.monotonic()
        self.run_end.start()
        cluster_lock = RunnerLock(self.store.path)  # one runner (one node or a cluster) per queue
        try:
            await run_to_end(cluster_lock.acquire)  # file I/O: off the loop (the window)
            return await self._run(until_empty, recover, started)
        finally:
            await run_to_end(cluster_lock.release)

    async def _run(self, until_empty: bool, recover: bool, started: float) -> ClusterSummary:
        assert self._wake is not None
        if recover:
            await self._recover()
        # The monitor's first round probes every node; each one starts working as soon as it
        # answers (`_health_changed`), so a node that hangs on its probe delays nobody.
        monitor = asyncio.create_task(self.monitor.run(), name="cluster-health")
        try:
            for name in self._nodes:
                if self.monitor.health(name).usable and self._nodes[name].task is None:
                    self._start_worker(name)
            while not self._stopping:
                for event in await asyncio.to_thread(self._fail_unassignable):
                    # The summary is written on the loop only (workers' totals join it in
                    # _collect there too): never from the database thread that failed these.
                    self.summary.failed += 1
                    self.summary.failures.append((event.item.label, event.message))
                    self._emit(event)
                if until_empty:
                    stalled = await asyncio.to_thread(self._finished_or_stalled)
                    if stalled is not None:
                        self.summary.stalled = stalled
                        break
                elif self.run_end.moving(list(self._nodes)):
                    self.run_end.clear()  # the common case, with no database read
                else:
                    await asyncio.to_thread(self.run_end.note_wait, list(self._nodes))
                self._say_waiting(until_empty)
                self._wake.clear()
                # asyncio.timeout, not wait_for: on 3.11 wait_for returns normally when the
                # wake (a worker thread's notify, many a second) comes just as the run is
                # cancelled, and the run would go on.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(self.poll_interval, 0.05)):
                        await self._wake.wait()
                self._reap()
        finally:
            self._stopping = True
            try:
                await asyncio.gather(*(self._stop_worker(name) for name in list(self._nodes)),
                                     return_exceptions=True)
            finally:  # cancelled while the workers stop: the health checks must end all the same
                monitor.cancel()
                try:
                    await asyncio.gather(monitor, *self._tasks, return_exceptions=True)
                finally:
                    await self.monitor.aclose()
                    self.summary.seconds = time.monotonic() - started
        return self.summary

    async def _recover(self) -> None:
        items = await asyncio.to_thread(self.store.recover)
        removed_hook = self._runner_kwargs.get("on_outputs_removed")
        for item in items:  # file deletes (and the learning store's forgetting): off the loop
            await asyncio.to_thread(clean_attempt, self.store.reads, item, None, removed_hook)
        if items:
            log.info("cluster: %d item(s) left in flight by a crash went back to the queue",
                     len(items))

    def _finished_or_stalled(self) -> str | None:
        """None while there is work that can still move; '' when done; a reason when stuck."""
        with self._lock:
            busy = any(n.inflight for n in self._nodes.values())
        return None if busy else self.run_end.check(list(self._nodes))

    def _say_waiting(self, until_empty: bool) -> None:
        text = self.run_end.notice(until_empty)
        if text is not None:
            self._emit(Waiting(text))

    # --- workers -----------------------------------------------------------------------------------

    def _health_changed(self, old: NodeHealth, new: NodeHealth) -> None:
        node = self._nodes.get(new.name)
        self.placement.forget_plan()  # a node came or went: what the plan assumed is gone
        if node is not None:
            # Not under the lock (see `_under_lock`): two single stores; claims ask the monitor.
            node.view.capabilities = new.capabilities or node.view.capabilities
            node.view.healthy = new.usable
        if self._on_node_change is not None:
            try:
                self._on_node_change(new)
            except Exception:
                log.exception("cluster: node listener failed")
        if self._loop is None or node is None or self._stopping:
            return
        if new.usable and node.task is None:
            self._start_worker(new.name)
        elif not new.usable and node.task is not None:
            self._spawn(self._stop_worker(new.name))
        self.notify()

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._spawned_done)

    def _spawned_done(self, task: asyncio.Task[None]) -> None:
        # Nobody awaits a task that ends before the run does: its error is read here.
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster: %s failed", task.get_name(), exc_info=task.exception())

    def _start_worker(self, name: str) -> None:
        node = self._nodes[name]
        backend = self.monitor.backend(name)
        if backend is None or node.leaving:
            return
        # QueueRunner's keyword arguments, passed through: its signature types them.
        kwargs: dict[str, Any] = {
            "node": name, "depth": node.cap, "backoff_base": self.backoff_base,
            "on_node_fault": partial(self._node_fault, name),
            "on_node_lacks": partial(self._node_lacks, name),
            "max_retries": self.max_retries, "poll_interval": self.poll_interval,
            "on_event": self._event_for(name), "lanes": node.cap, **self._runner_kwargs}
        if self._runner_factory is not None:
            kwargs["runner"] = self._runner_factory(name)
        runner = qr.QueueRunner(ScheduledStore(self.store, self, name),
                                StageRouter(name, backend, self._upscale_target, self._routed),
                                **kwargs)
        node.runner = runner
        # The dispatcher holds the queue's one-runner lock for the whole cluster.
        node.task = asyncio.ensure_future(runner.run(until_empty=False, recover=False,
                                                     exclusive=False))
        log.info("cluster: %s takes work", name)

    async def _stop_worker(self, name: str) -> None:
        node = self._nodes.get(name)
        if node is None or node.task is None or node.runner is None:
            return
        runner, task = node.runner, node.task
        runner.stop()
        # asyncio.wait, not wait_for(shield()) and `await task` under suppress(BaseException):
        # those swallowed a cancellation of this stop itself.
        done, _ = await asyncio.wait((task,), timeout=self.stop_grace)
        if not done:
            task.cancel()  # a hung node: its lanes give their items back as they unwind
            await asyncio.wait((task,))
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster: the worker of %s crashed", name, exc_info=task.exception())
        self._collect(runner)
        if node.task is task:
            node.task = None
            node.runner = None
        await self._under_lock(node.inflight.clear)
        self.notify()

    async def _under_lock(self, change: Callable[[], object]) -> None:
        """*change* under the lock, on the loop (which alone changes the set of nodes). A claim
        may hold the lock through SQLite's busy timeout: the loop tries again, never waits."""
        while not self._lock.acquire(blocking=False):  # noqa: ASYNC110 - a thread's lock: no event
            await asyncio.sleep(LOCK_RETRY_S)
        try:
            change()
        finally:
            self._lock.release()

    def _reap(self) -> None:
        """Workers that ended by themselves (a bug): collect them and, if the node is healthy,
        start a new one — after a pause when the last one died of an error."""
        now = time.monotonic()
        for name, node in self._nodes.items():
            task = node.task
            if task is not None and task.done() and not self._stopping:
                if task.exception() is not None:
                    log.error("cluster: the worker of %s stopped: %r", name, task.exception())
                    node.restart_at = now + RESTART_PAUSE
                if node.runner is not None:
                    self._collect(node.runner)
                node.task = node.runner = None
            if (node.task is None and not self._stopping and now >= node.restart_at
                    and self.monitor.health(name).usable):
                self._start_worker(name)

    def _collect(self, runner: qr.QueueRunner) -> None:
        s = runner.summary
        self.summary.done += s.done
        self.summary.failed += s.failed
        self.summary.cancelled += s.cancelled
        self.summary.retried += s.retried
        self.summary.failures.extend(s.failures)
        self.summary.per_node[runner.node] = self.summary.per_node.get(runner.node, 0) + s.done
        runner.summary = RunSummary()

    def _event_for(self, name: str) -> QueueEventCallback:
        def forward(event: QueueEvent) -> None:
            if isinstance(event, NodeProblem):
                self.monitor.suspect(name)
            if isinstance(event, ItemFinished):
                self.notify()
            self._emit(event)
        return forward

    # --- the workers' claims and outcomes (called from their database threads) ---------------

    def claim_for(self, name: str, can_take: CanTake | None, *, now: float | None = None,
                  scan: int = 0, start: bool = False) -> Claim | None:
        """The next item node *name* takes, as `Placement` decides (None: it waits)."""
        with self._lock:
            node = self._nodes.get(name)
            if (node is None or node.leaving or self._stopping
                    or not self.monitor.health(name).usable):
                return None
            if len(node.inflight) >= node.cap:
                self._prune(node)
                if len(node.inflight) >= node.cap:
                    return None
            # The chosen item is among the first `window` queued ones in run order, so among
            # the first `window` of its job: the store must look that far.
            scan = max(scan, self.placement.window)
            claim = None
            for fresh in (False, True):  # a planned item may have gone meanwhile: plan again
                chosen = self.placement.choose(name, fresh=fresh)
                if not chosen:
                    return None

                def take(item: WorkItem, job: Job, chosen: set[int] = chosen) -> bool:
                    return item.id in chosen and (can_take is None or can_take(item, job))

                claim = self.store.claim_next(name, can_take=take, now=now, scan=scan,
                                              start=start)
                if claim is not None:
                    break
            if claim is None:
                return None
            req = self.placement.requirements(claim.item)
            node.inflight[claim.item.id] = InFlight(claim.item.id, claim.item.label, req,
                                                    time.monotonic(), self._working_on(claim))
            self.placement.used[name] = self.placement.used.get(name, 0) + 1
            return claim

    def _node_fault(self, name: str, claim: Claim, error: BackendError) -> bool:
        """An item failed because its node is down or refused us: give it back untried for
        another node (at most twice per item and node, so a node that answers pings but
        fails every image cannot bounce an item forever)."""
        key = (claim.item.id, name)
        with self._lock:
            count = self._fault_releases.get(key, 0)
            if count >= MAX_FAULT_RELEASES:
                return False
            self._fault_releases[key] = count + 1
        if isinstance(error, NodeStalled) and self._loop is not None:
            # It may still answer pings: take it out of rotation so the item goes elsewhere.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.monitor.set_unhealthy, name, error)
        released = self.store.release(claim.item.id, claim.lease)
        self.item_finished(name, claim.item.id, done=False)
        log.info("cluster: %s failed %s (%s); it goes back to the queue untried", name,
                 claim.item.label, error.detail or error.message)
        return released

    async def _node_lacks(self, name: str, error: MissingResource) -> None:
        """Node *name* lacks what its lists showed (its server restarted with other models, or
        someone rescanned its folders): it is probed again before the item goes back, so the
        plan no longer gives it such work (nor fails an item no node could take). Probed, not
        rescanned: A1111 rescans after its running job, which may take minutes."""
        log.info("cluster: %s has no %s '%s' though its lists showed one; probing it again",
                 name, error.what, error.name)
        await self.monitor.check(name, probe=True)

    def _working_on(self, claim: Claim) -> WorkingOn:
        """What the Nodes table shows for a claimed item (a claim's job carries no counts: the
        job's size is read once per job)."""
        job_id = claim.item.job_id
        total = self._job_sizes.get(job_id)
        if total is None:
            try:
                total = self.store.reads.get_job(job_id).counts.total
            except Exception:  # only a label: never worth failing a claim over
                log.debug("cluster: no size for job %s", job_id, exc_info=True)
                total = 0
            if len(self._job_sizes) > 10_000:
                self._job_sizes.clear()
            self._job_sizes[job_id] = total
        return WorkingOn(claim.item.label, claim.job.name, claim.item.index + 1, total or None,
                         " ".join(claim.config.txt2img.prompt.split()))

    def _prune(self, node: NodeBook) -> None:
        """Forget in-flight entries whose item is no longer this node's (it left without the
        worker reporting it, e.g. cancelled before it was sent), so no slot is lost for good."""
        states = self.store.reads.item_states(list(node.inflight))
        for item_id in list(node.inflight):
            state, lease = states.get(item_id, (ItemState.cancelled, None))
            if state not in (ItemState.assigned, ItemState.running) or lease is None:
                node.inflight.pop(item_id, None)

    def item_finished(self, name: str, item_id: int, *, done: bool, message: str = "",
                      detail: str = "") -> None:
        """How an item of node *name* ended: learn its speed or VRAM limit, free its slot."""
        with self._lock:
            node = self._nodes.get(name)
            if node is None:
                return
            entry = node.inflight.pop(item_id, None)
            now = time.monotonic()
            if entry is not None and done:
                # A node runs one request per slot: the service time of this item started
                # when it was claimed or when the previous one finished, whichever is later.
                began = max(entry.claimed_at, node.last_finish)
                node.view.learn_speed(entry.req.size_class, entry.req.work_units, now - began)
                node.view.vram.record_success(entry.req.family, entry.req.vram_gb)
                node.done += 1
            elif entry is not None and _is_oom(message, detail):
                node.view.vram.record_oom(entry.req.family, entry.req.vram_gb)
                log.info("cluster: %s ran out of memory at about %.1f GB (%s); it will not be "
                         "given such work again", name, entry.req.vram_gb, entry.req.family)
            if entry is not None:
                node.last_finish = now
            if not done:
                # Work came back (retry, release) or a node learned a limit: plan afresh.
                self.placement.forget_plan()
        self.notify()

    def _routed(self, name: str, caps: Capabilities | None) -> Capabilities | None:
        """*caps* of node *name* with every upscaler another usable node has added."""
        # Without the lock, which a claim may hold long: list() copies the names in one step.
        others = [o for o in list(self._nodes) if o != name]
        return routed_capabilities(caps or self.monitor.health(name).capabilities,
                                   [self.monitor.health(o) for o in others])

    def _upscale_target(self, name: str, job: UpscaleJob) -> tuple[str, Backend] | None:
        """Another node to run this upscale on, when *name* lacks the upscaler (None: here)."""
        # Without the lock, as in `_routed`; len() reads a node's in-flight count at once.
        load = {other: len(node.inflight) for other, node in list(self._nodes.items())}
        return upscale_target(name, job, self.monitor, load)

    def _emit(self, event: QueueEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("cluster: event listener failed on %r", type(event).__name__)

    def _fail_unassignable(self) -> list[ItemFinished]:
        """Fail the queued items no node could ever take, naming what is missing.

        Only decided when every enabled node has been probed at least once: a node that has
        not answered yet might have the model. With no node turned on (the last one switched
        off or removed), nothing is decided: the items wait for one, as for a node that is down.
        """
        # Only worth looking again when the queue or what the nodes have changed (or every
        # few seconds: retries whose backoff ran out join the pending items by themselves).
        key = (self.store.reads.revision(), int(time.monotonic() // 3), tuple(
            (name, id(self.monitor.health(name).capabilities)) for name in self._nodes))
        if key == self._unassignable_key:
            return []
        self._unassignable_key = key
        with self._lock:
            configs = [n.config for n in self._nodes.values()]
            enabled = [c for c in configs if c.enabled]
            # (A node refusing our password may have the model: it waits for the user too.)
            if not enabled or any(self.monitor.health(c.name).capabilities is None
                                  for c in enabled):
                return []
            return self.placement.fail_unassignable()
