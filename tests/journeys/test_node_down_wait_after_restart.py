"""Journey: the only node in the Nodes list is off when the user queues a batch. The window
says why nothing starts (a notice, the Queue tab, the bar) instead of nothing at all; it says so again
after a restart, and the batch runs once the node's server is started."""

from __future__ import annotations

from stablenew.cluster.nodes import NodeConfig, NodeRegistry
from stablenew.cluster.queue_store import QueueStore
from stablenew.storage.paths import AppPaths
from tests.journeys.conftest import item_states, queue_batch, save_server
from tests.journeys.test_queue_server_late import free_port

WAITING = "Waiting for a node to answer. attic: No Stable Diffusion server answers at"


def _says_it_waits(qtbot, window, port: int) -> None:
    label = window.queue_panel.node_label
    qtbot.waitUntil(lambda: window.notice.message.startswith(WAITING), timeout=20000)
    assert window.notice.isVisible()
    assert f"http://127.0.0.1:{port}" in window.notice.message
    assert window.notice.message.endswith("The queued images run as soon as one does.")
    assert not label.isHidden() and label.text().startswith(WAITING)
    stage = window.status.stage_label  # the bar says it too, for as long as it lasts
    assert stage.isVisible() and stage.text() == "Waiting for a node…"
    assert stage.toolTip().startswith(WAITING)
    with qtbot.waitSignal(window.session.queue.jobs_changed, timeout=10000):
        window.session.queue.refresh()  # the queue's list read again, as after any change
    assert not label.isHidden() and label.text().startswith(WAITING), "it still waits"


def test_a_batch_for_a_node_that_is_off_says_why_it_waits_and_runs_when_it_answers(
        qtbot, journey, fake_process):
    den = fake_process(step_ms=5)  # the server in Settings: not a node, so not used
    save_server(den.url)
    port = free_port()
    registry = NodeRegistry.load(AppPaths.default().nodes_file)
    registry.add(NodeConfig(name="attic", url=f"http://127.0.0.1:{port}", kind="a1111"))
    registry.save()

    window = journey.open()
    qtbot.waitUntil(lambda: window.status.cluster_label.text() == "· 0 of 1 nodes ready",
                    timeout=15000)
    queue_batch(qtbot, window, "a lantern in fog", 3)
    _says_it_waits(qtbot, window, port)
    assert window.session.queue.count == 3

    window = journey.restart()
    _says_it_waits(qtbot, window, port)

    fake_process(step_ms=5, port=port)
    qtbot.waitUntil(lambda: item_states() == {"done": 3}, timeout=60000)
    qtbot.waitUntil(lambda: window.queue_panel.node_label.isHidden(), timeout=10000)
    qtbot.waitUntil(lambda: not window.status.stage_label.isVisible(), timeout=10000)
    assert window.session.queue.waiting == ""
    with QueueStore(AppPaths.default().database_file) as store:
        assert {i.node for i in store.reads.items()} == {"attic"}
