"""Queue tests: the fake SD WebUI fixtures (the qasync loop fixture is the shared one)."""

from __future__ import annotations

from tests.fakes.sdwebui import fake_sdwebui, fake_sdwebui_thread  # noqa: F401  (fixtures)
