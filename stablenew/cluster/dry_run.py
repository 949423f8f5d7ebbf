"""The dry run: which node would make each queued image, and when, without sending anything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from stablenew.cluster.jobs import ItemState
from stablenew.cluster.queue_store import QueueStore
from stablenew.cluster.routing import relax_for_remote_upscale, stage_upscalers
from stablenew.cluster.scheduler import (
    NodeView,
    Plan,
    Policy,
    makespan_lower_bound,
    plan_earliest_finish,
    plan_least_used,
    plan_round_robin,
)
from stablenew.cluster.work import requirements_for


@dataclass(frozen=True)
class PlanRow:
    """One line of the dry-run table."""

    label: str
    job_name: str
    node: str  # "" when no node can take it
    start: float
    finish: float
    reason: str = ""


@dataclass(frozen=True)
class DryRun:
    rows: tuple[PlanRow, ...]
    makespan: float
    lower_bound: float

    @property
    def unassignable(self) -> tuple[PlanRow, ...]:
        return tuple(r for r in self.rows if not r.node)


def dry_run(store: QueueStore, views: Sequence[NodeView], *, policy: Policy | str = Policy.earliest_finish,
            limit: int | None = None) -> DryRun:
    """The assignment table for what is queued now, without sending anything to any node."""
    jobs = {j.id: j for j in store.reads.list_jobs()}
    order = {job_id: k for k, job_id in enumerate(jobs)}
    items = sorted(store.reads.items(states=[ItemState.queued]),
                   key=lambda i: (order.get(i.job_id, len(order)), i.index))
    if limit is not None:
        items = items[:limit]
    configs = [store.reads.config_for(i) for i in items]
    # Each with the tier its job asks for, as the dispatcher plans it.
    reqs = [replace(relax_for_remote_upscale(requirements_for(c), stage_upscalers(c), views),
                    tier=jobs[i.job_id].tier if i.job_id in jobs else None)
            for i, c in zip(items, configs, strict=True)]
    planner = {Policy.earliest_finish: plan_earliest_finish, Policy.round_robin: plan_round_robin,
               Policy.least_used: plan_least_used}[Policy(policy)]
    plan: Plan = planner(reqs, list(views))
    rows: list[PlanRow] = []
    for a in sorted(plan.assignments, key=lambda a: (a.start, a.node)):
        item = items[a.item]
        rows.append(PlanRow(item.label, jobs[item.job_id].name, a.node, a.start, a.finish))
    for index, reason in sorted(plan.unassignable.items()):
        item = items[index]
        rows.append(PlanRow(item.label, jobs[item.job_id].name, "", 0.0, 0.0, reason))
    bound = makespan_lower_bound(reqs, list(views)) if reqs else 0.0
    return DryRun(tuple(rows), plan.makespan, bound)
