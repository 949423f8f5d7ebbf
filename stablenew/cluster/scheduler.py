"""Which node runs which work item: eligibility, expected finish times, and the dry-run plan.

StableNew's policy plans the remaining items with earliest-finish-time list scheduling —
heaviest and most constrained items first, each to the node where it would finish soonest
given that node's queue and measured speed — and re-plans whenever a node frees up, so a
slow card never picks up the last big item that a fast card would finish sooner. Tiers: a node
of the tier the work asks for wins unless it would finish clearly later; then the work overflows
down the tier order (`tiers.overflow_distance`), each step costing a little more.

Round-robin and SwarmUI's "least used eligible backend, ties in list order" are here too,
as baselines for the benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from stablenew.backends.comfyui_references import IP_ADAPTER_LOADER as IP_ADAPTER_NODE
from stablenew.backends.references import KINDS, choose_model
from stablenew.backends.types import BackendKind, Capabilities, ReferenceKind, ReferenceUnit
from stablenew.cluster.tiers import NodeTier, as_tier, overflow_distance
from stablenew.cluster.work import GB, VramExperience, WorkRequirements, guess_family, model_key
from stablenew.pipeline.eta import RateTracker

#: For work that asks for no tier: a node one step further down the tier order is chosen only
#: when the nearer one would finish this much later.
TIER_TOLERANCE = 0.10
#: For work that asks for a tier (a funnel's drafts, quality passes, final upscale): the same,
#: per step, but it holds to its tier more firmly: a node one step away takes it only when the
#: asked tier's nodes would finish half as late again.
ASKED_TIER_TOLERANCE = 0.5
#: Speed assumed before a node has finished any work: work units per second per 8 GB of VRAM.
PRIOR_UNITS_PER_SECOND_PER_8GB = 1.0
#: Speed assumed for a node without a GPU until it is measured: a CPU-only ComfyUI made a
#: 256x256, 10-step image (0.66 units) in about 8.6 s, some 15 times slower than the GPU prior.
PRIOR_CPU_UNITS_PER_SECOND = 0.075


@dataclass
class NodeView:
    """What the scheduler knows of one node at a moment."""

    name: str
    capabilities: Capabilities | None
    tier: NodeTier = NodeTier.standard
    max_concurrent: int = 1
    healthy: bool = True
    enabled: bool = True
    #: Seconds until the work already running or assigned there is expected to finish.
    busy_for: float = 0.0
    running: int = 0
    #: Measured speed in work units per second, by size class ("small", "medium", "large").
    speeds: dict[str, float] = field(default_factory=dict)
    vram: VramExperience = field(default_factory=VramExperience)
    #: How `speeds` are learnt: one tracker per size class (seconds per work unit).
    rates: dict[str, RateTracker] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.tier = as_tier(self.tier)  # a name, or an old registry's number

    def tier_cost(self, asked: NodeTier | None) -> float:
        """The factor on this node's finish time for work asking for tier *asked*: 1 for that
        tier, more the further down the overflow order the node is."""
        per_step = TIER_TOLERANCE if asked is None else ASKED_TIER_TOLERANCE
        return 1.0 + per_step * overflow_distance(asked, self.tier)

    @property
    def vram_total_gb(self) -> float | None:
        caps = self.capabilities
        if caps is None or caps.has_gpu is False:
            return None  # a CPU node's "VRAM" is its system memory
        return caps.vram_total / GB if caps.vram_total else None

    @property
    def cpu_only(self) -> bool:
        """The node computes on its CPU: planned as slow until its speed is measured."""
        return self.capabilities is not None and self.capabilities.has_gpu is False

    def speed_for(self, size_class: str) -> float:
        if size_class in self.speeds:
            return self.speeds[size_class]
        if self.speeds:  # measured at another size: the best clue we have
            return sum(self.speeds.values()) / len(self.speeds)
        if self.cpu_only:
            return PRIOR_CPU_UNITS_PER_SECOND
        gb = self.vram_total_gb or 8.0
        return PRIOR_UNITS_PER_SECOND_PER_8GB * gb / 8.0

    def learn_speed(self, size_class: str, units: float, seconds: float) -> None:
        """Fold one finished item's measured speed into the node's estimate: the same tracker
        as every time estimate (settles through noise, follows a real change in two items)."""
        if seconds <= 0 or units <= 0:
            return
        tracker = self.rates.get(size_class)
        if tracker is None:
            known = self.speeds.get(size_class)  # learnt in an earlier run
            tracker = self.rates[size_class] = RateTracker(
                1.0 / known if known else None, measured=known is not None)
        tracker.observe(seconds / units)
        assert tracker.value is not None
        self.speeds[size_class] = 1.0 / tracker.value


def ineligibility(req: WorkRequirements, node: NodeView) -> str | None:
    """Why *node* cannot take the work, in plain words; None when it can."""
    if not node.enabled:
        return f"{node.name} is switched off"
    if not node.healthy:
        return f"{node.name} is not answering"
    caps = node.capabilities
    if caps is None:
        return f"{node.name} has not been probed yet"
    if req.checkpoint and caps.checkpoints:
        wanted = model_key(req.checkpoint)
        if wanted not in {model_key(c) for c in caps.checkpoints}:
            return f"{node.name} does not have the model '{req.checkpoint}'"
    if caps.upscalers:
        have = {model_key(u) for u in caps.upscalers}
        missing = sorted(u for u in req.upscalers if model_key(u) not in have)
        if missing:
            return f"{node.name} does not have the upscaler '{missing[0]}'"
    if req.adetailer_models:
        have = {model_key(m) for m in caps.adetailer_models}
        missing = sorted(m for m in req.adetailer_models if model_key(m) not in have)
        if missing:
            return f"{node.name} does not have the ADetailer model '{missing[0]}'"
    if req.loras and caps.loras:  # a node that lists no LoRAs (or cannot) is let try
        have = {model_key(name) for name in caps.loras}
        missing = sorted(name for name in req.loras if model_key(name) not in have)
        if missing:
            return f"{node.name} does not have the LoRA '{missing[0]}'"
    if req.references:
        why = _reference_gap(req, caps)
        if why:
            return f"{node.name} {why}"
    if req.node_classes and caps.node_classes:
        missing = sorted(req.node_classes - caps.node_classes)
        if missing:
            return f"{node.name} lacks the ComfyUI node '{missing[0]}'"
    if not node.vram.fits(req.family, req.vram_gb, node.vram_total_gb):
        total = node.vram_total_gb
        card = f"{total:.0f} GB" if total else "its"
        return (f"{node.name} has too little VRAM ({card}; this needs about "
                f"{req.vram_gb:.0f} GB)")
    return None


def _reference_gap(req: WorkRequirements, caps: Capabilities) -> str:
    """What a node lacks for the work's reference images ("" when nothing, or when it cannot
    tell: an A1111 node that lists no ControlNet models is let try, like LoRAs)."""
    if req.references and caps.has_controlnet is False:
        return "has no ControlNet (the sd-webui-controlnet extension; Forge has it built in)"
    family = req.family
    if not req.checkpoint and not req.family_chosen and caps.current_checkpoint:
        family = guess_family(caps.current_checkpoint)  # the model this node has loaded
    for kind_name, model in sorted(req.references):
        kind = ReferenceKind(kind_name)
        info = KINDS[kind]
        if info.ip_adapter and caps.kind == BackendKind.comfyui:
            if caps.node_classes and IP_ADAPTER_NODE not in caps.node_classes:
                return "lacks the IP-Adapter nodes (ComfyUI_IPAdapter_plus)"
            continue
        if not caps.controlnet_models:
            if caps.kind == BackendKind.comfyui and not info.ip_adapter:
                return "has no ControlNet models"
            continue
        unit = ReferenceUnit(b"", kind, model=model)
        if choose_model(unit, caps.controlnet_models, family) is None:
            return f"does not have a ControlNet model for {info.label.lower()}" + (
                f" ('{model}')" if model else "")
    return ""


def eligible_nodes(req: WorkRequirements, nodes: Sequence[NodeView]) -> list[NodeView]:
    return [n for n in nodes if ineligibility(req, n) is None]


def _eligibility(reqs: Sequence[WorkRequirements], nodes: Sequence[NodeView]
                 ) -> dict[int, list[NodeView]]:
    """Eligible nodes per item, worked out once per distinct requirement (a queue holds
    hundreds of items but only a handful of different kinds of work)."""
    memo: dict[WorkRequirements, list[NodeView]] = {}
    out = {}
    for i, req in enumerate(reqs):
        found = memo.get(req)
        if found is None:
            found = memo[req] = eligible_nodes(req, nodes)
        out[i] = found
    return out


def why_nobody(req: WorkRequirements, nodes: Sequence[NodeView]) -> str:
    """The reason an item that no node can take fails with, naming what is missing."""
    if not nodes:
        return "No nodes are set up. Add one in the Nodes panel."
    reasons = [r for n in nodes if (r := ineligibility(req, n))]
    return "No node can run this: " + "; ".join(reasons) + "."


def duration(req: WorkRequirements, node: NodeView) -> float:
    return req.work_units / max(node.speed_for(req.size_class), 1e-9)


@dataclass(frozen=True)
class Assignment:
    item: int  # index into the planned items
    node: str
    start: float
    finish: float


@dataclass
class Plan:
    assignments: list[Assignment]
    unassignable: dict[int, str]  # item index -> reason

    @property
    def makespan(self) -> float:
        return max((a.finish for a in self.assignments), default=0.0)

    def for_node(self, name: str) -> list[Assignment]:
        return sorted((a for a in self.assignments if a.node == name), key=lambda a: a.start)


def _lanes(node: NodeView) -> list[float]:
    """Per-slot availability times: busy_for spread over the node's running slots."""
    lanes = [0.0] * node.max_concurrent
    for i in range(min(node.running, node.max_concurrent)):
        lanes[i] = node.busy_for
    if node.running == 0 and node.busy_for > 0:
        lanes[0] = node.busy_for
    return lanes


