"""The Funnel tab as a user meets it, clicked through on a queue working on the fake A1111 server:

- "New funnel" asks first when the funnel open has picks or a stage still being made, in plain
  words; Cancel keeps everything. The funnel put aside is kept under Earlier funnels and
  reopens as it was left, its picks and its stages (made meanwhile) with it.
- A stage whose job was cancelled offers to queue its images again; the button says what and
  how many, and queues the same job with the same pictures and seeds.
"""

from __future__ import annotations

import asyncio

import pytest
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from stablenew.cluster.funnel import FunnelSettings
from stablenew.cluster.funnel_store import FUNNEL_FILE, FunnelStore
from stablenew.cluster.jobs import ItemState
from stablenew.cluster.queue_store import QueueStore
from stablenew.controller.funnel_controller import FunnelController
from stablenew.controller.queue_controller import QueueController
from stablenew.gui.panels.funnel_panel import FunnelPanel
from stablenew.pipeline.config import PipelineConfig

LEFT = Qt.MouseButton.LeftButton
WAIT = 15000


def cards() -> PipelineConfig:
    return PipelineConfig().with_changes({"txt2img.prompt": "a paper crane", "txt2img.seed": 7,
                                          "txt2img.width": 128, "txt2img.height": 128,
                                          "txt2img.steps": 4})


class Node:
    """The fake server's node working through the queue, stopped and started as a test needs
    (a stopped node leaves a stage waiting, as a busy cluster would)."""

    def __init__(self, qtbot, queue: QueueController, backend) -> None:
        self.qtbot, self.queue, self.backend = qtbot, queue, backend

    def start(self) -> None:
        self.queue.start_runner(self.backend, node="fake", backoff_base=0.01)

    def stop(self) -> None:
        self.queue.stop_runner()
        self.qtbot.waitUntil(lambda: not self.queue.running, timeout=WAIT)


@pytest.fixture
def tab(qloop, qtbot, qapp, tmp_path):
    from stablenew.backends.a1111 import A1111Backend
    from tests.fakes.sdwebui import FakeSDWebUI

    out = tmp_path / "out"
    queue = QueueController(db_path=tmp_path / "queue.db", output_root=out, poll_ms=50)
    controller = FunnelController(tmp_path / "data", queue, base_config=cards,
                                  output_root=lambda: out, start_queue=lambda: None)
    panel = FunnelPanel(controller)
    qtbot.addWidget(panel)
    panel.resize(980, 720)
    panel.show()
    qtbot.waitExposed(panel)
    with FakeSDWebUI(step_ms=0).running_in_thread() as fake:
        backend = A1111Backend(fake.url, timeout=10)
        node = Node(qtbot, queue, backend)
        node.start()
        controller.start()
        qtbot.waitUntil(panel.isEnabled, timeout=WAIT)
        # Three small drafts, refined two at most (setup: the settings' own test types them).
        controller.set_settings(FunnelSettings.model_validate(
            {"counts": {"drafts": 3, "refine": 2}, "draft": {"steps": 2}}))
        yield panel, node, fake
        node.stop()
        for closing in (controller.aclose(), queue.aclose(), backend.aclose()):
            task = asyncio.ensure_future(closing)
            qtbot.waitUntil(task.done, timeout=WAIT)
    shiboken6.delete(controller)
    shiboken6.delete(queue)
    qapp.processEvents()


def made(panel: FunnelPanel, stage: str, count: int) -> bool:
    """The stage looked at is *stage*, with *count* images made and their tiles to pick."""
    funnel = panel.controller.funnel
    return (funnel is not None and funnel.current.stage == stage and funnel.current.ready == count
            and all(t.isEnabled() for t in panel.tiles[:count]))


def jobs(tmp_path) -> dict[str, list[tuple[str, int, str]]]:
    """Each queued job's images: state, seed and the picture it starts from."""
    with QueueStore(tmp_path / "queue.db") as store:
        return {job.id: [(i.state.value, i.seed, store.reads.config_for(i).img2img.init_image)
                         for i in store.reads.items(job.id)]
                for job in store.reads.list_jobs()}


def button(box, name: str) -> QPushButton:
    found = box.findChild(QPushButton, name)
    assert found is not None, name
    return found


