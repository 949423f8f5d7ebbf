"""NodesController and NodesPanel against fake servers over real HTTP, on a qasync loop."""

from __future__ import annotations

import asyncio
import re

import pytest
from pydantic import SecretStr
from PySide6.QtCore import Qt

from stablenew.cluster.health import NodeState
from stablenew.cluster.nodes import NodeConfig, NodeRegistry
from stablenew.cluster.queue_store import QueueStore
from stablenew.cluster.work import GB
from stablenew.controller.nodes_controller import NodesController
from stablenew.gui.panels.nodes_panel import NodeDialog, NodesPanel
from stablenew.pipeline.config import PipelineConfig
from tests.fakes.sdwebui import FakeSDWebUI

XL = "sd_xl_base_1.0.safetensors"
SD15 = "SD15/dreamshaper_8.safetensors"


@pytest.fixture
def lab():
    with FakeSDWebUI(vram_total=16 * GB, checkpoints=(XL, SD15)).running_in_thread() as big, \
            FakeSDWebUI(vram_total=6 * GB, checkpoints=(SD15,),
                        auth=("ann", "right")).running_in_thread() as locked:
        yield big, locked


@pytest.fixture
def controller(qloop, qtbot, tmp_path):
    c = NodesController(nodes_file=tmp_path / "nodes.yaml", db_path=tmp_path / "q.db",
                        probe_timeout=5.0)
    yield c
    closing = asyncio.ensure_future(c.aclose())
    qtbot.waitUntil(closing.done, timeout=5000)


@pytest.fixture
def two_nodes(qtbot, controller, lab):
    """The Nodes panel, shown, over two nodes just added: "big" and "small" (with a login)."""
    big, locked = lab
    panel = NodesPanel(controller)
    qtbot.addWidget(panel)
    panel.show()
    assert controller.add_node(NodeConfig(name="big", url=big.url, kind="a1111"))
    assert controller.add_node(NodeConfig(name="small", url=locked.url, kind="a1111",
                                          username="ann", password="right"))
    return panel


def states(controller):
    return {r.config.name: r.state for r in controller.model.rows()}


def test_adding_nodes_probes_them_and_shows_state_vram_and_a_refused_login(qtbot, controller, lab,
                                                                           tmp_path):
    big, locked = lab
    panel = NodesPanel(controller)
    qtbot.addWidget(panel)
    # Empty, the tab says why and what a node is for (a new user saw a bare empty table).
    assert not panel.empty_hint.isHidden() and "server set in Settings" in panel.empty_hint.text()
    assert controller.add_node(NodeConfig(name="big", url=big.url, kind="a1111"))
    assert controller.add_node(NodeConfig(name="laptop", url=locked.url, kind="a1111",
                                          username="ann", password="wrong"))
    qtbot.waitUntil(panel.empty_hint.isHidden, timeout=5000)
    qtbot.waitUntil(lambda: states(controller) == {"big": NodeState.healthy,
                                                   "laptop": NodeState.auth_failed}, timeout=10000)
    model = controller.model
    assert model.rowCount() == 2
    assert model.index(0, 1).data() == "Ready" and model.index(0, 4).data() == "16 GB"
    assert model.index(1, 1).data() == "Login refused"
    assert "refused the user name and password" in model.index(1, 1).data(3)  # tooltip
    assert panel.summary.text() == "1 of 2 nodes ready"
    # Saved at once, owner-only, with the password; a duplicate name is refused plainly.
    assert NodeRegistry.load(tmp_path / "nodes.yaml").get("laptop").auth == ("ann", "wrong")
    assert not controller.add_node(NodeConfig(name="big", url=locked.url))
    assert "already a node called 'big'" in controller.error.message
    assert panel.notice.isVisible() or not panel.isVisible()
    # Fixing the password re-admits the node.
    fixed = controller.node("laptop").model_copy(update={"password": SecretStr("right")})
    assert controller.edit_node("laptop", fixed)
    qtbot.waitUntil(lambda: states(controller)["laptop"] is NodeState.healthy, timeout=10000)
    assert controller.preferred_node().name == "big"
    controller.remove_node("laptop")
    qtbot.waitUntil(lambda: [n.name for n in NodeRegistry.load(tmp_path / "nodes.yaml")] == ["big"],
                    timeout=5000)