def plan_earliest_finish(reqs: Sequence[WorkRequirements], nodes: Sequence[NodeView]) -> Plan:
    """StableNew's plan: heaviest/most constrained first, each where it finishes soonest."""
    lanes = {n.name: _lanes(n) for n in nodes}
    eligible = _eligibility(reqs, nodes)
    unassignable = {i: why_nobody(reqs[i], nodes) for i, e in eligible.items() if not e}
    shortest: dict[WorkRequirements, float] = {}
    for i, e in eligible.items():
        if e and reqs[i] not in shortest:
            shortest[reqs[i]] = min(duration(reqs[i], n) for n in e)
    order = sorted(
        (i for i in eligible if eligible[i]),
        # Longest best-case duration first; fewer eligible nodes first among equals.
        key=lambda i: (-shortest[reqs[i]], len(eligible[i]), i),
    )
    assignments: list[Assignment] = []
    # The dispatcher re-plans at every claim: durations are worked out once per kind of work.
    durations: dict[tuple[WorkRequirements, str], float] = {}
    for i in order:
        req = reqs[i]
        best: tuple[float, float, float, str, int, float] | None = None
        for node in eligible[i]:
            lane_times = lanes[node.name]
            lane = 0 if len(lane_times) == 1 else min(range(len(lane_times)),
                                                      key=lane_times.__getitem__)
            start = lane_times[lane]
            took = durations.get((req, node.name))
            if took is None:
                took = durations[(req, node.name)] = duration(req, node)
            finish = start + took
            # The asked (or preferred) tier wins unless it would finish clearly later.
            cost = node.tier_cost(req.tier)
            candidate = (finish * cost, cost, start, node.name, lane, finish)
            if best is None or candidate < best:
                best = candidate
        assert best is not None
        _, _, start, name, lane, finish = best
        lanes[name][lane] = finish
        assignments.append(Assignment(i, name, start, finish))
    # Within a node, run in plan order (by start time) so the dry-run table reads naturally.
    assignments.sort(key=lambda a: (a.start, a.node))
    return Plan(assignments, unassignable)


