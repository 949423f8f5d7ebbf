"""Journey: two SD servers in nodes.yaml, a queued batch spread over both, one server killed
mid-batch: the other finishes its images, and every image is made exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from stablenew.cluster.jobs import ItemState
from stablenew.cluster.nodes import NodeConfig, NodeRegistry
from stablenew.cluster.queue_store import QueueStore
from stablenew.storage.paths import AppPaths
from tests.journeys.conftest import bar_says, images_on_disk, item_states, queue_batch, save_server


def items():
    with QueueStore(AppPaths.default().database_file) as store:
        return store.reads.items()


def test_a_node_killed_mid_batch_leaves_every_image_made_once(qtbot, journey, fake_process):
    den, attic = fake_process(step_ms=60), fake_process(step_ms=60)
    save_server(den.url)
    registry = NodeRegistry.load(AppPaths.default().nodes_file)
    registry.add(NodeConfig(name="den", url=den.url, kind="a1111"))
    registry.add(NodeConfig(name="attic", url=attic.url, kind="a1111"))
    registry.save()

    window = journey.open()
    qtbot.waitUntil(lambda: window.status.cluster_label.text() == "· 2 of 2 nodes ready",
                    timeout=10000)
    queue_batch(qtbot, window, "a copper kettle", 10)
    qtbot.waitUntil(lambda: window.session.queue_mode == "cluster", timeout=5000)
    # Both nodes have taken work (an image done or at the server) before one of them dies.
    qtbot.waitUntil(lambda: {i.node for i in items() if i.node} >= {"den", "attic"}
                    and item_states().get("done", 0) >= 2, timeout=20000)
    assert bar_says(window.commands).startswith("Running “a copper kettle” · image ")
    attic.kill()

    qtbot.waitUntil(lambda: item_states().get("done", 0) == 10, timeout=60000)
    done = items()
    assert all(i.state is ItemState.done and len(i.outputs) == 1 for i in done)
    outputs = Counter(Path(i.outputs[0]).resolve() for i in done)
    assert len(outputs) == 10 and max(outputs.values()) == 1, "no image was made twice"
    assert {p.resolve() for p in images_on_disk(window)} == set(outputs), \
        "exactly the recorded images are on disk: none left behind by the dead node"
    qtbot.waitUntil(lambda: window.commands.state_label.text() == "", timeout=10000)
