"""ClusterDispatcher: one queue, many nodes — each node's worker takes only what the plan gives it.

Every healthy node gets a `QueueRunner` (the same worker the single-PC queue uses: retries,
deterministic outputs, cancel, crash safety). Its claims go through the dispatcher, which
decides which queued item that node may take right now:

- earliest finish (StableNew's policy): the queued items are planned over every healthy node
  with `plan_earliest_finish` — eligibility first, then each item where it would finish soonest
  given that node's work in flight and its learned speed — and the node takes the first item
  the plan gives it. The plan is re-made at every claim, i.e. whenever a node frees up, so a
  slow card never takes the last big item that a fast card would finish sooner; when the plan
  gives a node nothing, it waits.
- round robin and least used (SwarmUI: the first free eligible backend takes the next item)
  are there as baselines for the benchmark.

A node holds at most one running plus one ready request per slot (A1111/Forge stall when many
wait; ComfyUI's queue stays on our side so it survives and can be re-planned). Speeds per node
and size class are learned from completed items, VRAM limits from out-of-memory failures. An
item no node could ever take fails with a reason naming what is missing. When a node stops
answering, its worker stops and its in-flight items go back to the queue for the others; when
it answers again it gets a new worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stablenew.backends.errors import BackendError
from stablenew.cluster import queue_runner as qr
from stablenew.cluster.health import NodeHealth, NodeMonitor, NodeState
from stablenew.cluster.jobs import Claim, ItemState, Job, WorkItem
from stablenew.cluster.nodes import NodeConfig
from stablenew.cluster.queue_store import MAX_RETRIES, QueueError, QueueStore
from stablenew.cluster.routing import (
    StageRouter,
    has_upscalers,
    relax_for_remote_upscale,
    stage_upscalers,
)
from stablenew.cluster.scheduler import (
    NodeView,
    Policy,
    RoundRobin,
    duration,
    eligible_nodes,
    pick_least_used,
    plan_by_priority,
    why_nobody,
)
from stablenew.cluster.stall import NodeStalled
from stablenew.cluster.work import WorkRequirements, requirements_for

if TYPE_CHECKING:
    from stablenew.backends.types import Capabilities, UpscaleJob
    from stablenew.pipeline.config import PipelineConfig

log = logging.getLogger(__name__)

#: Queued items looked at per planning round (in run order); later ones wait their turn.
DEFAULT_WINDOW = 256
#: Name under which the dispatcher itself claims an item it must fail (no node can take it).
SCHEDULER_CLAIMANT = "(scheduler)"
#: Seconds before a node's worker that died of an error is started again.
RESTART_PAUSE = 5.0
#: A plan younger than this serves the next claims; older, the queue is planned again.
REPLAN_AFTER = 0.2
#: Times one node may hand the same item back for its own fault (down, login refused).
MAX_FAULT_RELEASES = 2


@dataclass(frozen=True)
class WorkingOn:
    """An item a node is working on, in the terms people know it by."""

    label: str  # the id people type: job id / image number
    job_name: str
    number: int  # 1-based, within its job
    total: int | None  # images in the job (None: not known)
    prompt: str  # its prompt, whitespace folded


@dataclass
class _InFlight:
    item_id: int
    label: str
    req: WorkRequirements
    claimed_at: float  # monotonic
    working_on: WorkingOn | None = None


@dataclass
class _Node:
    """The dispatcher's book on one node: what it knows, what it runs, its worker."""

    config: NodeConfig
    view: NodeView
    inflight: dict[int, _InFlight] = field(default_factory=dict)
    last_finish: float = 0.0
    runner: qr.QueueRunner | None = None
    task: asyncio.Task[Any] | None = None
    done: int = 0
    restart_at: float = 0.0  # monotonic: a worker that died of an error waits before the next

    @property
    def cap(self) -> int:
        # One running request per slot plus one ready behind them.
        return self.config.max_concurrent + 1


@dataclass
class _PlanCache:
    """The last plan's next items per node, used by claims soon after it was made."""

    made_at: float  # monotonic
    per_node: dict[str, deque[int]]


@dataclass(frozen=True)
class NodeStatus:
    """One node as the Nodes panel and the status bar show it."""

    name: str
    url: str
    kind: str
    tier: int
    state: NodeState
    message: str
    current: tuple[str, ...]  # labels of the items it is working on
    done: int
    vram_gb: float | None
    device: str
    speeds: dict[str, float]
    working_on: tuple[WorkingOn, ...] = ()  # the same items, readable


