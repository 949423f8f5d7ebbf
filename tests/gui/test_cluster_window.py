"""The window with a cluster: two fake SD servers in nodes.yaml under the isolated STABLENEW_HOME.

Queued batches spread over both nodes, the queue panel's Plan shows the dry-run table in the
Nodes tab, and the status bar says how many nodes are ready (only when there are nodes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stablenew.cluster.jobs import ItemState
from stablenew.cluster.nodes import NodeConfig, NodeRegistry
from stablenew.cluster.queue_store import QueueStore
from stablenew.storage.paths import AppPaths
from tests.fakes.sdwebui import FakeSDWebUI

TXT2IMG = "/sdapi/v1/txt2img"


@pytest.fixture
def two_servers():
    # Fixtures, not `with` blocks in the tests: the servers outlive the window, which pytest-qt
    # closes (and its session with it) before fixtures are torn down.
    with FakeSDWebUI(step_ms=6).running_in_thread() as den, \
            FakeSDWebUI(step_ms=6).running_in_thread() as attic:
        yield den, attic


@pytest.fixture
def two_nodes(two_servers):
    den, attic = two_servers
    registry = NodeRegistry.load(AppPaths.default().nodes_file)
    registry.add(NodeConfig(name="den", url=den.url, kind="a1111"))
    registry.add(NodeConfig(name="attic", url=attic.url, kind="a1111"))
    registry.save()
    return den, attic


def _open(qtbot, window_for, url):
    window = window_for(url)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=10000)
    return window


def _fill(window, **values):
    for path, value in values.items():
        window.pipeline_panel.editor(path).set_value(value)


def test_status_bar_says_how_many_nodes_are_ready(qtbot, window_for, two_nodes):
    den, attic = two_nodes
    window = _open(qtbot, window_for, den.url)
    label = window.status.cluster_label
    qtbot.waitUntil(lambda: label.text() == "· 2 of 2 nodes ready", timeout=8000)
    assert not label.isHidden()
    assert "den: Ready" in label.toolTip() and "attic: Ready" in label.toolTip()
    # A node switched off leaves the count; the single server stays in the status bar as before.
    window.session.nodes.set_enabled("attic", False)
    qtbot.waitUntil(lambda: label.text() == "· 1 of 1 nodes ready", timeout=8000)
    assert "attic: Off" in label.toolTip()
    assert window.status.node_label.text()


def test_one_pc_without_nodes_shows_no_cluster_line(qtbot, window_for, fake_sdwebui_thread):
    window = _open(qtbot, window_for, fake_sdwebui_thread.url)
    assert window.status.cluster_label.isHidden()
    assert window.session.cluster_enabled is False
    # Plan with no nodes says what to do instead of showing an empty table.
    window.queue_panel.plan_button.click()
    assert window.work_tabs.currentWidget() is window.nodes_panel
    assert "no nodes to plan over" in window.notice.message


def test_add_to_queue_with_two_nodes_finishes_items_on_both(qtbot, window_for, two_nodes):
    den, attic = two_nodes
    window = _open(qtbot, window_for, den.url)
    _fill(window, **{"txt2img.prompt": "spread", "txt2img.steps": 6, "txt2img.batch_count": 8,
                     "txt2img.width": 128, "txt2img.height": 128})
    window.commands.queue_button.click()
    queue = window.session.queue
    qtbot.waitUntil(lambda: queue.running, timeout=5000)
    qtbot.waitUntil(lambda: window.session.queue_mode == "cluster", timeout=5000)
    qtbot.waitUntil(lambda: den.images_generated + attic.images_generated >= 8, timeout=15000)
    qtbot.waitUntil(lambda: window.commands.queue_count.text() == "Queue: 0", timeout=10000)
    assert den.requests_to(TXT2IMG) and attic.requests_to(TXT2IMG), "both nodes took work"
    with QueueStore(AppPaths.default().database_file) as store:
        items = store.reads.items()
    assert len(items) == 8 and all(i.state is ItemState.done for i in items)
    assert {i.node for i in items} == {"den", "attic"}
    assert all(i.outputs for i in items)
    assert den.images_generated + attic.images_generated == 8, "nothing ran twice"
    # Queued images show in the gallery as Run's do.
    qtbot.waitUntil(lambda: len(window.session.gallery.items) >= 8, timeout=5000)
    shown = {Path(g.path).resolve() for g in window.session.gallery.items}
    assert {Path(out).resolve() for i in items for out in i.outputs} <= shown
    assert all(g.fresh for g in window.session.gallery.items[:8])
    # Stopping the cluster keeps the speeds it learned (for the next run and the plan).
    queue.stop_runner()
    qtbot.waitUntil(lambda: not queue.running, timeout=5000)
    assert window.session.queue_mode is None
    # The stop's save is written in a thread (atomic, with an fsync): it lands a moment later,
    # and nothing written before it (the estimates' own saves during the run) comes after it.
    speeds = AppPaths.default().data_dir / "node_speeds.json"
    qtbot.waitUntil(lambda: speeds.is_file()
                    and set(json.loads(speeds.read_text())) == {"den", "attic"}, timeout=5000)
    qtbot.wait(300)
    assert set(json.loads(speeds.read_text())) == {"den", "attic"}


def test_plan_button_shows_the_dry_run_table_without_sending(qtbot, window_for, two_nodes):
    den, attic = two_nodes
    window = _open(qtbot, window_for, den.url)
    queue = window.session.queue
    config = window.session.pipeline.build_config(
        {**window.pipeline_panel.values(), "txt2img.prompt": "planned", "txt2img.batch_count": 4,
         "txt2img.width": 128, "txt2img.height": 128})
    queue.add_config(config, name="planned")  # queued, not started: nothing runs
    qtbot.waitUntil(lambda: queue.count == 4, timeout=5000)
    nodes = window.session.nodes
    with qtbot.waitSignal(nodes.plan_changed, timeout=8000):
        window.queue_panel.plan_button.click()
    assert window.work_tabs.currentWidget() is window.nodes_panel
    plan = nodes.plan_model
    assert plan.rowCount() == 4
    assert {plan.index(r, 2).data() for r in range(4)} == {"den", "attic"}
    assert all(plan.index(r, 4).data() for r in range(4)), "each row has an expected finish"
    assert "Makespan" in window.nodes_panel.plan_label.text()
    assert den.requests_to(TXT2IMG) == [] and attic.requests_to(TXT2IMG) == []
    assert not queue.running


def test_the_running_queue_changes_over_when_the_first_node_is_added(qtbot, window_for, two_servers):
    den, attic = two_servers
    window = _open(qtbot, window_for, den.url)
    session = window.session
    _fill(window, **{"txt2img.prompt": "alone", "txt2img.steps": 4, "txt2img.batch_count": 2,
                     "txt2img.width": 128, "txt2img.height": 128})
    window.commands.queue_button.click()
    qtbot.waitUntil(lambda: den.images_generated >= 2, timeout=10000)
    assert session.queue_mode == "single" and attic.images_generated == 0
    # The user sets up a cluster while the queue runs: it changes over without a restart.
    assert session.nodes.add_node(NodeConfig(name="den", url=den.url, kind="a1111"))
    assert session.nodes.add_node(NodeConfig(name="attic", url=attic.url, kind="a1111"))
    qtbot.waitUntil(lambda: session.queue_mode == "cluster", timeout=8000)
    qtbot.waitUntil(lambda: window.status.cluster_label.text() == "· 2 of 2 nodes ready",
                    timeout=8000)
    _fill(window, **{"txt2img.prompt": "together", "txt2img.batch_count": 8})
    window.commands.queue_button.click()
    qtbot.waitUntil(lambda: den.images_generated + attic.images_generated >= 10, timeout=15000)
    assert attic.images_generated > 0, "the new node took work"
    # ... and back to the configured server when the last node is switched off.
    session.nodes.set_enabled("den", False)
    session.nodes.set_enabled("attic", False)
    qtbot.waitUntil(lambda: session.queue_mode == "single", timeout=8000)
    assert window.status.cluster_label.isHidden()


def test_an_idle_cluster_is_checked_again_and_a_lost_node_shows(qtbot, window_for, two_nodes):
    den, _attic = two_nodes
    brief = FakeSDWebUI(step_ms=6)
    serving = brief.running_in_thread()
    serving.__enter__()
    try:
        registry = NodeRegistry.load(AppPaths.default().nodes_file)
        registry.add(NodeConfig(name="brief", url=brief.url, kind="a1111"))
        registry.save()
        window = _open(qtbot, window_for, den.url)
        label = window.status.cluster_label
        qtbot.waitUntil(lambda: label.text() == "· 3 of 3 nodes ready", timeout=8000)
    finally:
        serving.__exit__(None, None, None)  # the server "brief" goes away
    window.session.set_node_check_interval(100)
    qtbot.waitUntil(lambda: label.text() == "· 2 of 3 nodes ready", timeout=8000)
    assert "brief: Not answering" in label.toolTip()
    window.session.set_node_check_interval(60_000)  # no probe left in flight as the window closes


def test_idle_checks_of_ready_nodes_are_pings_not_full_probes(qtbot, window_for, two_nodes):
    den, attic = two_nodes
    window = _open(qtbot, window_for, den.url)
    label = window.status.cluster_label
    qtbot.waitUntil(lambda: label.text() == "· 2 of 2 nodes ready", timeout=8000)
    listings = len(attic.requests_to("/sdapi/v1/sd-models"))
    pings = len(attic.requests_to("/sdapi/v1/progress"))
    window.session.set_node_check_interval(50)
    qtbot.waitUntil(lambda: len(attic.requests_to("/sdapi/v1/progress")) >= pings + 3, timeout=8000)
    window.session.set_node_check_interval(60_000)
    assert len(attic.requests_to("/sdapi/v1/sd-models")) == listings, "no model listing while idle"
    assert label.text() == "· 2 of 2 nodes ready"


def test_run_with_a_cluster_is_a_queue_item_on_the_window_server(qtbot, window_for, two_nodes):
    from stablenew.cluster.jobs import INTERACTIVE_PRIORITY

    den, attic = two_nodes
    window = _open(qtbot, window_for, den.url)
    session = window.session
    qtbot.waitUntil(lambda: window.status.cluster_label.text() == "· 2 of 2 nodes ready",
                    timeout=8000)
    _fill(window, **{"txt2img.prompt": "mine", "txt2img.steps": 4, "txt2img.batch_count": 3,
                     "txt2img.width": 128, "txt2img.height": 128})
    window.run()
    qtbot.waitUntil(lambda: session.pipeline.state == "idle", timeout=15000)
    assert session.pipeline.error is None, session.pipeline.error
    assert session.pipeline.progress.images_saved == 3
    with QueueStore(AppPaths.default().database_file) as store:
        (job,) = store.reads.list_jobs()
        items = store.reads.items(job.id)
    assert (job.priority, job.node_pin) == (INTERACTIVE_PRIORITY, "den")
    # "den" is the cluster's name for the window's server: the dispatcher ran the Run there.
    assert all(i.state is ItemState.done and i.node == "den" for i in items)
    assert len(den.requests_to(TXT2IMG)) == 3 and attic.requests_to(TXT2IMG) == []
    qtbot.waitUntil(lambda: len(session.gallery.items) == 3, timeout=5000)
    # Started for the Run alone, the cluster stops with it: a terminal may take the queue.
    assert not session.queue.running and session.queue_mode is None


def test_add_to_queue_fixes_the_current_model_so_two_nodes_never_mix_models(qtbot, window_for,
                                                                            tmp_path):
    """Issue 17 item 4, in the window: an A1111 on SDXL and a ComfyUI with only an SD1.5; a
    batch naming no model is queued with the preferred node's model, said in words, and only
    the node that has it makes the images."""
    from tests.fakes.comfyui import FakeComfyUI

    xl = "sd_xl_base_1.0.safetensors"
    with FakeSDWebUI(step_ms=1, checkpoints=(xl,)).running_in_thread() as sdxl, \
            FakeComfyUI(step_ms=1, checkpoints=("v1-5-pruned-emaonly.safetensors",)
                        ).running_in_thread() as comfy:
        registry = NodeRegistry.load(AppPaths.default().nodes_file)
        registry.add(NodeConfig(name="xl", url=sdxl.url, kind="a1111"))
        registry.add(NodeConfig(name="comfy", url=comfy.url, kind="comfyui"))
        registry.save()
        window = _open(qtbot, window_for, sdxl.url)
        messages: list[str] = []
        window.session.pipeline.message_changed.connect(messages.append)
        _fill(window, **{"txt2img.prompt": "a lighthouse", "txt2img.steps": 2,
                         "txt2img.width": 64, "txt2img.height": 64, "txt2img.batch_count": 4})
        window.commands.queue_button.click()
        qtbot.waitUntil(lambda: any("Queued with the model" in m for m in messages), timeout=10000)
        assert f"{xl}, the current model of node 'xl'" in next(
            m for m in messages if "Queued with the model" in m)

        def done() -> bool:
            with QueueStore(AppPaths.default().database_file) as store:
                items = store.reads.items()
                return len(items) == 4 and all(i.state is ItemState.done for i in items)

        qtbot.waitUntil(done, timeout=30000)
        with QueueStore(AppPaths.default().database_file) as store:
            items = store.reads.items()
            assert {i.node for i in items} == {"xl"}
            assert {store.reads.config_for(i).txt2img.checkpoint for i in items} == {xl}
        assert not comfy.received


def test_removing_every_node_mid_run_loses_no_image(qtbot, window_for, two_nodes):
    """The user removes both nodes in the Nodes tab while a batch runs: the queue goes back to
    the server in Settings and makes every image; none fails for want of a node meanwhile."""
    from PySide6.QtCore import Qt

    den, attic = two_nodes
    den.step_s = attic.step_s = 0.04  # slow enough to remove both mid-run
    window = _open(qtbot, window_for, den.url)
    session, panel = window.session, window.nodes_panel
    _fill(window, **{"txt2img.prompt": "kept", "txt2img.steps": 4, "txt2img.batch_count": 10,
                     "txt2img.width": 64, "txt2img.height": 64})
    window.commands.queue_button.click()
    qtbot.waitUntil(lambda: session.queue_mode == "cluster", timeout=8000)
    qtbot.waitUntil(lambda: den.images_generated + attic.images_generated >= 2, timeout=15000)
    window.work_tabs.setCurrentWidget(panel)
    for name in ("attic", "den"):
        row = next(r for r, n in enumerate(session.nodes.model.rows()) if n.config.name == name)
        panel.table.selectRow(row)
        qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
        box = panel.remove_question
        qtbot.waitUntil(box.isVisible, timeout=3000)
        button = next(b for b in box.buttons() if b.text().replace("&", "") == "Remove")
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda name=name: name not in
                        [n.config.name for n in session.nodes.model.rows()], timeout=5000)
    qtbot.waitUntil(lambda: session.queue_mode == "single", timeout=10000)
    qtbot.waitUntil(lambda: window.commands.queue_count.text() == "Queue: 0", timeout=20000)
    with QueueStore(AppPaths.default().database_file) as store:
        items = store.reads.items()
    assert [i.error for i in items if i.state is not ItemState.done] == []
    assert len(items) == 10 and all(len(i.outputs) == 1 for i in items)


def test_run_for_a_node_that_is_off_says_so_in_the_bar_until_it_answers(qtbot, window_for,
                                                                        fake_sdwebui_thread):
    """Run with the only node's server off: the bar says 'Waiting for a node…' (why, in its
    tooltip), not 'Starting…' for ever; the image is made once the server is started."""
    from tests.journeys.test_queue_server_late import free_port

    port = free_port()
    registry = NodeRegistry.load(AppPaths.default().nodes_file)
    registry.add(NodeConfig(name="attic", url=f"http://127.0.0.1:{port}", kind="a1111"))
    registry.save()
    window = _open(qtbot, window_for, fake_sdwebui_thread.url)
    qtbot.waitUntil(lambda: window.status.cluster_label.text() == "· 0 of 1 nodes ready",
                    timeout=10000)
    _fill(window, **{"txt2img.prompt": "a lantern", "txt2img.steps": 2, "txt2img.width": 64,
                     "txt2img.height": 64})
    window.commands.run_button.click()
    stage = window.status.stage_label
    qtbot.waitUntil(lambda: stage.isVisible() and stage.text() == "Waiting for a node…",
                    timeout=10000)
    assert stage.toolTip().startswith("Waiting for a node to answer. attic: ")
    with FakeSDWebUI(step_ms=2, port=port).running_in_thread() as attic:
        qtbot.waitUntil(lambda: len(attic.requests_to(TXT2IMG)) == 1, timeout=20000)
        qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=20000)
    assert window.session.queue.waiting == "" and stage.toolTip() == ""
    assert fake_sdwebui_thread.requests_to(TXT2IMG) == []  # not a node: the queue never used it


def test_a_lora_copied_to_a_node_shows_after_probe_and_its_run_is_not_refused(qtbot, window_for,
                                                                              two_nodes):
    """A user copies a LoRA into a node's folder while everything runs, and queues a prompt
    naming it. No node lists it yet: the item fails, saying to press Probe. Probe has the
    nodes read their folders again; Retry failed then makes the image."""
    den, attic = two_nodes
    window = _open(qtbot, window_for, den.url)
    qtbot.waitUntil(lambda: window.status.cluster_label.text() == "· 2 of 2 nodes ready",
                    timeout=8000)
    attic.add_files(loras=("neon_glow",))
    _fill(window, **{"txt2img.prompt": "a city, <lora:neon_glow:0.7>", "txt2img.steps": 2,
                     "txt2img.width": 64, "txt2img.height": 64})
    window.commands.queue_button.click()

    def items():
        with QueueStore(AppPaths.default().database_file) as store:
            return store.reads.items()

    qtbot.waitUntil(lambda: [i.state for i in items()] == [ItemState.failed], timeout=15000)
    (failed,) = items()
    assert "does not have the LoRA 'neon_glow'" in failed.error
    assert "Press Probe in the Nodes tab" in failed.error

    window.nodes_panel.probe_button.click()  # no row selected: every node
    nodes = window.session.nodes
    qtbot.waitUntil(lambda: "neon_glow" in (nodes.health("attic").capabilities.loras or ()),
                    timeout=15000)
    window.queue_panel.retry_button.click()  # what the failure told the user to press
    qtbot.waitUntil(lambda: len(attic.requests_to(TXT2IMG)) == 1, timeout=15000)
    assert den.requests_to(TXT2IMG) == []  # the node without the file is never sent it
