"""Journey: the app opens with work left in the queue while the SD server is still off; the user
starts the server and presses Try again: the queue picks up by itself, with no error of its own."""

from __future__ import annotations

import socket

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from stablenew.cluster.queue_store import QueueStore
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.paths import AppPaths
from tests.journeys.conftest import item_states, save_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_left_work_waits_for_the_server_then_resumes(qtbot, journey, fake_process):
    port = free_port()
    save_server(f"http://127.0.0.1:{port}")
    # What a crash left: a batch of four, one image claimed at the server and never finished.
    config = PipelineConfig.model_validate({"txt2img": {
        "prompt": "a red kite", "steps": 8, "width": 64, "height": 64, "batch_count": 4}})
    with QueueStore(AppPaths.default().database_file) as store:
        store.add_job(config, name="a red kite")
        assert store.claim_next("window", start=True) is not None
    assert item_states() == {"queued": 3, "running": 1}

    window = journey.open(connect=False)
    qtbot.waitUntil(lambda: window.session.server.state == "unreachable", timeout=10000)
    qtbot.waitUntil(lambda: window.server_notice.isVisible(), timeout=5000)
    # The Queue tab says the work waits for the server; the queue adds no error of its own.
    label = window.queue_panel.node_label
    qtbot.waitUntil(lambda: not label.isHidden() and "does not answer yet" in label.text(),
                    timeout=15000)
    assert "carries on by itself" in label.text()
    assert not window.session.queue.running
    assert not window.notice.isVisible(), "the server's banner says it; the queue adds no error"

    fake_process(step_ms=20, port=port)
    try_again = next(b for b in window.server_notice.findChildren(QPushButton)
                     if b.text() == "Try again")
    qtbot.mouseClick(try_again, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: item_states() == {"done": 4}, timeout=30000)
