"""The dispatcher's book on each node: what it knows of it, what it runs, its worker; and the
status the Nodes panel and the status bar show of it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from stablenew.cluster import queue_runner as qr
from stablenew.cluster.health import NodeHealth, NodeState
from stablenew.cluster.nodes import NodeConfig
from stablenew.cluster.queue_events import RunSummary
from stablenew.cluster.scheduler import NodeView
from stablenew.cluster.tiers import NodeTier
from stablenew.cluster.work import WorkRequirements


@dataclass(frozen=True)
class WorkingOn:
    """An item a node is working on, in the terms people know it by."""

    label: str  # the id people type: job id / image number
    job_name: str
    number: int  # 1-based, within its job
    total: int | None  # images in the job (None: not known)
    prompt: str  # its prompt, whitespace folded


@dataclass
class InFlight:
    """One item a node holds: what it needs and when it was claimed."""

    item_id: int
    label: str
    req: WorkRequirements
    claimed_at: float  # monotonic
    working_on: WorkingOn | None = None


@dataclass
class NodeBook:
    """The dispatcher's book on one node: what it knows, what it runs, its worker."""

    config: NodeConfig
    view: NodeView
    inflight: dict[int, InFlight] = field(default_factory=dict)
    last_finish: float = 0.0
    runner: qr.QueueRunner | None = None
    task: asyncio.Task[RunSummary] | None = None
    done: int = 0
    restart_at: float = 0.0  # monotonic: a worker that died of an error waits before the next
    #: Being removed: it takes no new work and no worker starts for it again (one started
    #: while the old one stopped was left running on a closed client, failing its item).
    leaving: bool = False

    @property
    def cap(self) -> int:
        # One running request per slot plus one ready behind them.
        return self.config.max_concurrent + 1

    def status(self, health: NodeHealth) -> NodeStatus:
        """The node as the Nodes panel shows it, given what its monitor knows."""
        caps = health.capabilities
        return NodeStatus(
            name=self.config.name, url=self.config.url,
            kind=caps.kind.value if caps else self.config.kind.value,
            tier=self.config.tier, state=health.state, message=health.message,
            current=tuple(f.label for f in self.inflight.values()), done=self.done,
            vram_gb=self.view.vram_total_gb, device=caps.device if caps else "",
            speeds=dict(self.view.speeds),
            working_on=tuple(f.working_on for f in self.inflight.values() if f.working_on))


@dataclass(frozen=True)
class NodeStatus:
    """One node as the Nodes panel and the status bar show it."""

    name: str
    url: str
    kind: str
    tier: NodeTier
    state: NodeState
    message: str
    current: tuple[str, ...]  # labels of the items it is working on
    done: int
    vram_gb: float | None
    device: str
    speeds: dict[str, float]
    working_on: tuple[WorkingOn, ...] = ()  # the same items, readable