@dataclass
class ClusterSummary(qr.RunSummary):
    """What one `ClusterDispatcher.run()` did, over every node: a runner's summary, per node."""

    per_node: dict[str, int] = field(default_factory=dict)
    #: Why the run stopped with work left (every node refused our credentials, ...).
    stalled: str = ""


def _is_oom(message: str, detail: str) -> bool:
    text = f"{message} {detail}".lower()
    return "out of memory" in text or "outofmemory" in text


class _ScheduledStore:
    """The queue store as one node's worker sees it: its claims go through the dispatcher,
    and the outcomes of its items are reported back (speeds, VRAM, free slots)."""

    def __init__(self, store: QueueStore, dispatcher: ClusterDispatcher, node: str) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._node = node

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


    def claim_next(self, node: str, *, can_take: Callable[[WorkItem, Job], bool] | None = None,
                   **kwargs: Any) -> Claim | None:
        return self._dispatcher._claim(self._node, can_take, kwargs)

    def complete(self, item_id: int, lease: str, outputs: Sequence[str | Path], **kw: Any) -> bool:
        done = self._store.complete(item_id, lease, outputs, **kw)
        self._dispatcher._finished(self._node, item_id, done=done)
        return done

    def complete_and_check(self, item_id: int, lease: str, outputs: Sequence[str | Path],
                           **kw: Any) -> tuple[bool, bool]:
        done, left = self._store.complete_and_check(item_id, lease, outputs, **kw)
        self._dispatcher._finished(self._node, item_id, done=done)
        return done, left

    def fail(self, item_id: int, lease: str, message: str, **kw: Any) -> ItemState | None:
        state = self._store.fail(item_id, lease, message, **kw)
        self._dispatcher._finished(self._node, item_id, done=False, message=message,
                                   detail=str(kw.get("detail", "")))
        return state

    def release(self, item_id: int, lease: str) -> bool:
        released = self._store.release(item_id, lease)
        self._dispatcher._finished(self._node, item_id, done=False)
        return released


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
        on_event: qr.QueueEventCallback | None = None,
        on_node_change: Callable[[NodeHealth], None] | None = None,
        runner_factory: Callable[[str], Any] | None = None,
        runner_kwargs: dict[str, Any] | None = None,
        speeds: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.store = store
        if isinstance(nodes, NodeMonitor):
            self.monitor = nodes
        else:
            self.monitor = NodeMonitor(nodes, interval=health_interval, timeout=health_timeout)
        self.policy = Policy(policy)
        self.window = window
        self.poll_interval = poll_interval
        self.backoff_base = backoff_base
        self.max_retries = max_retries
        self.stop_grace = stop_grace
        #: With until_empty: stop when no node has been usable for this long (the items wait).
        self.give_up_after = give_up_after
        self._last_usable = time.monotonic()
        #: While no node is usable, what the run waits for is said at once and this often.
        self.waiting_notice_s = 30.0
        self._waiting: str | None = None  # set by _finished_or_stalled, said by the run loop
        self._waiting_said: tuple[str, float] | None = None
        self._on_event = on_event
        self._on_node_change = on_node_change
        self._runner_factory = runner_factory
        self._runner_kwargs = dict(runner_kwargs or {})
        self._lock = threading.RLock()
        self._last_statuses: list[NodeStatus] = []
        self._nodes: dict[str, _Node] = {}
        for name in self.monitor.names():
            cfg = self.monitor.config(name)
            health = self.monitor.health(name)  # the monitor may have probed already
            view = NodeView(name, health.capabilities, tier=cfg.tier,
                            max_concurrent=cfg.max_concurrent, healthy=health.usable,
                            enabled=cfg.enabled)
            view.speeds.update((speeds or {}).get(name, {}))
            self._nodes[name] = _Node(cfg, view)
        self._reqs: dict[int, tuple[WorkRequirements, frozenset[str]]] = {}
        self._round_robin = RoundRobin()
        self._used: dict[str, int] = {n: 0 for n in self._nodes}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unassignable_key: tuple[Any, ...] | None = None
        self._plan_cache: _PlanCache | None = None
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
        with self._lock:
            self._nodes[config.name] = _Node(config, view)
            self._used.setdefault(config.name, 0)
        return await self.monitor.add(config)

    async def remove_node(self, name: str) -> None:
        """Stop a node's worker (its in-flight items go back to the queue) and forget it."""
        await self._stop_worker(name)
        with self._lock:
            self._nodes.pop(name, None)
        await self.monitor.remove(name)
        self.notify()

    # --- reading -----------------------------------------------------------------------------------

    def views(self) -> list[NodeView]:
        with self._lock:
            return [self._view(n, time.monotonic()) for n in self._nodes.values()]

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
        out = []
        try:
            for name, n in self._nodes.items():
                health = self.monitor.health(name)
                caps = health.capabilities
                out.append(NodeStatus(
                    name=name, url=n.config.url, kind=(caps.kind.value if caps else
                                                       n.config.kind.value),
                    tier=n.config.tier, state=health.state, message=health.message,
                    current=tuple(f.label for f in n.inflight.values()), done=n.done,
                    vram_gb=n.view.vram_total_gb, device=caps.device if caps else "",
                    speeds=dict(n.view.speeds),
                    working_on=tuple(f.working_on for f in n.inflight.values() if f.working_on)))
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
        started = self._last_usable = time.monotonic()
        cluster_lock = qr.RunnerLock(self.store.path)
        cluster_lock.acquire()  # one runner (single node or cluster) per queue
        try:
            return await self._run(until_empty, recover, started)
        finally:
            cluster_lock.release()

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
        for item in items:
            try:
                job = await asyncio.to_thread(self.store.get_job, item.job_id)
            except QueueError as exc:  # the job was cleared meanwhile: nothing of it to clean
                log.info("cluster: no job for recovered item %s (%s)", item.label, exc.message)
                continue
            removed = qr.clean_item_outputs(Path(job.output_dir), item.name_prefix)
            images = [p for p in removed if p.suffix.lower() == ".png"
                      and p.parent.name != ".thumbnails"]
            if images and removed_hook is not None:
                removed_hook(images)
        if items:
            log.info("cluster: %d item(s) left in flight by a crash went back to the queue",
                     len(items))

    def _finished_or_stalled(self) -> str | None:
        """None while there is work that can still move; '' when done; a reason when stuck."""
        with self._lock:
            busy = any(n.inflight for n in self._nodes.values())
        if busy:
            return None
        if not self.store.has_pending():
            return ""
        if self.store.is_paused():
            return "The queue is paused."
        states = [self.monitor.health(n).state for n in self._nodes]
        if not states or all(s in (NodeState.auth_failed, NodeState.disabled) for s in states):
            reasons = [self.monitor.health(n).message for n in self._nodes] or [
                "No nodes are set up. Add one with `stablenew nodes add`."]
            return " ".join(r for r in reasons if r) or "No node is enabled."
        now = time.monotonic()
        self._waiting = None
        if any(s is NodeState.healthy for s in states):
            self._last_usable = now
        elif now - self._last_usable <= self.give_up_after:
            if NodeState.unknown in states:
                return None  # still probing: nothing to say yet
            down = "; ".join(f"{n} ({h.state.value}: {h.message})" if h.message else
                             f"{n} ({h.state.value})"
                             for n in self._nodes if (h := self.monitor.health(n)))
            self._waiting = f"Waiting for a node to answer: {down}."
        elif now - self._last_usable > self.give_up_after:
            reasons = [m for n in self._nodes if (m := self.monitor.health(n).message)]
            return (f"No node has answered for {self.give_up_after:g} s; the rest of the queue "
                    "waits for the next run. " + " ".join(reasons))
        return None

    def _say_waiting(self, until_empty: bool) -> None:
        """Say what the run waits for when no node is usable: at once, when it changes, and
        every `waiting_notice_s` while it lasts (a silent run looks hung)."""
        text = self._waiting
        if text is None:
            self._waiting_said = None
            return
        now = time.monotonic()
        said = self._waiting_said
        if said is not None and said[0] == text and now - said[1] < self.waiting_notice_s:
            return
        self._waiting_said = (text, now)
        if until_empty:
            left = max(0.0, self.give_up_after - (now - self._last_usable))
            text += (f" The queue is kept; this run gives up in {left:.0f} s if none comes back "
                     "(Ctrl+C stops now).")
        self._emit(qr.Waiting(text))

    # --- workers -----------------------------------------------------------------------------------

    def _health_changed(self, old: NodeHealth, new: NodeHealth) -> None:
        node = self._nodes.get(new.name)
        self._plan_cache = None  # a node came or went: what the plan assumed is gone
        if node is not None:
            with self._lock:
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

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._spawned_done)

    def _spawned_done(self, task: asyncio.Task[Any]) -> None:
        # Nobody awaits a task that ends before the run does: its error is read here.
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster: %s failed", task.get_name(), exc_info=task.exception())

    def _start_worker(self, name: str) -> None:
        node = self._nodes[name]
        backend = self.monitor.backend(name)
        if backend is None:
            return
        kwargs: dict[str, Any] = {
            "node": name, "depth": node.cap, "backoff_base": self.backoff_base,
            "on_node_fault": partial(self._node_fault, name),
            "max_retries": self.max_retries, "poll_interval": self.poll_interval,
            "on_event": self._event_for(name), "lanes": node.cap, **self._runner_kwargs}
        if self._runner_factory is not None:
            kwargs["runner"] = self._runner_factory(name)
        # _ScheduledStore forwards the rest of QueueStore through __getattr__, which mypy cannot
        # follow; issue #18 replaces it with an explicit protocol.
        runner = qr.QueueRunner(_ScheduledStore(self.store, self, name),  # type: ignore[arg-type]
                                StageRouter(name, backend, self._upscale_target, self._routed), **kwargs)
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
        with self._lock:
            node.inflight.clear()
        self.notify()

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
        runner.summary = qr.RunSummary()

    def _event_for(self, name: str) -> qr.QueueEventCallback:
        def forward(event: qr.QueueEvent) -> None:
            if isinstance(event, qr.NodeProblem):
                self.monitor.suspect(name)
            if isinstance(event, qr.ItemFinished):
                self.notify()
            self._emit(event)
        return forward

    # --- the decisions (called from the workers' database threads) ----------------------------

    def _claim(self, name: str, can_take: Callable[[WorkItem, Job], bool] | None,
               kwargs: dict[str, Any]) -> Claim | None:
        with self._lock:
            node = self._nodes.get(name)
            if node is None or self._stopping or not self.monitor.health(name).usable:
                return None
            if len(node.inflight) >= node.cap:
                self._prune(node)
                if len(node.inflight) >= node.cap:
                    return None
            # The chosen item is among the first `window` queued ones in run order, so among
            # the first `window` of its job: the store must look that far.
            kwargs = {**kwargs, "scan": max(int(kwargs.get("scan", 0)), self.window)}
            claim = None
            for fresh in (False, True):  # a planned item may have gone meanwhile: plan again
                chosen = self._choose(name, fresh=fresh)
                if not chosen:
                    return None

                def take(item: WorkItem, job: Job, chosen: set[int] = chosen) -> bool:
                    return item.id in chosen and (can_take is None or can_take(item, job))

                claim = self.store.claim_next(name, can_take=take, **kwargs)
                if claim is not None:
                    break
            if claim is None:
                return None
            req = self._requirements(claim.item)
            node.inflight[claim.item.id] = _InFlight(claim.item.id, claim.item.label, req,
                                                      time.monotonic(), self._working_on(claim))
            self._used[name] = self._used.get(name, 0) + 1
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
        self._finished(name, claim.item.id, done=False)
        log.info("cluster: %s failed %s (%s); it goes back to the queue untried", name,
                 claim.item.label, error.detail or error.message)
        return released

    def _working_on(self, claim: Claim) -> WorkingOn:
        """What the Nodes table shows for a claimed item (a claim's job carries no counts: the
        job's size is read once per job)."""
        job_id = claim.item.job_id
        total = self._job_sizes.get(job_id)
        if total is None:
            try:
                total = self.store.get_job(job_id).counts.total
            except Exception:  # only a label: never worth failing a claim over
                log.debug("cluster: no size for job %s", job_id, exc_info=True)
                total = 0
            if len(self._job_sizes) > 10_000:
                self._job_sizes.clear()
            self._job_sizes[job_id] = total
        return WorkingOn(claim.item.label, claim.job.name, claim.item.index + 1, total or None,
                         " ".join(claim.config.txt2img.prompt.split()))

    def _prune(self, node: _Node) -> None:
        """Forget in-flight entries whose item is no longer this node's (it left without the
        worker reporting it, e.g. cancelled before it was sent), so no slot is lost for good."""
        states = self.store.item_states(list(node.inflight))
        for item_id in list(node.inflight):
            state, lease = states.get(item_id, (ItemState.cancelled, None))
            if state not in (ItemState.assigned, ItemState.running) or lease is None:
                node.inflight.pop(item_id, None)

    def _finished(self, name: str, item_id: int, *, done: bool, message: str = "",
                  detail: str = "") -> None:
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
                self._plan_cache = None
        self.notify()

    def _requirements(self, item: WorkItem, config: PipelineConfig | None = None
                      ) -> WorkRequirements:
        return self._cached(item, config)[0]

    def _placed(self, item: WorkItem, views: Sequence[NodeView]) -> WorkRequirements:
        """The item's requirements for the node that runs its first stages: an upscale stage
        another answering node can do need not be possible there."""
        req, movable = self._cached(item)
        return relax_for_remote_upscale(req, movable, views)

    def _cached(self, item: WorkItem, config: PipelineConfig | None = None
                ) -> tuple[WorkRequirements, frozenset[str]]:
        found = self._reqs.get(item.id)
        if found is None:
            config = config or self.store.config_for(item)
            found = (requirements_for(config), stage_upscalers(config))
            if len(self._reqs) > 50_000:
                self._reqs.clear()
            self._reqs[item.id] = found
        return found

    def _routed(self, name: str, caps: Capabilities | None) -> Capabilities | None:
        """*caps* of node *name* with every upscaler another usable node has added."""
        caps = caps or self.monitor.health(name).capabilities
        if caps is None:
            return None
        names = list(caps.upscalers)
        with self._lock:
            others = [o for o in self._nodes if o != name]
        for other in others:
            health = self.monitor.health(other)
            if health.usable and health.capabilities is not None:
                names.extend(health.capabilities.upscalers)
        return replace(caps, upscalers=tuple(dict.fromkeys(names)))

    def _upscale_target(self, name: str, job: UpscaleJob) -> tuple[str, Any] | None:
        """Another node to run this upscale on, when *name* lacks the upscaler (None: here)."""
        wanted = {job.upscaler, job.upscaler_2} - {"", "None"}
        if has_upscalers(self.monitor.health(name).capabilities, wanted):
            return None
        best: tuple[int, str, Any] | None = None
        with self._lock:
            for other, node in self._nodes.items():
                health = self.monitor.health(other)
                backend = self.monitor.backend(other)
                if (other == name or not health.usable or backend is None
                        or not has_upscalers(health.capabilities, wanted)):
                    continue
                candidate = (len(node.inflight), other, backend)
                if best is None or candidate[:2] < best[:2]:
                    best = candidate
        return (best[1], best[2]) if best else None

    def _view(self, node: _Node, now: float) -> NodeView:
        """The node as the planner must see it now: its in-flight work still to do."""
        view = node.view
        remaining = 0.0
        for k, entry in enumerate(sorted(node.inflight.values(), key=lambda e: e.claimed_at)):
            expected = duration(entry.req, view)
            if k == 0:
                began = max(entry.claimed_at, node.last_finish)
                expected = max(expected - (now - began), 0.05 * expected)
            remaining += expected
        slots = max(1, view.max_concurrent)
        # The monitor's record is the truth (the copy in the view is updated by a callback a
        # moment later, which a planning thread may not see yet).
        health = self.monitor.health(view.name)
        return NodeView(view.name, health.capabilities or view.capabilities, tier=view.tier,
                        max_concurrent=view.max_concurrent,
                        healthy=health.usable, enabled=view.enabled,
                        busy_for=remaining / slots, running=min(len(node.inflight), slots),
                        speeds=view.speeds or self._calibrated_prior(view), vram=view.vram)

    def _calibrated_prior(self, view: NodeView) -> dict[str, float]:
        """A node not measured yet: its VRAM-based prior, in the units the measured nodes
        showed (otherwise a prior in made-up units would look 100× too slow or fast next to
        real measurements, and the node would never get the work that measures it)."""
        prior = NodeView(view.name, view.capabilities).speed_for("medium")
        ratios = []
        for other in self._nodes.values():
            measured = other.view.speeds
            if measured:
                base = NodeView(other.view.name, other.view.capabilities).speed_for("medium")
                ratios.append(sum(measured.values()) / len(measured) / base)
        if not ratios:
            return {}
        ratios.sort()
        factor = ratios[len(ratios) // 2]
        return {c: prior * factor for c in ("small", "medium", "large")}

    def _pending(self) -> list[tuple[WorkItem, Job]]:
        """The first `window` queued items in run order whose retry time has come."""
        return self.store.queued_in_order(self.window)

    def _choose(self, name: str, *, fresh: bool = False) -> set[int]:
        if self.policy is Policy.earliest_finish and not fresh:
            cached = self._from_cache(name)
            if cached:
                return cached
        pending = self._pending()
        if not pending:
            return set()
        # Interactive runs are pinned to their node and go first there.
        pinned = [i.id for i, j in pending if j.node_pin == name]
        if pinned:
            self._plan_cache = None
            return {pinned[0]}
        if any(j.node_pin is not None for _, j in pending):
            self._plan_cache = None  # pinned work elsewhere: plan every claim afresh
        free = [(i, j) for i, j in pending if j.node_pin is None]
        if not free:
            return set()
        now = time.monotonic()
        views = [self._view(n, now) for n in self._nodes.values()]
        me = next(v for v in views if v.name == name)
        reqs = [self._placed(i, views) for i, _ in free]
        pick: int | None
        if self.policy is Policy.least_used:
            # SwarmUI: the next item in order goes to a free eligible backend, the least used
            # of those free at once, ties in list order.
            idle = [v for v in views if v.healthy and v.enabled and v.capabilities is not None
                    and not self._nodes[v.name].inflight]
            order = {n: k for k, n in enumerate(self._nodes)}
            pick = pick_least_used(reqs, me, idle, self._used, order)
            return set() if pick is None else {free[pick][0].id}
        if self.policy is Policy.round_robin:
            usable = [v for v in views if v.healthy and v.enabled]
            pick = self._round_robin.pick([i.id for i, _ in free], reqs, usable, name)
            return set() if pick is None else {free[pick][0].id}
        planned = plan_by_priority(reqs, [job.priority for _, job in free], views, list(self._nodes))
        # The other nodes' next claims use this plan while it is fresh (no pinned work was
        # waiting): one plan per round of claims instead of one per claim.
        self._plan_cache = _PlanCache(now, {node: deque(free[k][0].id for k in picks)
                                            for node, picks in planned.items()})
        return self._from_cache(name) or set()

    def _from_cache(self, name: str) -> set[int] | None:
        cache = self._plan_cache
        if cache is None or time.monotonic() - cache.made_at > REPLAN_AFTER:
            return None
        ids = cache.per_node.get(name)
        return {ids.popleft()} if ids else None

    def _emit(self, event: qr.QueueEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("cluster: event listener failed on %r", type(event).__name__)

    def _fail_unassignable(self) -> list[qr.ItemFinished]:
        """Fail the queued items no node could ever take, naming what is missing.

        Only decided when every enabled node has been probed at least once: a node that has
        not answered yet might have the model. With no node enabled at all, everything fails.
        """
        # Only worth looking again when the queue or what the nodes have changed (or every
        # few seconds: retries whose backoff ran out join the pending items by themselves).
        key = (self.store.revision(), int(time.monotonic() // 3), tuple(
            (name, id(self.monitor.health(name).capabilities)) for name in self._nodes))
        if key == self._unassignable_key:
            return []
        self._unassignable_key = key
        with self._lock:
            configs = [n.config for n in self._nodes.values()]
            enabled = [c for c in configs if c.enabled]
            # (A node refusing our password may have the model: it waits for the user too.)
            if any(self.monitor.health(c.name).capabilities is None for c in enabled):
                return []
            # As if every node were answering: a node that is down may come back.
            views = []
            for n in self._nodes.values():
                v = self._view(n, time.monotonic())
                v.healthy = True
                views.append(v)
            names = {v.name for v in views}
            doomed: list[tuple[WorkItem, Job, str]] = []
            for item, job in self._pending():
                if job.node_pin is not None and job.node_pin not in names:
                    doomed.append((item, job, f"The job is pinned to the node '{job.node_pin}', "
                                              "which is not set up."))
                    continue
                req = self._placed(item, views)
                candidates = ([v for v in views if v.name == job.node_pin] if job.node_pin
                              else views)
                if not eligible_nodes(req, candidates):
                    doomed.append((item, job, why_nobody(req, candidates)))
            events: list[qr.ItemFinished] = []
            for item, job, reason in doomed:
                claimant = job.node_pin or SCHEDULER_CLAIMANT
                claim = self.store.claim_next(claimant, can_take=partial(_is_item, item.id))
                if claim is None:
                    continue
                state = self.store.fail(claim.item.id, claim.lease, reason,
                                        detail="no eligible node", transient=False)
                if state is ItemState.failed:
                    events.append(qr.ItemFinished(item, ItemState.failed, reason))
            return events


def _is_item(item_id: int, item: WorkItem, _job: Job) -> bool:
    return item.id == item_id
