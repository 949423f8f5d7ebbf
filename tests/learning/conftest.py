"""A real SD node for learning tests: the fake A1111 WebUI over HTTP with our A1111 client.

Until the fake server and the A1111 client are both in the tree, the pipeline room's
in-process MemoryBackend stands in (it still makes real PNGs through the real runner).
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.fakes.sdwebui import fake_sdwebui_thread  # noqa: F401  (fixture: the window's server)


def _available(*modules: str) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except ModuleNotFoundError:
        return False


HTTP_FAKE = _available("tests.fakes.sdwebui", "stablenew.backends.a1111", "aiohttp")


@pytest.fixture
async def sd_backend():
    """A Backend whose server answers fast (1 ms per step)."""
    if HTTP_FAKE:
        from stablenew.backends.a1111 import A1111Backend
        from tests.fakes.sdwebui import FakeSDWebUI

        async with FakeSDWebUI(step_ms=1) as fake:
            backend = A1111Backend(fake.url, name="fake-node", timeout=20, poll_interval=0.05)
            try:
                yield backend
            finally:
                await backend.aclose()
        return
    from tests.pipeline.memory_backend import MemoryBackend

    yield MemoryBackend(step_s=0.001)


def small_config(**changes):
    from stablenew.pipeline.config import PipelineConfig

    base = {"txt2img.prompt": "a red fox in the snow", "txt2img.width": 64, "txt2img.height": 64,
            "txt2img.steps": 4, "txt2img.seed": 1000}
    base.update(changes)
    return PipelineConfig().with_changes(base)