def test_a_slow_disk_never_holds_the_window_while_nodes_are_saved(qtbot, controller, lab, tmp_path,
                                                                  monkeypatch):
    """The nodes file is written with an fsync: on a slow disk (a NAS home, a busy laptop) that
    can take long, and it happens off the Qt thread, in the order the edits were made."""
    import os
    import time

    from PySide6.QtCore import QElapsedTimer, QTimer

    big, locked = lab
    assert controller.add_node(NodeConfig(name="big", url=big.url, kind="a1111"))
    assert controller.add_node(NodeConfig(name="laptop", url=locked.url, kind="a1111"))
    qtbot.waitUntil(lambda: len(states(controller)) == 2 and not controller.tasks.busy, timeout=10000)
    real_fsync = os.fsync

    def slow_fsync(fd):
        time.sleep(0.15)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    gaps, clock, ticker = [], QElapsedTimer(), QTimer()
    ticker.setInterval(5)
    ticker.timeout.connect(lambda: (gaps.append(clock.restart())))
    clock.start()
    ticker.start()
    started = time.monotonic()
    controller.set_enabled("laptop", False)
    controller.set_enabled("laptop", True)
    controller.remove_node("laptop")
    # Each save on the Qt thread would hold it 0.3 s (two fsyncs); the margins allow a busy CI.
    assert time.monotonic() - started < 0.25, "the edits returned at once"
    qtbot.waitUntil(lambda: not controller.tasks.busy, timeout=10000)
    ticker.stop()
    assert max(gaps) < 250, f"the Qt loop stalled {max(gaps)} ms"
    assert [n.name for n in NodeRegistry.load(tmp_path / "nodes.yaml")] == ["big"], \
        "the last edit is what the file holds"


def test_a_node_whose_save_fails_is_taken_out_again_with_the_reason(qtbot, controller, lab,
                                                                    monkeypatch):
    big, _ = lab

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("stablenew.cluster.nodes.atomic_write_text", disk_full)
    assert controller.add_node(NodeConfig(name="big", url=big.url, kind="a1111"))
    qtbot.waitUntil(lambda: controller.error is not None, timeout=5000)
    assert "could not be saved (No space left on device)" in controller.error.message
    qtbot.waitUntil(lambda: controller.nodes() == [], timeout=5000)
    qtbot.waitUntil(lambda: controller.model.rowCount() == 0 and not controller.tasks.busy,
                    timeout=5000)
    assert controller.preferred_node() is None


def test_the_idle_check_pings_ready_nodes_and_leaves_a_refused_login_alone(qtbot, controller, lab):
    big, locked = lab
    controller.add_node(NodeConfig(name="big", url=big.url, kind="a1111"))
    controller.add_node(NodeConfig(name="laptop", url=locked.url, kind="a1111",
                                   username="ann", password="wrong"))
    qtbot.waitUntil(lambda: states(controller) == {"big": NodeState.healthy,
                                                   "laptop": NodeState.auth_failed}, timeout=10000)
    listed, asked = len(big.requests_to("/sdapi/v1/options")), len(locked.requests)
    pinged = len(big.requests_to("/sdapi/v1/progress"))
    for _ in range(2):
        with qtbot.waitSignal(controller.nodes_changed, timeout=5000):
            controller.check()
        qtbot.waitUntil(lambda: not controller.tasks.busy, timeout=5000)
    assert len(big.requests_to("/sdapi/v1/progress")) == pinged + 2
    assert len(big.requests_to("/sdapi/v1/options")) == listed  # no full probe
    assert len(locked.requests) == asked  # wrong credentials are not tried again by themselves
    assert states(controller) == {"big": NodeState.healthy, "laptop": NodeState.auth_failed}
    # The Probe button still reads everything again.
    controller.probe("big")
    qtbot.waitUntil(lambda: len(big.requests_to("/sdapi/v1/options")) == listed + 1, timeout=5000)


