"""Queue tests: a store in tmp_path and the fake SD WebUI fixtures (the qasync loop fixture is the
shared one)."""

from __future__ import annotations

import pytest

from stablenew.cluster.queue_store import QueueStore
from tests.fakes.sdwebui import fake_sdwebui, fake_sdwebui_thread  # noqa: F401  (fixtures)


@pytest.fixture
def store(tmp_path):
    s = QueueStore(tmp_path / "q.db")
    yield s
    s.close()
