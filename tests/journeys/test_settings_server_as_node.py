"""Journey: a user with a server in Settings adds the PC in the attic as a node; the Nodes tab
says the Settings server is now left out of the queue and adds it in one click; after a restart
both are nodes, ready, and the tab says nothing more."""

from __future__ import annotations

from PySide6.QtCore import Qt

from stablenew.cluster.nodes import NodeConfig, NodeRegistry
from stablenew.storage.paths import AppPaths
from tests.journeys.conftest import save_server


def open_nodes(qtbot, window):
    qtbot.waitUntil(lambda: hasattr(window.nodes_panel, "server_row"), timeout=10000)
    window.work_tabs.setCurrentWidget(window.nodes_panel)
    return window.nodes_panel


def test_the_settings_server_joins_the_nodes_in_one_click(qtbot, journey, fake_process):
    den, attic = fake_process(step_ms=5), fake_process(step_ms=5)
    save_server(den.url)
    registry = NodeRegistry.load(AppPaths.default().nodes_file)
    registry.add(NodeConfig(name="attic", url=attic.url, kind="a1111"))
    registry.save()

    window = journey.open()
    panel = open_nodes(qtbot, window)
    qtbot.waitUntil(panel.server_row.isVisible, timeout=10000)
    assert den.url in panel.server_hint.text()
    qtbot.mouseClick(panel.add_server_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.server_row.isVisible(), timeout=5000)
    name = den.url.split("://", 1)[1]
    qtbot.waitUntil(lambda: [n.name for n in NodeRegistry.load(AppPaths.default().nodes_file)]
                    == ["attic", name], timeout=5000)

    window = journey.restart()
    panel = open_nodes(qtbot, window)
    qtbot.waitUntil(lambda: window.status.cluster_label.text() == "· 2 of 2 nodes ready",
                    timeout=15000)
    assert not panel.server_row.isVisible()
    model = panel.controller.model
    assert sorted(model.index(r, 0).data() for r in range(model.rowCount())) == sorted(
        ["attic", name])