def test_plan_button_fills_the_dry_run_table_without_sending_anything(qtbot, controller, lab, tmp_path):
    big, locked = lab
    with QueueStore(tmp_path / "q.db") as store:
        config = PipelineConfig().with_changes({
            "txt2img.prompt": "x", "txt2img.batch_count": 3, "txt2img.checkpoint": XL,
            "txt2img.width": 1024, "txt2img.height": 1024})
        store.add_job(config, name="xl", output_dir=tmp_path / "o")
        store.add_job(config.with_changes({"txt2img.checkpoint": "flux1-dev.safetensors",
                                           "txt2img.batch_count": 1}),
                      name="flux", output_dir=tmp_path / "o")
    panel = NodesPanel(controller)
    qtbot.addWidget(panel)
    controller.add_node(NodeConfig(name="big", url=big.url, kind="a1111"))
    with qtbot.waitSignal(controller.plan_changed, timeout=10000):
        panel.plan_button.click()
    plan = controller.plan_model
    assert plan.rowCount() == 4
    assert [plan.index(r, 2).data() for r in range(3)] == ["big"] * 3
    assert plan.index(3, 2).data() == "(no node can take it)"
    assert "flux1-dev" in plan.index(3, 5).data() and plan.index(3, 3).data() == ""
    assert "Makespan" in panel.plan_label.text() and "1 image no node can take" in panel.plan_label.text()
    assert big.requests_to("/sdapi/v1/txt2img") == []


def test_node_dialog_refuses_a_bad_address_in_plain_words(qtbot):
    dialog = NodeDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    # A LAN address fits its field whole.
    metrics = dialog.url.fontMetrics()
    assert dialog.url.width() > metrics.horizontalAdvance("http://192.168.100.100:7860")
    dialog.name.setText("den")
    dialog.url.setText("192.168.1.20:7860")
    dialog._accept()
    assert dialog.result_node is None
    assert "Address" in dialog.problem.text() and "http://" in dialog.problem.text()
    dialog.url.setText("http://192.168.1.20:7860/")
    dialog._accept()
    assert dialog.result_node is not None and dialog.result_node.url == "http://192.168.1.20:7860"


def test_the_table_follows_a_running_dispatcher_with_each_nodes_current_job(qtbot, qloop, tmp_path):
    from stablenew.cluster.jobs import ItemState

    with FakeSDWebUI(step_ms=20).running_in_thread() as fake:
        nodes_file = tmp_path / "nodes.yaml"
        registry = NodeRegistry.load(nodes_file)
        registry.add(NodeConfig(name="den", url=fake.url, kind="a1111"))
        registry.save()
        c = NodesController(nodes_file=nodes_file, db_path=tmp_path / "q.db", live_interval_ms=20)
        store = QueueStore(tmp_path / "q.db")
        try:
            job = store.add_job(PipelineConfig().with_changes({
                "txt2img.prompt": "a lighthouse at  dusk", "txt2img.batch_count": 3,
                "txt2img.steps": 5, "txt2img.width": 64, "txt2img.height": 64}),
                name="Lighthouses", output_dir=tmp_path / "o")
            d = c.make_dispatcher(store, poll_interval=0.02, runner_kwargs={"thumbnails": False})
            c.attach(d)
            run = asyncio.ensure_future(d.run(until_empty=True))
            seen: list[tuple[str, str]] = []

            def working() -> bool:
                cell = c.model.index(0, 2)
                if cell.data():
                    seen.append((cell.data(), cell.data(Qt.ItemDataRole.ToolTipRole)))
                return bool(seen)

            qtbot.waitUntil(working, timeout=10000)
            assert c.model.index(0, 1).data() == "Ready"
            # What the user knows the image by (not the queue's ids); the id in the tooltip.
            shown, tip = seen[0]
            # Two images of one job at once name the job once.
            assert re.fullmatch(r"Lighthouses — (image [123]|images [123], [123]) of 3", shown), shown
            assert "Prompt: a lighthouse at dusk" in tip and f"Queue item {job.id}/" in tip
            qtbot.waitUntil(run.done, timeout=15000)
            assert run.result().done == 3
            assert {i.state for i in store.reads.items()} == {ItemState.done}
            c.attach(None)
            kept = c.keep_learned_speeds(d)
            qtbot.waitUntil(kept.done, timeout=5000)
            again = c.make_dispatcher(store)
            assert again.speeds()["den"] == d.speeds()["den"] and d.speeds()["den"]
        finally:
            store.close()
            closing = asyncio.ensure_future(c.aclose())
            qtbot.waitUntil(closing.done, timeout=5000)