def make_drafts_and_pick(qtbot, panel: FunnelPanel, picks: tuple[int, ...]) -> None:
    qtbot.mouseClick(panel.start_button, LEFT)
    qtbot.waitUntil(lambda: made(panel, "drafts", 3), timeout=WAIT)
    for index in picks:
        qtbot.mouseClick(panel.tiles[index], LEFT)


def test_a_new_funnel_asks_first_and_the_old_one_reopens_as_it_was(tab, qtbot, tmp_path):
    panel, node, _fake = tab
    controller = panel.controller
    assert not panel.past_button.isEnabled() and panel.past_button.text() == "Earlier funnels"
    make_drafts_and_pick(qtbot, panel, (0, 2))  # the first funnel starts without a question
    first = controller.funnel
    assert first is not None and panel.question is None

    # Picks are at stake: asked first, and Cancel keeps everything.
    qtbot.mouseClick(panel.start_button, LEFT)
    qtbot.waitUntil(lambda: panel.question is not None and panel.question.isVisible(),
                    timeout=WAIT)
    assert panel.question.text() == "This funnel has 2 picks. Start a new one?"
    assert "stay in the gallery" in panel.question.informativeText()
    qtbot.mouseClick(button(panel.question, "KeepThisFunnel"), LEFT)
    qtbot.waitUntil(lambda: panel.question is None, timeout=WAIT)
    assert controller.funnel.id == first.id and controller.funnel.runs[0].picks == [0, 2]
    assert len(jobs(tmp_path)) == 1, "nothing was queued"
    assert [t.isChecked() for t in panel.tiles[:3]] == [True, False, True]

    # The refine stage waits for a node; a new funnel now says so as well.
    node.stop()
    qtbot.mouseClick(panel.go_button, LEFT)
    qtbot.waitUntil(lambda: panel.crumbs["refine"].isChecked() and len(jobs(tmp_path)) == 2,
                    timeout=WAIT)
    qtbot.mouseClick(panel.start_button, LEFT)
    qtbot.waitUntil(lambda: panel.question is not None and panel.question.isVisible(),
                    timeout=WAIT)
    assert panel.question.text() == ("This funnel has 2 picks, and its refine stage is still "
                                     "being made. Start a new one?")
    qtbot.mouseClick(button(panel.question, "StartNewFunnel"), LEFT)
    qtbot.waitUntil(lambda: controller.funnel.id != first.id and len(jobs(tmp_path)) == 3,
                    timeout=WAIT)
    assert panel.past_button.text() == "Earlier funnels (1)" and panel.past_button.isEnabled()
    node.start()  # the old funnel's refine goes on with the new drafts
    qtbot.waitUntil(lambda: made(panel, "drafts", 3), timeout=WAIT)
    second = controller.funnel.id

    # Reopened from the list: the refine stage, made meanwhile, and the drafts' picks.
    qtbot.mouseClick(panel.past_button, LEFT)
    assert panel.past_box.isVisible() and not panel.reopen_button.isEnabled()
    assert panel.past_list.item(0).text().startswith("a paper crane — Refined, 2 picks — ")
    rect = panel.past_list.visualItemRect(panel.past_list.item(0))
    qtbot.mouseClick(panel.past_list.viewport(), LEFT, pos=rect.center())
    qtbot.waitUntil(lambda: all(not t.icon().isNull() for t in panel.tiles[:3]), timeout=WAIT)
    qtbot.mouseClick(panel.reopen_button, LEFT)
    qtbot.waitUntil(lambda: controller.funnel.id == first.id and made(panel, "refine", 2),
                    timeout=WAIT)
    assert panel.crumbs["refine"].isChecked()
    assert controller.funnel.runs[0].picks == [0, 2]
    assert [p.id for p in controller.past_funnels()] == [second]
    qtbot.mouseClick(panel.crumbs["drafts"], LEFT)
    qtbot.waitUntil(lambda: [t.isChecked() for t in panel.tiles[:3]] == [True, False, True],
                    timeout=WAIT)
    # Going on from the drafts again makes the refine stage anew: the button says so.
    assert panel.go_button.text() == "Refine 2 picked images again"
    qtbot.waitUntil(lambda: not controller.tasks.busy, timeout=WAIT)
    saved = FunnelStore(tmp_path / "data" / FUNNEL_FILE).load()
    assert saved.funnel is not None and saved.funnel.id == first.id
    assert [f.id for f in saved.past] == [second]


