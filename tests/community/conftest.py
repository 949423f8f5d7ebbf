"""Community tests talk to the fake CivitAI over real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

from tests.fakes.civitai import fake_civitai, fake_civitai_thread  # noqa: F401  (fixtures)


@pytest.fixture
def dead_url():
    """An address on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
