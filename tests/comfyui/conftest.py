"""Fixtures for the ComfyUI backend tests: a fake ComfyUI node and a client bound to it."""

from __future__ import annotations

import pytest

from tests.fakes.comfyui import fake_comfyui, fake_comfyui_thread  # noqa: F401  (fixtures)


@pytest.fixture
async def comfy(fake_comfyui, tmp_path):  # noqa: F811
    """A ComfyUIBackend named 'den-3060' talking to `fake_comfyui`, with short idle checks."""
    from stablenew.backends.comfyui import ComfyUIBackend

    backend = ComfyUIBackend(fake_comfyui.url, name="den-3060", workflows_dir=tmp_path / "workflows")
    backend.idle_check_s = 0.3
    yield backend
    await backend.aclose()
