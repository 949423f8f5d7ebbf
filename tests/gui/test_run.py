"""The real window against the fake SD WebUI: run, progress and ETA, gallery, rating, stop, PNG drop."""

from __future__ import annotations

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

FAST = {"step_ms": 8.0}
STEADY = {"step_ms": 30.0}
SLOW = {"step_ms": 40.0}


def _fill(window, **values):
    for path, value in values.items():
        window.pipeline_panel.editor(path).set_value(value)


@pytest.mark.parametrize("fake_sdwebui_thread", [STEADY], indirect=True)
def test_run_progress_eta_gallery_and_keyboard_rating(qtbot, window_for, fake_sdwebui_thread):
    fake = fake_sdwebui_thread
    window = window_for(fake.url)
    assert window.pipeline_panel.editor("txt2img.sampler").widget.count() > 0, "pickers filled"
    _fill(window, **{"txt2img.prompt": "a red fox in snow", "txt2img.steps": 25,
                     "txt2img.batch_count": 3, "txt2img.width": 256, "txt2img.height": 256})
    seen = []
    window.session.pipeline.progress_changed.connect(lambda p: seen.append(p))
    saved = []  # the ImageRecords the gallery is told of, in the order they were saved
    window.session.queued_image_saved.connect(saved.append)
    etas = []
    window.session.pipeline.progress_changed.connect(
        lambda p: etas.append(window.status.eta_label.text()) if p.state == "running" else None)
    window.commands.run_button.click()
    assert window.commands.state_label.text() == "Running…"
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=15000)
    assert window.session.pipeline.error is None, window.session.pipeline.error
    assert fake.images_generated == 3
    steps = [p.step for p in seen if p.step]
    assert steps and max(steps) <= 25
    assert any(p.stage_text.startswith("Text to image — stage 1 of 1") for p in seen)
    assert any("left" in text for text in etas), etas
    overall = [p.overall_fraction for p in seen]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)
    # Images arrive newest first, thumbnails load in the background.
    gallery = window.session.gallery
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == 3, timeout=5000)
    assert [r.image_index for r in saved] == [0, 1, 2]
    assert [i.key for i in gallery.items] == [str(r.path) for r in reversed(saved)]
    qtbot.waitUntil(lambda: all(gallery.thumbnail(i.key) is not None for i in gallery.items),
                    timeout=5000)
    # Select the newest and rate it with the keyboard; the rating lands in the learning store.
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=10000)
    learning = window.session.learning
    assert learning is not None
    window.gallery_panel.select_first()
    qtbot.waitUntil(lambda: window.viewer.sidebar.key == gallery.items[0].key, timeout=5000)
    assert "a red fox in snow" in window.viewer.sidebar.prompt.text()
    qtbot.keyClick(window.gallery_panel.view, Qt.Key.Key_4)
    key = gallery.items[0].key
    qtbot.waitUntil(lambda: gallery.rating_of(key)[0] == 4, timeout=3000)
    assert learning.read_rating(key)[0] == 4, "the learning controller has the rating"
    assert window.viewer.sidebar.stars.stars == 4
    qtbot.keyClick(window.gallery_panel.view, Qt.Key.Key_0)
    qtbot.waitUntil(lambda: gallery.rating_of(key)[0] is None, timeout=3000)
    window.viewer.sidebar.tag_buttons["too noisy"].click()
    qtbot.waitUntil(lambda: learning.read_rating(key)[1] == ("too noisy",), timeout=3000)
    # Copy the seed, then "use these settings" brings the image's values back into the cards.
    sidebar = window.viewer.sidebar
    sidebar.copy_seed.click()
    seed = QApplication.clipboard().text()
    assert seed == str(saved[-1].seed)
    window.pipeline_panel.editor("txt2img.prompt").set_value("something else")
    sidebar.use_button.click()
    qtbot.waitUntil(lambda: window.pipeline_panel.values()["txt2img.prompt"] == "a red fox in snow",
                    timeout=5000)
    assert window.pipeline_panel.values()["txt2img.seed"] == int(seed)