def test_the_queue_controller_runs_the_queue_on_the_cluster_of_the_nodes_controller(qtbot, qloop,
                                                                                    tmp_path):
    from stablenew.cluster.jobs import ItemState
    from stablenew.controller.queue_controller import QueueController

    with FakeSDWebUI(step_ms=1).running_in_thread() as one, \
            FakeSDWebUI(step_ms=1).running_in_thread() as two:
        nodes_file = tmp_path / "nodes.yaml"
        registry = NodeRegistry.load(nodes_file)
        registry.add(NodeConfig(name="one", url=one.url, kind="a1111"))
        registry.add(NodeConfig(name="two", url=two.url, kind="a1111"))
        registry.save()
        db = tmp_path / "q.db"
        nodes = NodesController(nodes_file=nodes_file, db_path=db, live_interval_ms=20)
        queue = QueueController(db_path=db)
        finished: list = []
        try:
            queue.add_config(PipelineConfig().with_changes({
                "txt2img.prompt": "x", "txt2img.batch_count": 6, "txt2img.steps": 2,
                "txt2img.width": 64, "txt2img.height": 64}))

            def make(store, on_event):
                d = nodes.make_dispatcher(store, on_event=on_event, poll_interval=0.02,
                                          runner_kwargs={"thumbnails": False})
                nodes.attach(d)
                return d

            queue.start_cluster(make, on_finished=finished.append)
            assert queue.running

            def all_done() -> bool:
                store = QueueStore(db)
                try:
                    items = store.reads.items()
                    return bool(items) and {i.state for i in items} == {ItemState.done}
                finally:
                    store.close()

            qtbot.waitUntil(all_done, timeout=15000)
            assert len(one.requests_to("/sdapi/v1/txt2img")) + len(
                two.requests_to("/sdapi/v1/txt2img")) == 6
            queue.stop_runner()
            qtbot.waitUntil(lambda: not queue.running, timeout=10000)
            assert len(finished) == 1 and finished[0].summary.done == 6
        finally:
            nodes.attach(None)
            closing = asyncio.ensure_future(asyncio.gather(queue.aclose(), nodes.aclose()))
            qtbot.waitUntil(closing.done, timeout=10000)


def test_the_queue_panels_plan_button_asks_for_the_dry_run(qtbot, qloop, tmp_path):
    from stablenew.controller.queue_controller import QueueController
    from stablenew.gui.panels.queue_panel import QueuePanel

    queue = QueueController(db_path=tmp_path / "q.db")
    panel = QueuePanel(queue)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.plan_requested, timeout=2000):
        panel.plan_button.click()
    closing = asyncio.ensure_future(queue.aclose())
    qtbot.waitUntil(closing.done, timeout=5000)


def test_pressing_plan_again_and_again_leaves_no_dispatcher_behind(qtbot, controller, lab):
    """Each plan borrows the Nodes room's monitor for its view of the nodes; it must not stay
    subscribed to it (a leak per press, each told of every later change of every node)."""
    import gc
    import weakref

    from stablenew.cluster.dispatcher import ClusterDispatcher

    big, _ = lab
    controller.add_node(NodeConfig(name="big", url=big.url, kind="a1111"))
    qtbot.waitUntil(lambda: states(controller) == {"big": NodeState.healthy}, timeout=10000)
    made = []
    real_init = ClusterDispatcher.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(weakref.ref(self))

    ClusterDispatcher.__init__ = spy
    try:
        for _ in range(3):
            with qtbot.waitSignal(controller.plan_changed, timeout=10000):
                controller.make_plan()
    finally:
        ClusterDispatcher.__init__ = real_init
    qtbot.waitUntil(lambda: not controller.tasks.busy, timeout=5000)
    gc.collect()
    assert len(made) == 3 and all(ref() is None for ref in made), "every planner is gone"


