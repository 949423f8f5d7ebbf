"""Fixtures for the runner tests: a started node (backend plus its fault controls).

`node` is parametrised over backend kinds so the same pipeline tests run on every kind of
node: the in-process MemoryBackend, the A1111 fake and the ComfyUI fake (both real HTTP on
127.0.0.1, through the real clients). The runner only knows the Backend protocol.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from stablenew.backends import errors as be
from stablenew.pipeline.config import PipelineConfig
from tests.pipeline.memory_backend import MemoryBackend

_KINDS = ["memory", "a1111", "comfyui"]


@dataclass
class Node:
    """A started backend and the knobs a test turns on its server."""

    kind: str
    backend: Any
    server: Any = None
    extra: dict = field(default_factory=dict)

    def fail_next(self, stage: str) -> None:
        """Make the next request of *stage* fail with a server error (HTTP 500)."""
        if self.kind == "memory":
            self.backend.fail_next[stage] = be.ServerError("The server failed (test).")
        elif self.kind == "comfyui":
            self.server.fail_next_of(stage)
        else:
            self.server.inject("500", path=_PATHS[stage])

    def vanish(self) -> None:
        """The server goes away (process killed, network gone)."""
        if self.kind == "memory":
            self.backend.vanished = True
        else:
            self.extra["stopping"] = asyncio.ensure_future(self.server.stop())

    def slow(self, stage: str, step_s: float) -> None:
        """Make *stage* take step_s per step (so a test can act in the middle of it)."""
        if self.kind == "memory":
            self.backend.method_step_s[stage] = step_s
        else:
            self.server.step_s = step_s

    @property
    def interrupts(self) -> list[str]:
        if self.kind == "memory":
            return self.backend.interrupts
        if self.kind == "comfyui":  # newer servers cancel through /api/jobs/{id}/cancel
            return [*self.server.interrupts, *self.server.cancels]
        return list(self.server.interrupts)

    def running(self) -> bool:
        """True while the node is working on a job."""
        if self.kind == "memory":
            return self.backend._current is not None
        return self.server.current_task is not None

    def finished_jobs(self) -> int:
        """Generation jobs the node ran to the end."""
        if self.kind == "memory":
            return sum(1 for c in self.backend.calls if c.finished)
        if self.kind == "comfyui":
            done = 0
            for body in self.server.received:
                item = self.server.history(body.get("prompt_id", "")) or {}
                done += item.get("status", {}).get("status_str") == "success"
            return done
        return self.server.images_generated

    def calls(self, stage: str) -> int:
        if self.kind == "memory":
            return sum(1 for c in self.backend.calls if c.method == stage)
        if self.kind == "comfyui":
            return len(self.server.prompts_of(stage))
        return len(self.server.requests_to(_PATHS[stage]))


_PATHS = {"txt2img": "/sdapi/v1/txt2img", "img2img": "/sdapi/v1/img2img",
          "adetailer": "/sdapi/v1/img2img", "upscale": "/sdapi/v1/extra-single-image"}


@pytest.fixture(params=_KINDS)
async def node(request):
    kind = request.param
    if kind == "memory":
        backend = MemoryBackend(step_s=0.002)
        yield Node(kind, backend)
        return
    from stablenew.backends.connect import connect

    if kind == "comfyui":
        from tests.fakes.comfyui import FakeComfyUI

        fake = FakeComfyUI(step_ms=2, face_detailer=True)  # ADetailer needs the Impact Pack
    else:
        from tests.fakes.sdwebui import FakeSDWebUI

        fake = FakeSDWebUI(step_ms=2)
    url = await fake.start()
    backend = await connect(url, kind=kind, timeout=20)
    try:
        yield Node(kind, backend, fake)
    finally:
        await backend.aclose()
        await fake.stop()


def small_config(**changes: Any) -> PipelineConfig:
    """A fast config: tiny images, few steps, fixed seed."""
    base = {"txt2img.prompt": "a red fox in the snow", "txt2img.width": 64,
            "txt2img.height": 64, "txt2img.steps": 4, "txt2img.seed": 1000,
            "img2img.steps": 4, "upscale.scale": 2.0}
    base.update(changes)
    return PipelineConfig().with_changes(base)


@pytest.fixture
def sdwebui_thread():
    """The A1111 fake serving from its own thread (for the CLI, which runs its own loop)."""
    from tests.fakes.sdwebui import FakeSDWebUI

    with FakeSDWebUI(step_ms=2).running_in_thread() as fake:
        yield fake
