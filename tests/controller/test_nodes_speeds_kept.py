"""The speeds a cluster run learned are saved off the Qt thread (an atomic write with an fsync,
slow on a slow disk), and closing waits for them."""

from __future__ import annotations

import asyncio
import os
import time

from stablenew.cluster.dispatcher import ClusterDispatcher
from stablenew.cluster.estimates import load_speeds, speeds_file
from stablenew.cluster.nodes import NodeConfig
from stablenew.cluster.queue_store import QueueStore
from stablenew.controller.nodes_controller import NodesController
from stablenew.storage.paths import AppPaths
from tests.loop_lag import LAG_LIMIT_S


def test_learned_speeds_are_written_off_the_qt_thread(qtbot, qloop, tmp_path, monkeypatch):
    nodes = NodesController(nodes_file=tmp_path / "nodes.yaml", db_path=tmp_path / "q.db")
    store = QueueStore(tmp_path / "q.db")
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:  # a slow disk
        time.sleep(0.4)
        real_fsync(fd)

    try:
        dispatcher = ClusterDispatcher(store, [NodeConfig(name="den", url="http://127.0.0.1:9")],
                                       speeds={"den": {"small": 2.5}})
        dispatcher.detach()
        monkeypatch.setattr(os, "fsync", slow_fsync)
        began = time.monotonic()
        kept = nodes.keep_learned_speeds(dispatcher)
        took = time.monotonic() - began
        assert took < LAG_LIMIT_S, f"the Qt thread stood still {took:.3f} s"
        qtbot.waitUntil(kept.done, timeout=10000)
        assert load_speeds(speeds_file(AppPaths.default().data_dir)) == {"den": {"small": 2.5}}
    finally:
        store.close()
        closing = asyncio.ensure_future(nodes.aclose())
        qtbot.waitUntil(closing.done, timeout=5000)
