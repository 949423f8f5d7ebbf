"""Journeys: close the window while queued work runs (the question, and each answer), and a
paused queue that stays paused across a restart until the user resumes it."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.journeys.conftest import (
    bar_says,
    fill_cards,
    images_on_disk,
    item_states,
    queue_batch,
    save_server,
    shutdown_window,
    wait_states,
)


def answer_close(qtbot, journey, answer: str) -> None:
    """Close the window; it asks about the queued work; click *answer*'s button."""
    window = journey.window
    window.close()
    qtbot.waitUntil(lambda: window.closing.question is not None
                    and window.closing.question.isVisible(), timeout=3000)
    assert window.isVisible(), "nothing closes before the user answers"
    qtbot.mouseClick(window.closing.button(answer), Qt.MouseButton.LeftButton)


def test_close_asks_and_stop_and_resume_next_time_resumes(qtbot, journey, fake_process):
    fake = fake_process(step_ms=60)
    save_server(fake.url)
    window = journey.open()
    queue_batch(qtbot, window, "a lighthouse at dusk", 6)
    wait_states(qtbot, lambda s: s.get("done", 0) >= 1, 30)

    # Cancel: the window stays open and the queue goes on.
    answer_close(qtbot, journey, "cancel")
    qtbot.waitUntil(lambda: window.closing.question is None, timeout=3000)
    assert window.isVisible() and window.session.queue.running
    text = bar_says(window.commands)
    assert text.startswith("Running “a lighthouse at dusk” · image "), text

    # Stop and resume next time: the window closes, nothing is lost or left "running".
    answer_close(qtbot, journey, "stop")
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    journey.window = None
    shutdown_window(window)
    left = item_states()
    assert left.get("running", 0) == 0 and left.get("assigned", 0) == 0, left
    assert left.get("queued", 0) > 0 and left.get("done", 0) < 6, left

    window = journey.open()
    qtbot.waitUntil(lambda: bar_says(window.commands).startswith(
        "Running “a lighthouse at dusk” · image "), timeout=10000)
    qtbot.waitUntil(lambda: item_states().get("done", 0) == 6, timeout=30000)
    assert len(images_on_disk(window)) == 6


def test_finish_in_the_background_finishes_then_quits(qtbot, journey, fake_process):
    fake = fake_process(step_ms=40)
    save_server(fake.url)
    window = journey.open()
    queue_batch(qtbot, window, "a windmill", 5)
    wait_states(qtbot, lambda s: s.get("done", 0) >= 1, 30)
    with qtbot.waitSignal(window.closed, timeout=30000):
        answer_close(qtbot, journey, "finish")
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=3000)  # gone from the screen
    # `closed` (the app quits) only once the queue is empty.
    assert item_states() == {"done": 5}
    journey.window = None
    shutdown_window(window)
    assert len(images_on_disk(window)) == 5


def test_a_paused_queue_stays_paused_after_a_restart_and_says_so(qtbot, journey, fake_process):
    fake = fake_process(step_ms=60)
    save_server(fake.url)
    window = journey.open()
    queue_batch(qtbot, window, "a paper crane", 6)
    wait_states(qtbot, lambda s: s.get("done", 0) >= 1, 30)
    bar = window.commands
    # Stop on queued work: "Pause the queue".
    qtbot.mouseClick(bar.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(bar.stop_menu.isVisible, timeout=3000)
    menu = bar.stop_menu
    qtbot.mouseClick(menu, Qt.MouseButton.LeftButton,
                     pos=menu.actionGeometry(bar.pause_queue_action).center())
    qtbot.waitUntil(lambda: window.session.queue.paused, timeout=5000)
    assert "paused" in bar.queue_count.text()
    journey.close()  # paused: nothing new would start, so closing asks nothing

    window = journey.open()
    bar, panel = window.commands, window.queue_panel
    qtbot.waitUntil(lambda: window.session.queue.paused and window.session.queue.running,
                    timeout=10000)
    # Images a close left at the server wait again; the queue says it is paused, everywhere.
    wait_states(qtbot, lambda s: s.get("running", 0) == 0 and s.get("assigned", 0) == 0, 10)
    qtbot.waitUntil(lambda: "paused" in bar.queue_count.text(), timeout=5000)
    assert panel.pause_button.isChecked() and panel.pause_button.text() == "Resume queue"
    assert "paused" in panel.count_label.text()
    assert bar.state_label.text() == "" and not bar.stop_button.isEnabled()
    left = item_states()
    assert left.get("queued", 0) > 0 and left.get("done", 0) < 6, left

    # Resume (a click in the Queue tab) and everything is made, once.
    window.work_tabs.setCurrentWidget(panel)
    qtbot.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bar_says(bar).startswith("Running “a paper crane”"),
                    timeout=10000)
    qtbot.waitUntil(lambda: item_states().get("done", 0) == 6, timeout=30000)
    assert "paused" not in bar.queue_count.text()
    assert len(images_on_disk(window)) == 6