@pytest.mark.parametrize("fake_sdwebui_thread", [SLOW], indirect=True)
def test_stop_mid_run_interrupts_the_server(qtbot, window_for, fake_sdwebui_thread):
    fake = fake_sdwebui_thread
    window = window_for(fake.url)
    _fill(window, **{"txt2img.prompt": "a long one", "txt2img.steps": 60, "txt2img.width": 256,
                     "txt2img.height": 256})
    window.commands.run_button.click()
    qtbot.waitUntil(lambda: (window.session.pipeline.progress.step or 0) >= 2, timeout=8000)
    window.commands.stop_button.click()
    assert window.commands.state_label.text() == "Stopping…"
    assert window.status.eta_label.text() == "Stopping…"
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=5000)
    assert window.commands.state_label.text() == ""
    assert fake.interrupts, "the interrupt reached the server"
    assert window.commands.run_button.isEnabled()


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_drop_a1111_png_loads_its_settings(qtbot, window_for, fake_sdwebui_thread, tmp_path):
    window = window_for(fake_sdwebui_thread.url)
    png = tmp_path / "from-a1111.png"
    info = PngInfo()
    info.add_text("parameters", "a castle in the clouds\nNegative prompt: fog\n"
                  "Steps: 33, Sampler: Euler a, Schedule type: Automatic, CFG scale: 5.5, "
                  "Seed: 1234, Size: 640x448, Model: dream, Mystery knob: 3")
    Image.new("RGB", (64, 64), "white").save(png, pnginfo=info)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png))])
    # As a real drag does: the window accepts the drag on entry, then gets the drop.
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, event)
    panel = window.pipeline_panel
    qtbot.waitUntil(lambda: panel.editor("txt2img.prompt").value() == "a castle in the clouds"
                    or window.session.pipeline.error is not None, timeout=5000)
    assert window.session.pipeline.error is None, window.session.pipeline.error
    values = panel.values()
    assert values["txt2img.negative_prompt"] == "fog"
    assert values["txt2img.steps"] == 33
    assert values["txt2img.cfg_scale"] == 5.5
    assert values["txt2img.seed"] == 1234
    assert (values["txt2img.width"], values["txt2img.height"]) == (640, 448)
    assert values["txt2img.sampler"] == "Euler a"
    message = window.notice.message
    assert "from-a1111.png" in message and "Loaded" in message
    assert "Mystery knob" in message, "unknown keys are named"


def test_no_server_run_shows_error_not_traceback(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    window.pipeline_panel.editor("txt2img.prompt").set_value("x")
    window.commands.run_button.click()
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=8000)
    error = window.session.pipeline.error
    assert error is not None and dead_url in error.message
    assert "Traceback" not in window.notice.message
    # Said once: the server's banner says it; neither the run's banner nor the status bar repeats it.
    assert window.server_notice.isVisible() and dead_url in window.server_notice.message
    assert window.notice.isHidden() and not window.status.error_button.isVisible()


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_rooms_open_after_first_paint_and_add_to_queue_runs_on_the_node(qtbot, window_for,
                                                                         fake_sdwebui_thread):
    from stablenew.gui.main_window import PanelSlot

    fake = fake_sdwebui_thread
    window = window_for(fake.url)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=10000)
    assert not isinstance(window.sidebar, PanelSlot), "the library sidebar replaced its slot"
    assert not isinstance(window.queue_panel, PanelSlot)
    assert not isinstance(window.nodes_panel, PanelSlot)
    assert window.work_tabs.indexOf(window.nodes_panel) >= 0
    assert window.work_tabs.indexOf(window.queue_panel) >= 0
    assert window.commands.queue_button.isEnabled()
    _fill(window, **{"txt2img.prompt": "queued", "txt2img.steps": 3, "txt2img.batch_count": 2,
                     "txt2img.width": 128, "txt2img.height": 128})
    before = fake.images_generated
    window.commands.queue_button.click()
    qtbot.waitUntil(lambda: fake.images_generated - before >= 2, timeout=15000)
    qtbot.waitUntil(lambda: window.commands.queue_count.text() == "Queue: 0", timeout=10000)