def plan_round_robin(reqs: Sequence[WorkRequirements], nodes: Sequence[NodeView]) -> Plan:
    """Baseline: item k goes to the next eligible node in turn, whatever it costs there."""
    lanes = {n.name: _lanes(n) for n in nodes}
    turn = 0
    assignments: list[Assignment] = []
    unassignable: dict[int, str] = {}
    for i, req in enumerate(reqs):
        eligible = eligible_nodes(req, nodes)
        if not eligible:
            unassignable[i] = why_nobody(req, nodes)
            continue
        node = eligible[turn % len(eligible)]
        turn += 1
        lane_times = lanes[node.name]
        lane = min(range(len(lane_times)), key=lane_times.__getitem__)
        start = lane_times[lane]
        finish = start + duration(req, node)
        lane_times[lane] = finish
        assignments.append(Assignment(i, node.name, start, finish))
    return Plan(assignments, unassignable)


def plan_least_used(reqs: Sequence[WorkRequirements], nodes: Sequence[NodeView]) -> Plan:
    """Baseline (SwarmUI's policy): items in order; each goes to the first eligible backend
    to have a free slot, the least used among those free at once, ties in list order."""
    lanes = {n.name: _lanes(n) for n in nodes}
    order = {n.name: k for k, n in enumerate(nodes)}
    used = {n.name: 0 for n in nodes}
    assignments: list[Assignment] = []
    unassignable: dict[int, str] = {}
    clock = 0.0
    for i, req in enumerate(reqs):
        eligible = eligible_nodes(req, nodes)
        if not eligible:
            unassignable[i] = why_nobody(req, nodes)
            continue
        free_at = {n.name: min(lanes[n.name]) for n in eligible}
        clock = max(clock, min(free_at.values()))  # FIFO: this item waits for the first free slot
        free_now = [n for n in eligible if free_at[n.name] <= clock + 1e-12]
        node = min(free_now, key=lambda n: (used[n.name], order[n.name]))
        lane_times = lanes[node.name]
        lane = min(range(len(lane_times)), key=lane_times.__getitem__)
        start = max(lane_times[lane], clock)
        finish = start + duration(req, node)
        lane_times[lane] = finish
        used[node.name] += 1
        assignments.append(Assignment(i, node.name, start, finish))
    return Plan(assignments, unassignable)


