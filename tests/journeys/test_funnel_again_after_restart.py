"""Journey: a funnel's refine stage is cancelled in the Queue tab; after a restart the Funnel tab
offers "Refine again — 2 images", which queues the same job with the same pictures, made once
the queue resumes. A new funnel then asks first (the funnel has picks), keeps the old one under
Earlier funnels, and after another restart the old one reopens with its picks and its refined
images."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

import stablenew.cluster.machinery  # noqa: F401  (see test_funnel_after_restart: first imports)
import stablenew.cluster.queue_runner  # noqa: F401
import stablenew.pipeline.runner  # noqa: F401
from stablenew.controller.queue_model import IdRole
from tests.journeys.conftest import fill_cards, item_states, save_server
from tests.journeys.test_funnel_after_restart import open_funnel_tab, ready, seed_of, type_into

LEFT = Qt.MouseButton.LeftButton


def open_tab(qtbot, window, panel) -> None:
    bar = window.work_tabs.tabBar()
    index = window.work_tabs.indexOf(panel)
    qtbot.mouseClick(bar, LEFT, pos=bar.tabRect(index).center())
    qtbot.waitUntil(lambda: window.work_tabs.currentWidget() is panel, timeout=3000)


def cancel_job_in_queue_tab(qtbot, window, job_id: str) -> None:
    """Right-click the job's row in the Queue tab and choose Cancel job (the menu's action)."""
    panel = window.queue_panel
    open_tab(qtbot, window, panel)
    model = panel.tree.model()
    qtbot.waitUntil(lambda: any(model.index(r, 0).data(IdRole) == job_id
                                for r in range(model.rowCount())), timeout=5000)
    row = next(r for r in range(model.rowCount()) if model.index(r, 0).data(IdRole) == job_id)
    menu = panel.build_menu(model.index(row, 0))
    (cancel,) = [a for a in menu.actions() if a.text() == "Cancel job"]
    assert cancel.isEnabled()
    cancel.trigger()


def test_a_cancelled_stage_runs_again_and_an_old_funnel_reopens_after_restarts(
        qtbot, journey, fake_process):
    fake = fake_process(step_ms=2)
    save_server(fake.url)
    window = journey.open()
    fill_cards(qtbot, window, "a blue heron in reeds", 1)
    for path, value in (("txt2img.width", 128), ("txt2img.height", 128)):
        window.pipeline_panel.editor(path).set_value(value)
    panel = open_funnel_tab(qtbot, window)
    qtbot.mouseClick(panel.settings_button, LEFT)
    type_into(qtbot, panel.settings_fields[("counts", "drafts")], 3)
    type_into(qtbot, panel.settings_fields[("draft", "steps")], 4)
    qtbot.waitUntil(lambda: panel.controller.settings.counts.drafts == 3, timeout=3000)
    qtbot.mouseClick(panel.settings_button, LEFT)

    qtbot.mouseClick(panel.start_button, LEFT)
    qtbot.waitUntil(lambda: ready(panel, 3), timeout=30000)
    first = panel.controller.funnel
    drafts = first.runs[0]
    qtbot.mouseClick(panel.tiles[0], LEFT)
    qtbot.mouseClick(panel.tiles[2], LEFT)

    # The queue is paused in the Queue tab, the refine stage queued, then its job cancelled.
    queue_panel = window.queue_panel
    open_tab(qtbot, window, queue_panel)
    qtbot.mouseClick(queue_panel.pause_button, LEFT)
    qtbot.waitUntil(lambda: window.session.queue.paused, timeout=5000)
    open_tab(qtbot, window, panel)
    qtbot.mouseClick(panel.go_button, LEFT)
    qtbot.waitUntil(lambda: len(panel.controller.funnel.runs) == 2
                    and not panel.controller.tasks.busy, timeout=10000)
    refine = panel.controller.funnel.runs[1]
    cancel_job_in_queue_tab(qtbot, window, refine.job_id)
    qtbot.waitUntil(lambda: item_states().get("cancelled", 0) == 2, timeout=5000)

    # Closed and opened again: the stage offers to run again, and does, from the same pictures.
    qtbot.waitUntil(lambda: not panel.controller.tasks.busy, timeout=5000)
    window = journey.restart()
    panel = open_funnel_tab(qtbot, window)
    qtbot.waitUntil(lambda: panel.again_button.isVisible(), timeout=10000)
    assert panel.crumbs["refine"].isChecked()
    assert panel.again_button.text() == "Refine again — 2 images"
    qtbot.mouseClick(panel.again_button, LEFT)
    assert not panel.again_button.isVisible(), "one click queues them once"
    qtbot.waitUntil(lambda: item_states().get("queued", 0) == 2, timeout=10000)
    qtbot.waitUntil(lambda: [t.text() for t in panel.tiles[:2]] == [
        f"Waiting — seed {s}" for s in refine.seeds], timeout=5000)
    assert not panel.again_button.isVisible()
    open_tab(qtbot, window, window.queue_panel)
    qtbot.mouseClick(window.queue_panel.pause_button, LEFT)  # Resume queue
    panel = open_funnel_tab(qtbot, window)
    qtbot.waitUntil(lambda: ready(panel, 2), timeout=30000)
    again = panel.controller.funnel.runs[1]
    assert again.job_id == refine.job_id and again.sources == refine.sources
    assert [seed_of(p) for p in again.images] == [drafts.seeds[0], drafts.seeds[2]]

    # A new funnel asks first: the drafts have two picks.
    qtbot.mouseClick(panel.start_button, LEFT)
    qtbot.waitUntil(lambda: panel.question is not None and panel.question.isVisible(),
                    timeout=5000)
    assert panel.question.text() == "This funnel has 2 picks. Start a new one?"
    start = panel.question.findChild(QPushButton, "StartNewFunnel")
    qtbot.mouseClick(start, LEFT)
    qtbot.waitUntil(lambda: panel.controller.funnel.id != first.id and ready(panel, 3),
                    timeout=30000)
    assert panel.past_button.text() == "Earlier funnels (1)"

    # Closed and opened again: the old funnel is still there to reopen, as it was left.
    qtbot.waitUntil(lambda: not panel.controller.tasks.busy, timeout=5000)
    window = journey.restart()
    panel = open_funnel_tab(qtbot, window)
    qtbot.waitUntil(lambda: panel.past_button.text() == "Earlier funnels (1)", timeout=10000)
    qtbot.mouseClick(panel.past_button, LEFT)
    item = panel.past_list.item(0)
    assert item.text().startswith("a blue heron in reeds — Refined, 2 picks — ")
    qtbot.mouseClick(panel.past_list.viewport(), LEFT,
                     pos=panel.past_list.visualItemRect(item).center())
    qtbot.mouseClick(panel.reopen_button, LEFT)
    qtbot.waitUntil(lambda: panel.controller.funnel.id == first.id and ready(panel, 2),
                    timeout=10000)
    assert panel.crumbs["refine"].isChecked()
    qtbot.mouseClick(panel.crumbs["drafts"], LEFT)
    qtbot.waitUntil(lambda: [t.isChecked() for t in panel.tiles[:3]] == [True, False, True],
                    timeout=3000)
