"""Where each stage of an item runs: the final upscale may go to another node of the cluster.

A hires upscaler must be where the txt2img runs, but the upscale stage takes the finished image
in its request, so a node without that upscaler can hand just that stage to one that has it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from stablenew.cluster.scheduler import NodeView
from stablenew.cluster.work import WorkRequirements, model_key

if TYPE_CHECKING:
    from stablenew.backends.protocol import Backend
    from stablenew.backends.types import (
        ADetailerJob,
        BackendKind,
        Capabilities,
        Img2ImgJob,
        JobResult,
        ProgressCallback,
        Txt2ImgJob,
        UpscaleJob,
    )
    from stablenew.cluster.health import NodeHealth, NodeMonitor
    from stablenew.pipeline.config import PipelineConfig

log = logging.getLogger("stablenew.cluster.dispatcher")

#: (node name, upscale job) -> (the other node's name, its backend), or None to keep it here
UpscaleTarget = Callable[[str, "UpscaleJob"], "tuple[str, Backend] | None"]


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


def routed_capabilities(caps: Capabilities | None, others: Sequence[NodeHealth]
                        ) -> Capabilities | None:
    """A node's *caps* with every upscaler another usable node (*others*) has added: the
    upscale stage can go there."""
    if caps is None:
        return None
    names = list(caps.upscalers)
    for health in others:
        if health.usable and health.capabilities is not None:
            names.extend(health.capabilities.upscalers)
    return replace(caps, upscalers=tuple(dict.fromkeys(names)))


def upscale_target(name: str, job: UpscaleJob, monitor: NodeMonitor, load: dict[str, int]
                   ) -> tuple[str, Backend] | None:
    """Another node to run this upscale on when node *name* lacks the upscaler (None: here):
    the answering node that has it with the least work in flight (*load*), ties by name."""
    wanted = {job.upscaler, job.upscaler_2} - {"", "None"}
    if has_upscalers(monitor.health(name).capabilities, wanted):
        return None
    best: tuple[int, str, Backend] | None = None
    for other, busy in load.items():
        health = monitor.health(other)
        backend = monitor.backend(other)
        if (other == name or not health.usable or backend is None
                or not has_upscalers(health.capabilities, wanted)):
            continue
        candidate = (busy, other, backend)
        if best is None or candidate[:2] < best[:2]:
            best = candidate
    return (best[1], best[2]) if best else None


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
    *routed* adds to a node's capabilities the upscalers other nodes would run for it. Every
    other call goes to the node's own backend.
    """

    def __init__(self, name: str, backend: Backend, target: UpscaleTarget,
                 routed: Callable[[str, Capabilities | None], Capabilities | None]) -> None:
        self._name = name
        self._backend = backend
        self._target = target
        self._routed = routed
        self._remote: dict[str, Backend] = {}
        self.url = backend.url
        self.name = backend.name

    @property
    def kind(self) -> BackendKind:
        return self._backend.kind

    @property
    def capabilities(self) -> Capabilities | None:
        """The node's own, plus the upscalers another node runs its upscale stage with (what
        the runner checks a config against before it sends anything)."""
        return self._routed(self._name, getattr(self._backend, "capabilities", None))

    async def probe(self) -> Capabilities:
        caps = await self._backend.probe()
        return self._routed(self._name, caps) or caps

    async def ping(self) -> None:
        await self._backend.ping()

    async def txt2img(self, job: Txt2ImgJob, on_progress: ProgressCallback | None = None
                      ) -> JobResult:
        return await self._backend.txt2img(job, on_progress)

    async def img2img(self, job: Img2ImgJob, on_progress: ProgressCallback | None = None
                      ) -> JobResult:
        return await self._backend.img2img(job, on_progress)

    async def adetailer(self, job: ADetailerJob, on_progress: ProgressCallback | None = None
                        ) -> JobResult:
        return await self._backend.adetailer(job, on_progress)

    async def upscale(self, job: UpscaleJob, on_progress: ProgressCallback | None = None
                      ) -> JobResult:
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

    async def aclose(self) -> None:
        await self._backend.aclose()