def test_a_cancelled_stage_is_queued_again_from_the_same_pictures(tab, qtbot, tmp_path):
    panel, node, fake = tab
    controller = panel.controller
    make_drafts_and_pick(qtbot, panel, (1, 2))
    drafts = controller.funnel.runs[0]
    node.stop()
    qtbot.mouseClick(panel.go_button, LEFT)
    qtbot.waitUntil(lambda: panel.crumbs["refine"].isChecked() and len(jobs(tmp_path)) == 2,
                    timeout=WAIT)
    refine = controller.funnel.runs[1]
    assert not panel.again_button.isVisible(), "nothing stopped yet"

    # The user cancels the refine job in the Queue tab (the same slot its button calls).
    controller._queue.cancel_job(refine.job_id)
    qtbot.waitUntil(panel.again_button.isVisible, timeout=WAIT)
    assert panel.again_button.text() == "Refine again — 2 images"
    assert "from the same picked images" in panel.again_button.toolTip()
    assert panel.summary.text() == ("Refined: 0 of 2 images ready, 0 picked (pick up to 3 to "
                                    "polish). 2 images were cancelled or could not be made.")
    assert [t.text() for t in panel.tiles[:2]] == [f"Cancelled — seed {s}" for s in refine.seeds]

    qtbot.mouseClick(panel.again_button, LEFT)
    assert not panel.again_button.isVisible(), "one click queues them once"
    qtbot.waitUntil(lambda: jobs(tmp_path)[refine.job_id][0][0] == "queued"
                    and not controller.tasks.busy, timeout=WAIT)
    assert jobs(tmp_path)[refine.job_id] == [("queued", drafts.seeds[1], refine.sources[0]),
                                             ("queued", drafts.seeds[2], refine.sources[1])]
    assert [t.text() for t in panel.tiles[:2]] == [f"Waiting — seed {s}" for s in refine.seeds]
    assert not panel.again_button.isVisible()
    assert len(jobs(tmp_path)) == 2, "the same job, not a second one"

    node.start()
    qtbot.waitUntil(lambda: made(panel, "refine", 2), timeout=WAIT)
    sent = [r.payload for r in fake.requests_to("/sdapi/v1/img2img")]
    assert sorted(p["seed"] for p in sent) == sorted(refine.seeds)
    assert all(s == ItemState.done.value for s, _, _ in jobs(tmp_path)[refine.job_id])
    assert panel.go_button.text() == "Polish (pick images first)"


def test_a_stage_whose_job_left_the_queue_is_queued_again_under_its_id(tab, qtbot, tmp_path):
    panel, node, _fake = tab
    controller = panel.controller
    make_drafts_and_pick(qtbot, panel, (0,))
    node.stop()
    qtbot.mouseClick(panel.go_button, LEFT)
    qtbot.waitUntil(lambda: panel.crumbs["refine"].isChecked() and len(jobs(tmp_path)) == 2,
                    timeout=WAIT)
    refine = controller.funnel.runs[1]
    # Cancelled, then cleared from the Queue tab ("Clear finished" takes cancelled jobs).
    controller._queue.cancel_job(refine.job_id)
    with QueueStore(tmp_path / "queue.db") as store:
        qtbot.waitUntil(lambda: store.reads.get_job(refine.job_id).state == "cancelled",
                        timeout=WAIT)
        store.clear_finished()
    controller._queue.refresh()
    qtbot.waitUntil(lambda: panel.again_button.isVisible()
                    and panel.again_button.text() == "Refine again — 1 image", timeout=WAIT)
    qtbot.mouseClick(panel.again_button, LEFT)
    qtbot.waitUntil(lambda: refine.job_id in jobs(tmp_path), timeout=WAIT)
    assert jobs(tmp_path)[refine.job_id] == [("queued", refine.seeds[0], refine.sources[0])]
    node.start()
    qtbot.waitUntil(lambda: made(panel, "refine", 1), timeout=WAIT)


def test_a_funnel_with_nothing_at_stake_is_put_aside_without_a_question(tab, qtbot, tmp_path):
    panel, _node, _fake = tab
    controller = panel.controller
    make_drafts_and_pick(qtbot, panel, ())  # made, nothing picked, nothing still being made
    first = controller.funnel.id
    qtbot.mouseClick(panel.start_button, LEFT)
    qtbot.waitUntil(lambda: controller.funnel.id != first and made(panel, "drafts", 3),
                    timeout=WAIT)
    assert panel.question is None
    assert [p.id for p in controller.past_funnels()] == [first]