def test_each_node_has_a_tier_combo_whose_choice_is_saved(qtbot, controller, two_nodes,
                                                         tmp_path):
    from stablenew.cluster.tiers import NodeTier

    panel = two_nodes
    qtbot.waitUntil(lambda: set(panel.tier_combos) == {"big", "small"}, timeout=5000)
    combo = panel.tier_combos["big"]
    assert combo.currentText() == "Standard"  # a new node's tier
    # The user opens the combo and picks Premium with the keyboard.
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_End)  # the last entry: Premium

    def saved() -> dict:
        return {n.name: n.tier for n in NodeRegistry.load(tmp_path / "nodes.yaml")}

    qtbot.waitUntil(lambda: saved() == {"big": NodeTier.premium, "small": NodeTier.standard},
                    timeout=5000)
    assert controller.node("big").tier is NodeTier.premium
    # The table's combo follows a change made in the dialog too.
    controller.edit_node("small", controller.node("small").model_copy(
        update={"tier": NodeTier.draft}))
    qtbot.waitUntil(lambda: panel.tier_combos["small"].currentText() == "Draft", timeout=5000)
    dialog = NodeDialog(controller.node("big"))
    qtbot.addWidget(dialog)
    assert dialog.tier.currentText() == "Premium" and dialog.node().tier is NodeTier.premium


def test_the_kind_column_names_the_card_not_comfyuis_device_string(qtbot, controller, lab):
    from tests.fakes.comfyui import FakeComfyUI

    big, _locked = lab
    with FakeComfyUI().running_in_thread() as comfy:
        assert controller.add_node(NodeConfig(name="comfy", url=comfy.url, kind="comfyui"))
        assert controller.add_node(NodeConfig(name="big", url=big.url, kind="a1111"))
        qtbot.waitUntil(lambda: states(controller) == {"comfy": NodeState.healthy,
                                                       "big": NodeState.healthy}, timeout=10000)
        model = controller.model
        rows = {model.index(r, 0).data(): r for r in range(model.rowCount())}
        # The Kind column (shown wide enough for VRAM, Tier and Address beside it) says the
        # server and the card; ComfyUI's own device string stays in the tooltip.
        assert model.index(rows["comfy"], 3).data() == "ComfyUI · NVIDIA GeForce RTX 3060"
        assert model.index(rows["comfy"], 3).data(Qt.ItemDataRole.ToolTipRole) == (
            "Device: cuda:0 NVIDIA GeForce RTX 3060 : cudaMallocAsync")
        assert model.index(rows["big"], 3).data() == "A1111"


def test_the_settings_server_is_offered_as_a_node_once_other_nodes_are_listed(qtbot, qloop, lab,
                                                                             tmp_path):
    # Once nodes are listed the queue runs on them alone: a user who added "the other PC"
    # saw every image go there and none to the server in Settings, with no word of why.
    big, _locked = lab
    with FakeSDWebUI().running_in_thread() as other:
        controller = NodesController(
            nodes_file=tmp_path / "nodes.yaml", db_path=tmp_path / "q.db", probe_timeout=5.0,
            settings_server=lambda: NodeConfig(name="this PC", url=big.url + "/"))
        panel = NodesPanel(controller)
        qtbot.addWidget(panel)
        panel.show()
        try:
            assert not panel.server_row.isVisible()  # no nodes: Run uses the Settings server
            assert controller.add_node(NodeConfig(name="den", url=other.url, kind="a1111"))
            qtbot.waitUntil(panel.server_row.isVisible, timeout=5000)
            assert big.url in panel.server_hint.text()
            qtbot.mouseClick(panel.add_server_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: not panel.server_row.isVisible(), timeout=5000)
            assert [n.name for n in controller.nodes()] == ["den", "this PC"]
            qtbot.waitUntil(lambda: [n.name for n in NodeRegistry.load(tmp_path / "nodes.yaml")]
                            == ["den", "this PC"], timeout=5000)
            qtbot.waitUntil(lambda: states(controller) == {"den": NodeState.healthy,
                                                           "this PC": NodeState.healthy},
                            timeout=10000)
        finally:
            closing = asyncio.ensure_future(controller.aclose())
            qtbot.waitUntil(closing.done, timeout=5000)