@pytest.mark.parametrize("fake_sdwebui_thread", [SLOW], indirect=True)
def test_an_opened_image_stays_while_the_live_preview_waits_behind_a_button(
        qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    _fill(window, **{"txt2img.prompt": "two", "txt2img.steps": 14, "txt2img.batch_count": 2,
                     "txt2img.width": 128, "txt2img.height": 128})
    window.run()
    viewer = window.viewer
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() >= 1, timeout=10000)
    window.gallery_panel.select_first()
    qtbot.waitUntil(lambda: not viewer.following_live, timeout=5000)
    opened = viewer.caption.full_text()
    qtbot.waitUntil(lambda: viewer.live_button.isVisible(), timeout=8000)
    assert viewer.caption.full_text() == opened, "the opened image is not replaced by the preview"
    viewer.live_button.click()
    assert viewer.following_live and not viewer.live_button.isVisible()
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=10000)


@pytest.mark.parametrize("fake_sdwebui_thread", [SLOW], indirect=True)
def test_keyboard_run_and_stop_from_the_prompt_field(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    prompt = window.pipeline_panel.editor("txt2img.prompt").widget
    prompt.setFocus()
    qtbot.keyClicks(prompt, "typed then run")
    _fill(window, **{"txt2img.steps": 60, "txt2img.width": 128, "txt2img.height": 128})
    qtbot.keyClick(prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "running", timeout=3000)
    assert window.session.pipeline.config.txt2img.prompt == "typed then run"
    assert prompt.toPlainText() == "typed then run", "Ctrl+Enter runs; it types no newline"
    qtbot.waitUntil(lambda: (window.session.pipeline.progress.step or 0) >= 1, timeout=8000)
    qtbot.keyClick(prompt, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=8000)
    assert fake_sdwebui_thread.interrupts


class _Plan:
    """A plan as the randomizer hands it over: an exact count and one-image items."""

    def __init__(self, configs):
        self.count = len(configs)
        self._items = [type("Item", (), {"config": c, "tags": None})() for c in configs]

    def __iter__(self):
        return iter(self._items)


@pytest.mark.parametrize("fake_sdwebui_thread", [STEADY], indirect=True)
def test_a_plan_runs_every_item_with_one_progress_bar_and_eta(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    pipeline = window.session.pipeline
    _fill(window, **{"txt2img.prompt": "plan", "txt2img.steps": 20, "txt2img.width": 128,
                     "txt2img.height": 128})
    base = pipeline.build_config(window.pipeline_panel.values())
    plan = _Plan([base.with_changes({"txt2img.seed": seed}) for seed in (11, 12, 13)])
    seen = []
    pipeline.progress_changed.connect(seen.append)
    assert pipeline.run(window.pipeline_panel.values(), plan=lambda config: plan)
    qtbot.waitUntil(lambda: pipeline.state == "idle", timeout=20000)
    assert pipeline.error is None, pipeline.error
    assert pipeline.progress.images_saved == 3
    running = [p for p in seen if p.state == "running"]
    assert {p.total_images for p in running if p.total_images} == {3}
    fractions = [p.overall_fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    # Mid-plan progress is a share of the whole plan, not of one item.
    assert any(0.3 < p.overall_fraction < 0.95 for p in running if p.image_index >= 1)
    assert any(p.eta_seconds is not None for p in running if p.image_index >= 1)


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_run_waits_for_the_variant_count_then_starts_by_itself(qtbot, window_for, fake_sdwebui_thread):
    """Run pressed before the variants are counted starts once the count is in; Stop forgets it."""
    fake = fake_sdwebui_thread
    window = window_for(fake.url)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=10000)
    adapter = window.session.randomizer
    _fill(window, **{"txt2img.prompt": "a fox", "txt2img.steps": 2, "txt2img.width": 64,
                     "txt2img.height": 64})
    adapter.set_enabled(True)
    adapter.set_template("a {red|blue} fox")  # not counted yet: the typing delay runs
    assert not adapter.count_ready
    window.run()
    assert window.session.pipeline.state == "idle", "nothing starts before the count"
    qtbot.waitUntil(lambda: fake.images_generated == 2 and window.session.pipeline.state == "idle",
                    timeout=15000)
    assert window.session.pipeline.error is None, window.session.pipeline.error

    adapter.set_template("a {green|grey} fox")
    window.run()
    window._stop()  # Stop while the run waits for its count: it never starts
    if not adapter.count_ready:
        with qtbot.waitSignal(adapter.exact_count_changed, timeout=5000):
            pass
    # A waiting Run is started from a zero timer once the count is in: one pass delivers it.
    QApplication.processEvents()
    assert fake.images_generated == 2
    assert window.session.pipeline.state == "idle"


# --- Run is a queue item -------------------------------------------------------------------------


def _queue_store():
    from stablenew.cluster.queue_store import QueueStore
    from stablenew.storage.paths import AppPaths

    return QueueStore(AppPaths.default().database_file)


def _learning_paths() -> list[str]:
    import sqlite3

    from stablenew.storage.paths import AppPaths

    con = sqlite3.connect(AppPaths.default().database_file, timeout=5)
    try:
        return sorted(r[0] for r in con.execute("SELECT path FROM learning_records"))
    except sqlite3.OperationalError:
        return []  # the learning store has not made its table yet
    finally:
        con.close()


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_a_run_is_an_interactive_queue_item_on_the_window_server(qtbot, window_for,
                                                                  fake_sdwebui_thread):
    from stablenew.cluster.jobs import INTERACTIVE_PRIORITY, ItemState

    window = window_for(fake_sdwebui_thread.url)
    session = window.session
    qtbot.waitUntil(lambda: session.rooms_ready, timeout=10000)
    _fill(window, **{"txt2img.prompt": "a queued run", "txt2img.steps": 3, "txt2img.batch_count": 2,
                     "txt2img.width": 128, "txt2img.height": 128})
    messages = []
    session.pipeline.message_changed.connect(messages.append)
    window.run()
    qtbot.waitUntil(lambda: session.pipeline.state == "idle", timeout=15000)
    assert session.pipeline.error is None, session.pipeline.error
    announced = "“Run: a queued run” finished: 2 images saved."  # a Run is no "Batch"
    qtbot.waitUntil(lambda: announced in messages, timeout=5000)
    with _queue_store() as store:
        (job,) = store.reads.list_jobs()
        items = store.reads.items(job.id)
    assert job.priority == INTERACTIVE_PRIORITY
    assert job.node_pin == session.server.node_name, "pinned to the window's server"
    assert job.name.startswith("Run: a queued run")
    assert [i.state for i in items] == [ItemState.done] * 2
    outputs = sorted(o for i in items for o in i.outputs)
    assert len(outputs) == 2 and fake_sdwebui_thread.images_generated == 2
    # Each image reaches the gallery once and the learning store once.
    qtbot.waitUntil(lambda: len(session.gallery.items) == 2, timeout=5000)
    assert sorted(str(g.path) for g in session.gallery.items) == outputs
    qtbot.waitUntil(lambda: len(_learning_paths()) >= 2, timeout=5000)
    assert _learning_paths() == outputs
    qtbot.waitUntil(lambda: window.commands.queue_count.text() == "Queue: 0", timeout=5000)
    # The runner the Run started stops with it (nothing else waits): one runner per database,
    # so `stablenew queue run` in a terminal may take the queue again.
    assert not session.queue.running


@pytest.mark.parametrize("fake_sdwebui_thread", [STEADY], indirect=True)
def test_a_run_goes_before_a_queued_batch_and_a_pause_does_not_hold_it(qtbot, window_for,
                                                                      fake_sdwebui_thread):
    from stablenew.cluster.jobs import ItemState

    window = window_for(fake_sdwebui_thread.url)
    session = window.session
    qtbot.waitUntil(lambda: session.rooms_ready, timeout=10000)
    queue = session.queue
    batch_config = session.pipeline.build_config(
        {**window.pipeline_panel.values(), "txt2img.prompt": "batch", "txt2img.steps": 4,
         "txt2img.batch_count": 3, "txt2img.width": 128, "txt2img.height": 128})
    queue.add_config(batch_config, name="batch")  # queued: nothing works through it yet
    qtbot.waitUntil(lambda: queue.count == 3, timeout=5000)
    queue.edits.pause()
    qtbot.waitUntil(lambda: queue.paused, timeout=5000)
    _fill(window, **{"txt2img.prompt": "me first", "txt2img.steps": 4, "txt2img.width": 128,
                     "txt2img.height": 128})
    window.run()
    qtbot.waitUntil(lambda: session.pipeline.state == "idle", timeout=15000)
    assert session.pipeline.error is None, session.pipeline.error
    assert session.pipeline.progress.images_saved == 1
    assert fake_sdwebui_thread.images_generated == 1, "the paused batch waited"
    queue.edits.resume()
    qtbot.waitUntil(lambda: queue.count == 0, timeout=15000)
    with _queue_store() as store:
        jobs = {j.name: j for j in store.reads.list_jobs()}
        (run_item,) = store.reads.items(jobs["Run: me first"].id)
        batch_items = store.reads.items(jobs["batch"].id)
    assert run_item.state is ItemState.done and all(i.state is ItemState.done for i in batch_items)
    assert run_item.finished_at < min(i.finished_at for i in batch_items)


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_run_pressed_before_the_queue_room_opened_opens_it_and_runs(qtbot, window_for,
                                                                    fake_sdwebui_thread):
    from stablenew.gui.main_window import PanelSlot

    window = window_for(fake_sdwebui_thread.url, connect=False)  # no first-paint start: no rooms
    session = window.session
    assert session.queue is None and isinstance(window.queue_panel, PanelSlot)
    _fill(window, **{"txt2img.prompt": "early", "txt2img.steps": 3, "txt2img.width": 128,
                     "txt2img.height": 128})
    window.run()
    qtbot.waitUntil(lambda: session.pipeline.state == "idle", timeout=15000)
    assert session.pipeline.error is None, session.pipeline.error
    assert fake_sdwebui_thread.images_generated == 1, "the click was not lost"
    assert session.queue is not None and not isinstance(window.queue_panel, PanelSlot)
    qtbot.waitUntil(lambda: len(session.gallery.items) == 1, timeout=5000)


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_a_failed_run_says_why_at_once_and_is_not_retried_later(qtbot, window_for,
                                                                 fake_sdwebui_thread):
    from stablenew.cluster.jobs import ItemState

    fake = fake_sdwebui_thread
    window = window_for(fake.url)
    session = window.session
    _fill(window, **{"txt2img.prompt": "broken", "txt2img.steps": 3, "txt2img.width": 128,
                     "txt2img.height": 128})
    fake.inject("500", path="/sdapi/v1/txt2img", times=5)
    window.run()
    qtbot.waitUntil(lambda: session.pipeline.state == "idle", timeout=10000)
    error = session.pipeline.error
    assert error is not None and "Traceback" not in error.message
    assert window.notice.isVisible() and window.notice.message == error.message
    assert not window.status.error_button.isVisible(), "the banner says it; the bar keeps it later"
    with _queue_store() as store:
        (job,) = store.reads.list_jobs()
        (item,) = store.reads.items(job.id)
    assert (item.state, item.attempts) == (ItemState.failed, 1), "a Run is not retried behind the user"
    assert fake.images_generated == 0


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_a_pack_run_keeps_where_each_image_came_from(qtbot, window_for, fake_sdwebui_thread):
    from stablenew.cluster.jobs import JobKind
    from stablenew.pipeline.records import RunTags

    window = window_for(fake_sdwebui_thread.url)
    pipeline = window.session.pipeline
    _fill(window, **{"txt2img.prompt": "pack", "txt2img.steps": 3, "txt2img.width": 128,
                     "txt2img.height": 128})
    base = pipeline.build_config(window.pipeline_panel.values())
    saved = []
    window.session.queued_image_saved.connect(saved.append)
    plan = _Plan([base.with_changes({"txt2img.prompt": p}) for p in ("a cat", "a dog")])
    for number, item in enumerate(plan):
        item.tags = RunTags(pack="animals", preset="soft", variant_id=f"p{number + 1}",
                            variant_label=item.config.txt2img.prompt)
    assert pipeline.run_plan(lambda config: plan)
    qtbot.waitUntil(lambda: pipeline.state == "idle", timeout=15000)
    assert pipeline.error is None, pipeline.error
    with _queue_store() as store:
        (job,) = store.reads.list_jobs()
    assert job.kind is JobKind.pack and (job.origin.pack, job.origin.preset) == ("animals", "soft")
    qtbot.waitUntil(lambda: len(window.session.gallery.items) == 2, timeout=5000)
    assert {g.key for g in window.session.gallery.items} == {str(r.path) for r in saved}
    tags = sorted((r.tags.pack, r.tags.preset, r.tags.variant_id, r.tags.variant_label)
                  for r in saved)
    assert tags == [("animals", "soft", "p1", "a cat"), ("animals", "soft", "p2", "a dog")]


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_run_and_add_to_queue_share_the_one_runner(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    session = window.session
    qtbot.waitUntil(lambda: session.rooms_ready, timeout=10000)
    _fill(window, **{"txt2img.prompt": "shared", "txt2img.steps": 3, "txt2img.width": 128,
                     "txt2img.height": 128})
    window.commands.queue_button.click()
    qtbot.waitUntil(lambda: session.queue.running and fake_sdwebui_thread.images_generated == 1,
                    timeout=10000)
    runner_task = session.queue._runner_task
    window.run()
    qtbot.waitUntil(lambda: session.pipeline.state == "idle", timeout=10000)
    assert session.pipeline.error is None, session.pipeline.error
    assert fake_sdwebui_thread.images_generated == 2
    # The Run went through the runner Add to queue started, which carries on after it.
    assert session.queue.running and session.queue._runner_task is runner_task
    session.queue.stop_runner()
    qtbot.waitUntil(lambda: not session.queue.running, timeout=5000)


def test_a_run_a_later_stage_cannot_do_is_an_error_before_anything_runs(qtbot, window_for,
                                                                        tmp_path):
    """Issue 17: on a ComfyUI without the ADetailer nodes the base image was made, thrown
    away, an empty folder left, and the reason shown as a passing blue note."""
    from tests.fakes.comfyui import FakeComfyUI

    with FakeComfyUI(step_ms=1, face_detailer=False).running_in_thread() as comfy:
        window = window_for(comfy.url)
        session = window.session
        _fill(window, **{"txt2img.prompt": "a face", "txt2img.steps": 2, "txt2img.width": 64,
                         "txt2img.height": 64, "adetailer.enabled": True})
        window.run()
        qtbot.waitUntil(lambda: session.pipeline.state == "idle", timeout=10000)
        error = session.pipeline.error
        assert error is not None and "FaceDetailer" in error.message
        # An error, not a passing note: the banner shows it until closed, then the status bar.
        assert window.notice.isVisible() and window.notice.message == error.message
        assert window.notice.level == "error"
        qtbot.mouseClick(window.notice._close_button, Qt.MouseButton.LeftButton)
        assert window.status.error_button.isVisible()
        assert not comfy.received  # nothing was sent
    outputs = session.app.output_dir
    assert not outputs.exists() or not any(p.is_dir() for p in outputs.iterdir())


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 1, "adetailer_models": None}],
                         indirect=True)
def test_when_a_later_stage_fails_the_run_keeps_the_earlier_image(qtbot, window_for,
                                                                  fake_sdwebui_thread):
    """The ADetailer extension is missing (A1111 lists nothing to check first): the stage
    fails after txt2img; the error says why, and the txt2img image is kept, named so."""
    fake = fake_sdwebui_thread
    window = window_for(fake.url)
    session = window.session
    _fill(window, **{"txt2img.prompt": "a face", "txt2img.steps": 2, "txt2img.width": 64,
                     "txt2img.height": 64, "adetailer.enabled": True})
    window.run()
    qtbot.waitUntil(lambda: session.pipeline.state == "idle", timeout=10000)
    error = session.pipeline.error
    assert error is not None and "ADetailer" in error.message
    assert window.status.error_button.isVisible()
    kept = list(session.app.output_dir.rglob("*-txt2img-only.png"))
    assert len(kept) == 1
