"""Fixtures for the ComfyUI backend tests: a fake ComfyUI node and a client bound to it."""

from __future__ import annotations

import pytest

from tests.fakes.comfyui import FakeComfyUI


@pytest.fixture
async def fake_comfyui():
    """A started fake ComfyUI on a free port (fast steps); yields the FakeComfyUI."""
    async with FakeComfyUI(step_ms=2) as fake:
        yield fake


@pytest.fixture
def fake_comfyui_thread():
    """A fake ComfyUI served from a background thread, for sync tests (CLI); yields it with .url set."""
    fake = FakeComfyUI(step_ms=2)
    with fake.running_in_thread():
        yield fake


@pytest.fixture
async def comfy(fake_comfyui, tmp_path):
    """A ComfyUIBackend talking to `fake_comfyui`, with short idle checks."""
    from stablenew.backends.comfyui import ComfyUIBackend

    backend = ComfyUIBackend(fake_comfyui.url, name="den-3060", workflows_dir=tmp_path / "workflows")
    backend.idle_check_s = 0.3
    yield backend
    await backend.aclose()
