"""What a Run works with: the server and the queue it goes to, the work a plan provider hands
it, and how it fails (shared by the Run and the learning runs, which are queue jobs too)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

from stablenew.errors import StableNewError

if TYPE_CHECKING:
    from stablenew.backends.protocol import Backend
    from stablenew.backends.types import Capabilities
    from stablenew.controller.queue_controller import PlanEntry, QueueController
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.randomizer.plan import Plan

__all__ = ["NodeFailed", "PlanProvider", "PlanWork", "RunNotQueued", "RunQueue", "RunServer"]

#: The Run's work from a plan provider: its plan (configs or plan items, iterated off the Qt
#: thread when queued), None to run the config as it is, or a Future of the randomizer's plan
#: built on its own worker (whose None, too, runs the config as it is).
PlanWork: TypeAlias = "Iterable[PlanEntry] | concurrent.futures.Future[Plan | None] | None"
#: Called with the cards' config when Run is pressed (the randomizer's, a pack's).
PlanProvider: TypeAlias = "Callable[[PipelineConfig], PlanWork]"


class RunServer(Protocol):
    """What Run asks of the window's server (a ServerController): what it offers, its node and
    its backend; told when the node failed hard."""

    @property
    def capabilities(self) -> Capabilities | None: ...
    @property
    def node_name(self) -> str: ...
    async def ensure_backend(self) -> Backend: ...
    def mark_failed(self, exc: BaseException) -> None: ...


@dataclass(frozen=True)
class RunQueue:
    """Where Run's work goes: the queue (a QueueController) working on *node*, the preferred
    node its job is pinned to, and whether the queue still works (False: its runner stopped,
    so nothing would ever take the job)."""

    queue: QueueController
    node: str
    working: Callable[[], bool]
    #: Awaited when the Run is over (the window stops a runner it started only for the Run).
    finished: Callable[[], Awaitable[None]] | None = None


class RunNotQueued(StableNewError):
    """The queue could not take or finish a Run (it stopped, it could not be opened)."""


class NodeFailed(StableNewError):
    """The node a Run was pinned to stopped answering or cannot be used."""

    fatal_for_node = True
