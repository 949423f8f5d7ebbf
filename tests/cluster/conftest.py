"""Cluster tests: the shared qasync loop fixture (tests/conftest.py) serves the nodes panel; the
dispatcher tests share a queue store."""

import pytest

from stablenew.cluster.queue_store import QueueStore


@pytest.fixture
def store(tmp_path):
    s = QueueStore(tmp_path / "q.db")
    yield s
    s.close()
