"""Placement: which queued item a node of the cluster takes next, under the dispatcher's policy.

- earliest finish (StableNew's policy): the queued items are planned over every healthy node
  with `plan_by_priority` — eligibility first, then each item where it would finish soonest
  given that node's work in flight and its learned speed — and the node takes the first item
  the plan gives it. A plan serves the claims of the next `REPLAN_AFTER` seconds, so a slow
  card never takes the last big item that a fast card would finish sooner; when the plan
  gives a node nothing, it waits.
- round robin and least used (SwarmUI: the first free eligible backend takes the next item)
  are there as baselines for the benchmark.

Interactive runs pinned to a node go first there. Also decided here: which queued items no
node could ever take, and why.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from stablenew.cluster.health import NodeMonitor
from stablenew.cluster.jobs import ItemState, Job, WorkItem
from stablenew.cluster.node_book import NodeBook
from stablenew.cluster.queue_events import ItemFinished
from stablenew.cluster.queue_store import QueueStore
from stablenew.cluster.routing import relax_for_remote_upscale, stage_upscalers
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
from stablenew.cluster.work import WorkRequirements, requirements_for

if TYPE_CHECKING:
    from stablenew.pipeline.config import PipelineConfig

#: A plan younger than this serves the next claims; older, the queue is planned again.
REPLAN_AFTER = 0.2
#: Name under which the dispatcher itself claims an item it must fail (no node can take it).
SCHEDULER_CLAIMANT = "(scheduler)"


@dataclass
class _PlanCache:
    """The last plan's next items per node, used by claims soon after it was made."""

    made_at: float  # monotonic
    per_node: dict[str, deque[int]]


class Placement:
    """Chooses the items each node may take (see the module docstring). Called under the
    dispatcher's lock; *nodes* is the dispatcher's own book, shared."""

    def __init__(self, store: QueueStore, monitor: NodeMonitor, nodes: dict[str, NodeBook], *,
                 policy: Policy, window: int) -> None:
        self.store = store
        self.monitor = monitor
        self._nodes = nodes
        self.policy = policy
        #: Queued items looked at per planning round (in run order); later ones wait their turn.
        self.window = window
        #: Items each node has taken (the least-used policy's count).
        self.used: dict[str, int] = {n: 0 for n in nodes}
        self._reqs: dict[int, tuple[WorkRequirements, frozenset[str]]] = {}
        self._round_robin = RoundRobin()
        self._plan_cache: _PlanCache | None = None

    def forget_plan(self) -> None:
        """What the last plan assumed is gone (a node came or went, work came back)."""
        self._plan_cache = None

    # --- what items need and nodes have ---------------------------------------------------------

    def requirements(self, item: WorkItem, config: PipelineConfig | None = None
                     ) -> WorkRequirements:
        return self._cached(item, config)[0]

    def _placed(self, item: WorkItem, job: Job, views: Sequence[NodeView]) -> WorkRequirements:
        """The item's requirements for the node that runs its first stages (an upscale stage
        another answering node can do need not be possible there), with its job's tier."""
        req, movable = self._cached(item)
        req = relax_for_remote_upscale(req, movable, views)
        return replace(req, tier=job.tier) if job.tier is not None else req

    def _cached(self, item: WorkItem, config: PipelineConfig | None = None
                ) -> tuple[WorkRequirements, frozenset[str]]:
        found = self._reqs.get(item.id)
        if found is None:
            config = config or self.store.reads.config_for(item)
            found = (requirements_for(config), stage_upscalers(config))
            if len(self._reqs) > 50_000:
                self._reqs.clear()
            self._reqs[item.id] = found
        return found

    def view(self, node: NodeBook, now: float) -> NodeView:
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

    def pending(self) -> list[tuple[WorkItem, Job]]:
        """The first `window` queued items in run order whose retry time has come."""
        return self.store.reads.queued_in_order(self.window)

    # --- the choice ------------------------------------------------------------------------------

    def choose(self, name: str, *, fresh: bool = False) -> set[int]:
        """The ids of the items node *name* may take now (empty: it waits); *fresh* plans
        again even when a recent plan is at hand."""
        if self.policy is Policy.earliest_finish and not fresh:
            cached = self._from_cache(name)
            if cached:
                return cached
        pending = self.pending()
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
        views = [self.view(n, now) for n in self._nodes.values()]
        me = next(v for v in views if v.name == name)
        reqs = [self._placed(i, j, views) for i, j in free]
        pick: int | None
        if self.policy is Policy.least_used:
            # SwarmUI: the next item in order goes to a free eligible backend, the least used
            # of those free at once, ties in list order.
            idle = [v for v in views if v.healthy and v.enabled and v.capabilities is not None
                    and not self._nodes[v.name].inflight]
            order = {n: k for k, n in enumerate(self._nodes)}
            pick = pick_least_used(reqs, me, idle, self.used, order)
            return set() if pick is None else {free[pick][0].id}
        if self.policy is Policy.round_robin:
            usable = [v for v in views if v.healthy and v.enabled]
            pick = self._round_robin.pick([i.id for i, _ in free], reqs, usable, name)
            return set() if pick is None else {free[pick][0].id}
        planned = plan_by_priority(reqs, [job.priority for _, job in free], views,
                                   list(self._nodes))
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

    def unassignable(self) -> list[tuple[WorkItem, Job, str]]:
        """The queued items no node could ever take, each with the reason (what is missing),
        judged as if every node were answering: a node that is down may come back."""
        views = []
        for n in self._nodes.values():
            v = self.view(n, time.monotonic())
            v.healthy = True
            views.append(v)
        names = {v.name for v in views}
        doomed: list[tuple[WorkItem, Job, str]] = []
        for item, job in self.pending():
            if job.node_pin is not None and job.node_pin not in names:
                doomed.append((item, job, f"The job is pinned to the node '{job.node_pin}', "
                                          "which is not set up."))
                continue
            req = self._placed(item, job, views)
            candidates = [v for v in views if v.name == job.node_pin] if job.node_pin else views
            if not eligible_nodes(req, candidates):
                doomed.append((item, job, why_nobody(req, candidates)))
        return doomed

    def fail_unassignable(self) -> list[ItemFinished]:
        """Fail the queued items no node could ever take, each with its reason; claimed first,
        so one a worker took meanwhile is left alone."""
        events: list[ItemFinished] = []
        for item, job, reason in self.unassignable():
            if " does not have " in reason:  # a file the node's lists, read at its probe, lack
                reason += (" Copied it to a node since? Press Probe in the Nodes tab (or run "
                           "`stablenew nodes probe`): the node reads its folders again. Then "
                           "press Retry failed.")
            claimant = job.node_pin or SCHEDULER_CLAIMANT
            claim = self.store.claim_next(claimant, can_take=_only(item.id))
            if claim is None:
                continue
            state = self.store.fail(claim.item.id, claim.lease, reason,
                                    detail="no eligible node", transient=False)
            if state is ItemState.failed:
                events.append(ItemFinished(item, ItemState.failed, reason))
        return events


def _only(item_id: int) -> Callable[[WorkItem, Job], bool]:
    """A claim filter that takes just the item *item_id*."""
    def take(item: WorkItem, _job: Job) -> bool:
        return item.id == item_id
    return take
