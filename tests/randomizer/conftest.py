"""Shared randomizer test fixtures: a copy of a real-shaped sd-dynamic-prompts wildcard folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "randomizer" / "wildcards"


@pytest.fixture
def wildcards(tmp_path: Path) -> Path:
    """A writable copy of tests/data/randomizer/wildcards (txt, nested folders, YAML, JSON)."""
    target = tmp_path / "wildcards"
    shutil.copytree(DATA, target)
    return target


@pytest.fixture
async def backend():
    """A real A1111 client talking HTTP to the fake SD WebUI (no step delay)."""
    from stablenew.backends.connect import connect
    from tests.fakes.sdwebui import FakeSDWebUI

    fake = FakeSDWebUI(step_ms=0)
    url = await fake.start()
    client = await connect(url, kind="a1111", timeout=20)
    try:
        yield client, fake
    finally:
        await client.aclose()
        await fake.stop()
