"""Journey: queue three jobs in the window, kill the app with SIGKILL mid-batch, reopen it: the
queue resumes by itself, every image is made exactly once, and the bar shows what runs."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt

from tests.journeys.conftest import bar_says, item_states, save_server, wait_db

NAMES = ("a red fox", "a blue whale", "a green owl")


def test_three_queued_jobs_survive_a_sigkill(qtbot, journey, fake_process, spawn_app):
    fake = fake_process(step_ms=60)  # 8 steps: about half a second an image
    save_server(fake.url)
    steps = []
    for name in NAMES:
        steps += [{"fill": {"txt2img.prompt": name, "txt2img.steps": 8, "txt2img.batch_count": 3,
                            "txt2img.width": 64, "txt2img.height": 64}},
                  {"click": "queue_button"}]
    steps.append({"wait_queue_count": 1})
    app = spawn_app(steps)
    app.wait_for_line("actions done", timeout=60)
    wait_db(lambda s: s.get("done", 0) >= 2 and sum(s.values()) == 9, 60,
            "two images done before the crash")
    app.kill()
    before = item_states()
    assert sum(before.values()) == 9 and before.get("done", 0) < 9, before

    window = journey.open()
    bar = window.commands
    # The queue resumes on its own: the bar says which job runs, which of its images, and
    # how long is left; Stop is there to stop it.
    shown = re.compile(r"Running “a (red fox|blue whale|green owl)” · image [123] of 3 · "
                       r"(a few seconds left|about \d+ s left|estimating time left…)$")
    qtbot.waitUntil(lambda: shown.match(bar_says(bar)) is not None, timeout=10000)
    shown_name = re.compile(r"(Live preview|Latest result) · a (red fox|blue whale|green owl)$")
    qtbot.waitUntil(lambda: "left" in bar_says(bar) and "estimating" not in bar_says(bar),
                    timeout=10000)
    assert window.status.eta_label.isVisible() and window.status.overall_bar.isVisible()
    # The viewer follows the queued work too (not the last thing the previous session showed).
    caption = window.viewer.caption
    qtbot.waitUntil(lambda: shown_name.search(caption.full_text()) is not None, timeout=10000)
    assert bar.stop_button.isEnabled() and bar.run_button.isEnabled()  # a Run may still go first
    # Stop on queued work asks what to stop: this job, or the whole queue.
    qtbot.mouseClick(bar.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(bar.stop_menu.isVisible, timeout=3000)
    assert [a.text() for a in bar.stop_menu.actions()] == ["Stop this job", "Pause the queue"]
    qtbot.keyClick(bar.stop_menu, Qt.Key.Key_Escape)  # neither: the queue goes on
    qtbot.waitUntil(lambda: not bar.stop_menu.isVisible(), timeout=3000)

    qtbot.waitUntil(lambda: item_states().get("done", 0) == 9, timeout=60000)
    outputs = sorted(p for p in window.session.app.output_dir.rglob("*.png")
                     if p.parent.name != ".thumbnails")
    assert len(outputs) == 9, [p.name for p in outputs]
    # Nothing runs any more: the bar says so and Stop has nothing to stop.
    qtbot.waitUntil(lambda: bar.state_label.text() == "" and not bar.stop_button.isEnabled(),
                    timeout=5000)
    assert fake.proc.poll() is None


def test_a_window_opened_while_another_works_the_queue_takes_over_when_it_dies(
        qtbot, journey, fake_process, spawn_app):
    fake = fake_process(step_ms=60)
    save_server(fake.url)
    app = spawn_app([{"fill": {"txt2img.prompt": "a marble owl", "txt2img.steps": 8,
                               "txt2img.batch_count": 8, "txt2img.width": 64,
                               "txt2img.height": 64}},
                     {"click": "queue_button"}, {"wait_queue_count": 1}])
    app.wait_for_line("actions done", timeout=60)
    wait_db(lambda s: s.get("done", 0) >= 1 and sum(s.values()) == 8, 60, "the first image")

    # A second window (the user opened StableNew again): it does not fight the first one for
    # the queue, and says so.
    window = journey.open()
    qtbot.waitUntil(lambda: "Another StableNew" in window.notice.message, timeout=10000)
    assert not window.session.queue.running
    app.kill()  # the first one dies mid-batch: this window finishes the work, once
    qtbot.waitUntil(lambda: window.session.queue.running, timeout=10000)
    qtbot.waitUntil(lambda: item_states().get("done", 0) == 8, timeout=60000)
    outputs = [p for p in window.session.app.output_dir.rglob("*.png")
               if p.parent.name != ".thumbnails"]
    assert len(outputs) == 8, [p.name for p in outputs]
