"""Where each stage of an item runs: the final upscale may go to another node of the cluster.

A hires upscaler must be where the txt2img runs, but the upscale stage takes the finished image
in its request, so a node without that upscaler can hand just that stage to one that has it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from stablenew.cluster.scheduler import NodeView
from stablenew.cluster.work import WorkRequirements, model_key

if TYPE_CHECKING:
    from stablenew.backends.types import Capabilities, UpscaleJob
    from stablenew.pipeline.config import PipelineConfig

log = logging.getLogger("stablenew.cluster.dispatcher")

#: (node name, upscale job) -> (the other node's name, its backend), or None to keep it here
UpscaleTarget = Callable[[str, "UpscaleJob"], "tuple[str, Any] | None"]


def stage_upscalers(config: PipelineConfig) -> frozenset[str]:
    """Upscalers only the final upscale stage needs: that stage may run on another node (the
    image travels with the request); a hires upscaler must be where the txt2img runs."""
    if not config.upscale.enabled:
        return frozenset()
    names = {config.upscale.upscaler, config.upscale.upscaler_2} - {"", "None"}
    t2i = config.txt2img
    if t2i.enabled and t2i.hires.enabled:
        names.discard(t2i.hires.upscaler)
    return frozenset(names)


def has_upscalers(caps: Capabilities | None, wanted: set[str] | frozenset[str]) -> bool:
    if caps is None:
        return False
    if not caps.upscalers:
        return True  # the node does not list them: let it try
    have = {model_key(u) for u in caps.upscalers}
    return all(model_key(u) in have for u in wanted)


def relax_for_remote_upscale(req: WorkRequirements, movable: frozenset[str],
                             views: Sequence[NodeView]) -> WorkRequirements:
    """*req* without the upscale-stage upscalers some answering node has."""
    if not movable:
        return req
    elsewhere = {model_key(u) for u in movable if any(
        v.healthy and v.enabled and has_upscalers(v.capabilities, {u}) for v in views)}
    if not elsewhere:
        return req
    return replace(req, upscalers=frozenset(u for u in req.upscalers
                                            if model_key(u) not in elsewhere))


class StageRouter:
    """A node's backend that sends the upscale stage to another node when this one lacks the
    upscaler. The image travels in the request; an interrupt follows the request.

    *target* names the node (and its backend) to send an upscale to, or None to keep it here;
    *routed* adds to a node's capabilities the upscalers other nodes would run for it.
    """

    def __init__(self, name: str, backend: Any, target: UpscaleTarget,
                 routed: Callable[[str, Capabilities | None], Capabilities | None]) -> None:
        self._name = name
        self._backend = backend
        self._target = target
        self._routed = routed
        self._remote: dict[str, Any] = {}

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._backend, attr)

    @property
    def kind(self) -> Any:
        return self._backend.kind

    @property
    def capabilities(self) -> Capabilities | None:
        """The node's own, plus the upscalers another node runs its upscale stage with (what
        the runner checks a config against before it sends anything)."""
        return self._routed(self._name, getattr(self._backend, "capabilities", None))

    async def probe(self) -> Capabilities:
        caps = await self._backend.probe()
        return self._routed(self._name, caps) or caps

    async def upscale(self, job: UpscaleJob, on_progress: Any = None) -> Any:
        target = self._target(self._name, job)
        if target is None:
            return await self._backend.upscale(job, on_progress)
        other, backend = target
        log.info("cluster: %s sends an upscale (%s) to %s", self._name, job.upscaler, other)
        self._remote[job.task_id] = backend
        try:
            return await backend.upscale(job, on_progress)
        finally:
            self._remote.pop(job.task_id, None)

    async def interrupt(self, task_id: str) -> None:
        await self._remote.get(task_id, self._backend).interrupt(task_id)
