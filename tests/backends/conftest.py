"""Backend tests run against the fake SD servers over real HTTP on 127.0.0.1."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.fakes.sdwebui import fake_sdwebui, fake_sdwebui_thread  # noqa: F401  (fixtures)


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def small_png() -> bytes:
    return png()