def test_retry_failed_runs_what_an_earlier_session_left_failed(qtbot, journey, fake_process):
    from stablenew.cluster.queue_store import QueueStore
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.storage.paths import AppPaths

    fake = fake_process(step_ms=20)
    save_server(fake.url)
    # What an earlier session left: a batch of three whose images all failed (the server was
    # down then). Nothing waits, so nothing starts by itself on open.
    config = PipelineConfig.model_validate({"txt2img": {
        "prompt": "a stone bridge", "steps": 8, "width": 64, "height": 64, "batch_count": 3}})
    with QueueStore(AppPaths.default().database_file) as store:
        store.add_job(config, name="a stone bridge")
        while (claim := store.claim_next("earlier", start=True)) is not None:
            store.fail(claim.item.id, claim.lease, "The server did not answer.")
    assert item_states() == {"failed": 3}

    window = journey.open()
    panel = window.queue_panel
    qtbot.waitUntil(lambda: window.session.queue.model.rowCount() == 1, timeout=5000)
    assert not window.session.queue.running
    window.work_tabs.setCurrentWidget(panel)
    qtbot.mouseClick(panel.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: item_states() == {"done": 3}, timeout=20000)
    assert len(images_on_disk(window)) == 3


def test_stop_this_job_cancels_it_and_the_next_job_goes_on(qtbot, journey, fake_process):
    fake = fake_process(step_ms=60)
    save_server(fake.url)
    window = journey.open()
    queue_batch(qtbot, window, "a tin robot", 6)
    queue_batch(qtbot, window, "a glass whale", 2)
    bar = window.commands
    qtbot.waitUntil(lambda: bar_says(bar).startswith("Running “a tin robot” · image "),
                    timeout=10000)
    qtbot.mouseClick(bar.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(bar.stop_menu.isVisible, timeout=3000)
    menu = bar.stop_menu
    qtbot.mouseClick(menu, Qt.MouseButton.LeftButton,
                     pos=menu.actionGeometry(bar.stop_job_action).center())
    assert "Stopped “a tin robot”" in window.notice.message
    # The robot stops where it is; the whale is made; the queue was not paused. Judged from the
    # items: the bar names the whale only while its two short images run, and in one CI run
    # they were made before a look at the bar caught it (robot 6 cancelled, whale 2 done).
    qtbot.waitUntil(lambda: item_states(job="a glass whale").get("done", 0) == 2
                    and not window.commands.stop_button.isEnabled(), timeout=20000)
    robot = item_states(job="a tin robot")
    assert robot.get("cancelled", 0) >= 3 and robot.get("done", 0) + robot["cancelled"] == 6, robot
    assert not window.session.queue.paused
    assert bar_says(bar) == ""


def test_a_run_under_way_also_resumes_after_stop_and_resume_next_time(qtbot, journey,
                                                                      fake_process):
    fake = fake_process(step_ms=60)
    save_server(fake.url)
    window = journey.open()
    fill_cards(qtbot, window, "a brass compass", 6)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.commands.state_label.text() == "Running…", timeout=5000)
    wait_states(qtbot, lambda s: s.get("done", 0) >= 1, 30)

    journey.close(answer="stop")
    left = item_states()
    assert left.get("cancelled", 0) == 0 and left.get("queued", 0) > 0, left

    window = journey.open()
    qtbot.waitUntil(lambda: item_states().get("done", 0) == 6, timeout=30000)
    assert len(images_on_disk(window)) == 6