def makespan_lower_bound(reqs: Sequence[WorkRequirements], nodes: Sequence[NodeView]) -> float:
    """A makespan no schedule can beat, respecting eligibility.

    The larger of (a) the longest item on its fastest eligible node and (b) the fluid bound:
    the least T at which the work units could be split fractionally over eligible nodes, node
    n absorbing at most T × speed_n × slots_n units. (b) is exact as a max-flow when a node's
    speed in work units is the same at every size, which is what work units are built for;
    it is found by bisection on T.
    """
    groups: dict[tuple[str, ...], float] = {}
    single = 0.0
    for req in reqs:
        eligible = eligible_nodes(req, nodes)
        if not eligible:
            continue
        single = max(single, min(duration(req, n) for n in eligible))
        key = tuple(sorted(n.name for n in eligible))
        groups[key] = groups.get(key, 0.0) + req.work_units
    if not groups:
        return 0.0
    rate = {n.name: n.speed_for("medium") * n.max_concurrent for n in nodes}
    total = sum(groups.values())

    def fits(t: float) -> bool:
        graph = _FlowGraph()
        for g, (key, units) in enumerate(groups.items()):
            graph.add("S", f"g{g}", units)
            for name in key:
                graph.add(f"g{g}", f"n{name}", float("inf"))
        for name, r in rate.items():
            graph.add(f"n{name}", "T", t * r)
        return graph.max_flow("S", "T") >= total * (1 - 1e-9)

    lo, hi = 0.0, total / min(r for r in rate.values() if r > 0) + single
    for _ in range(60):
        mid = (lo + hi) / 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return max(hi, single)


