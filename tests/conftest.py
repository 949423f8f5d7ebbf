"""Shared test setup: offscreen Qt, and config/data folders isolated per test."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own StableNew config/data/output folders under tmp_path."""
    home = tmp_path / "stablenew-home"
    monkeypatch.setenv("STABLENEW_HOME", str(home))
    return home