def test_probe_tells_a_running_queue_what_a_node_has_now(qtbot, qloop, tmp_path):
    """An upscaler installed on a node while the queue runs: Probe shows it to the running
    queue too (it read the lists only at its start), and the node's worker keeps working."""
    from stablenew.cluster.jobs import ItemState

    with FakeSDWebUI(step_ms=5, upscalers=("None", "Lanczos")).running_in_thread() as fake:
        nodes_file = tmp_path / "nodes.yaml"
        registry = NodeRegistry.load(nodes_file)
        registry.add(NodeConfig(name="den", url=fake.url, kind="a1111"))
        registry.save()
        c = NodesController(nodes_file=nodes_file, db_path=tmp_path / "q.db", live_interval_ms=20)
        store = QueueStore(tmp_path / "q.db")
        try:
            d = c.make_dispatcher(store, poll_interval=0.02, runner_kwargs={"thumbnails": False})
            c.attach(d)
            run = asyncio.ensure_future(d.run())
            qtbot.waitUntil(lambda: d.monitor.health("den").usable, timeout=10000)
            fake.upscalers += ("R-ESRGAN 4x+",)
            c.probe("den")
            qtbot.waitUntil(lambda: "R-ESRGAN 4x+" in (
                d.monitor.health("den").capabilities.upscalers), timeout=10000)
            store.add_job(PipelineConfig().with_changes({
                "txt2img.prompt": "a lighthouse", "txt2img.batch_count": 2, "txt2img.steps": 2,
                "txt2img.width": 64, "txt2img.height": 64, "txt2img.hires.enabled": True,
                "txt2img.hires.upscaler": "R-ESRGAN 4x+", "txt2img.hires.scale": 1.5}),
                name="Upscaled", output_dir=tmp_path / "o")
            d.notify()
            qtbot.waitUntil(lambda: {i.state for i in store.reads.items()} == {ItemState.done},
                            timeout=15000)
            d.stop()
            qtbot.waitUntil(run.done, timeout=15000)
            c.attach(None)
        finally:
            store.close()


def test_remove_asks_first_and_cancel_keeps_the_node(qtbot, controller, two_nodes, tmp_path):
    panel = two_nodes
    qtbot.waitUntil(lambda: controller.model.rowCount() == 2 and not controller.tasks.busy,
                    timeout=5000)

    def saved() -> list[str]:
        return [n.name for n in NodeRegistry.load(tmp_path / "nodes.yaml")]

    def press_remove_on(row: int, answer: str) -> None:
        panel.table.selectRow(row)
        qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
        box = panel.remove_question
        qtbot.waitUntil(box.isVisible, timeout=3000)
        assert "small" in box.text() and "go back to the queue" in box.informativeText()
        button = next(b for b in box.buttons() if b.text().replace("&", "") == answer)
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    press_remove_on(1, "Cancel")
    qtbot.waitUntil(lambda: not controller.tasks.busy, timeout=5000)
    assert saved() == ["big", "small"] and controller.model.rowCount() == 2
    press_remove_on(1, "Remove")
    qtbot.waitUntil(lambda: saved() == ["big"], timeout=5000)
    assert controller.model.rowCount() == 1


def test_a_long_current_job_leaves_every_column_in_view(qtbot, controller, two_nodes):
    """Images of two jobs with long names at once (a Run beside a batch): the Current job cell
    is cut short (its tooltip has it all) and Kind, VRAM, Tier and Address stay in view."""
    from stablenew.cluster.node_book import WorkingOn
    from stablenew.controller.nodes_controller import NODE_COLUMNS, NodeRow, describe_work

    panel = two_nodes
    panel.resize(900, 500)
    qtbot.waitUntil(lambda: controller.model.rowCount() == 2 and not controller.tasks.busy,
                    timeout=5000)
    name = "a lighthouse on a cliff at dusk, volumetric light, crashing waves, oil painting"
    working = [WorkingOn(f"j1/{n}", name, n, 30, name) for n in (11, 12)]
    assert describe_work(working) == (f"{name[:39].rstrip()}… — images 11, 12 of 30",)
    working.append(WorkingOn("j2/1", "Run: " + name, 1, 1, name))
    rows = [NodeRow(controller.node(n), NodeState.healthy, "", current=describe_work(working))
            for n in ("big", "small")]
    controller.model.set_rows(rows)
    header = panel.table.horizontalHeader()
    viewport = panel.table.viewport().width()

    def in_view(column: int) -> bool:
        return header.sectionViewportPosition(column) + header.sectionSize(column) <= viewport

    qtbot.waitUntil(lambda: all(in_view(c) for c in range(len(NODE_COLUMNS))), timeout=3000)