class _FlowGraph:
    """Edmonds–Karp max-flow on a handful of nodes (groups × nodes, tiny)."""

    def __init__(self) -> None:
        self.cap: dict[str, dict[str, float]] = {}

    def add(self, a: str, b: str, c: float) -> None:
        self.cap.setdefault(a, {})
        self.cap.setdefault(b, {})
        self.cap[a][b] = self.cap[a].get(b, 0.0) + c
        self.cap[b].setdefault(a, 0.0)

    def max_flow(self, s: str, t: str) -> float:
        flow = 0.0
        while True:
            parent = {s: s}
            frontier = [s]
            while frontier and t not in parent:
                nxt = []
                for u in frontier:
                    for v, c in self.cap[u].items():
                        if c > 1e-12 and v not in parent:
                            parent[v] = u
                            nxt.append(v)
                frontier = nxt
            if t not in parent:
                return flow
            bottleneck = float("inf")
            v = t
            while v != s:
                u = parent[v]
                bottleneck = min(bottleneck, self.cap[u][v])
                v = u
            v = t
            while v != s:
                u = parent[v]
                self.cap[u][v] -= bottleneck
                self.cap[v][u] += bottleneck
                v = u
            flow += bottleneck


# --- choosing at claim time: what a freed node takes next --------------------------------------------


class Policy(StrEnum):
    """How the cluster's nodes take queued items: earliest finish is StableNew's; the other two
    are baselines for the benchmark."""

    earliest_finish = "earliest_finish"
    round_robin = "round_robin"
    least_used = "least_used"


def pick_least_used(reqs: Sequence[WorkRequirements], me: NodeView, idle: Sequence[NodeView],
                    used: dict[str, int], order: dict[str, int]) -> int | None:
    """SwarmUI's rule: the index of the first item *me* may take that no free, less used
    eligible node would take instead (ties in list *order*); None when there is none."""
    for k, req in enumerate(reqs):
        if ineligibility(req, me) is not None:
            continue
        rivals = [v for v in idle if ineligibility(req, v) is None]
        if rivals and min(rivals, key=lambda v: (used.get(v.name, 0), order[v.name])).name != me.name:
            continue  # a free, less used node takes this one
        return k
    return None


class RoundRobin:
    """Each item is given once to the next eligible node in turn; a node takes what it was given
    (an item given to a node that has gone is given again)."""

    def __init__(self) -> None:
        self._turn = 0
        self._owner: dict[int, str] = {}

    def pick(self, item_ids: Sequence[int], reqs: Sequence[WorkRequirements],
             usable: Sequence[NodeView], name: str) -> int | None:
        """The index of the first item that is *name*'s turn; None when there is none."""
        names = {v.name for v in usable}
        for k, (item_id, req) in enumerate(zip(item_ids, reqs, strict=True)):
            owner = self._owner.get(item_id)
            if owner is None or owner not in names:
                eligible = eligible_nodes(req, usable)
                if not eligible:
                    continue
                owner = eligible[self._turn % len(eligible)].name
                self._turn += 1
                self._owner[item_id] = owner
            if owner == name:
                return k
        return None


def plan_by_priority(reqs: Sequence[WorkRequirements], priorities: Sequence[int],
                     views: Sequence[NodeView], node_names: Sequence[str]) -> dict[str, list[int]]:
    """Earliest finish, one priority level at a time: per node, the indexes of the items it
    should take, in order.

    Priority is a promise: a level is planned before the next, and its work occupies the nodes
    first (each view's `busy_for` grows with it). A node the plan gives nothing at a level (the
    others finish that work sooner) backfills from the next.
    """
    per_node: dict[str, list[int]] = {}
    for level in sorted(set(priorities), reverse=True):
        picks = [k for k, priority in enumerate(priorities) if priority == level]
        plan = plan_earliest_finish([reqs[k] for k in picks], views)
        for node_name in node_names:
            if node_name not in per_node:
                mine = plan.for_node(node_name)
                if mine:
                    per_node[node_name] = [picks[a.item] for a in mine]
        busy = {v.name: v for v in views}
        for a in plan.assignments:
            busy[a.node].busy_for = max(busy[a.node].busy_for, a.finish)
    return per_node
