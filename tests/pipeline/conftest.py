"""Fixtures for the runner tests: a started node (backend plus its fault controls).

`node` is parametrised over backend kinds so the same pipeline tests run on every fake
server that exists: the in-process MemoryBackend always, the A1111 HTTP fake when
`tests.fakes.sdwebui` and `stablenew.backends.connect` are installed. The ComfyUI room can add
its kind by extending `_KINDS` and `_start`.
"""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import dataclass, field
from typing import Any

import pytest

from stablenew.backends import errors as be
from stablenew.pipeline.config import PipelineConfig
from tests.pipeline.memory_backend import MemoryBackend


def _available(*modules: str) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except ModuleNotFoundError:
        return False


_KINDS = ["memory"]
if _available("tests.fakes.sdwebui", "stablenew.backends.connect"):
    _KINDS.append("a1111")


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
        return self.server.images_generated

    def calls(self, stage: str) -> int:
        if self.kind == "memory":
            return sum(1 for c in self.backend.calls if c.method == stage)
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
    from tests.fakes.sdwebui import FakeSDWebUI

    fake = FakeSDWebUI(step_ms=2)
    url = await fake.start()
    backend = await connect(url, kind="a1111", timeout=20)
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
    if not _available("tests.fakes.sdwebui", "stablenew.backends.connect"):
        pytest.skip("the A1111 fake server is not available")
    from tests.fakes.sdwebui import FakeSDWebUI

    with FakeSDWebUI(step_ms=2).running_in_thread() as fake:
        yield fake
