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
