"""Honest words for a run: the image counter in step with the images, stopped is not done, plurals."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt


def _fill(window, **values):
    for path, value in values.items():
        window.pipeline_panel.editor(path).set_value(value)


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 100.0}], indirect=True)
def test_the_image_counter_names_the_image_being_made(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    _fill(window, **{"txt2img.prompt": "counting", "txt2img.steps": 8, "txt2img.batch_count": 4,
                     "txt2img.width": 64, "txt2img.height": 64})
    seen, every = [], []
    window.session.pipeline.progress_changed.connect(
        lambda p: seen.append((p.stage_text, p.images_saved, p.step)) if p.step else None)
    window.session.pipeline.progress_changed.connect(
        lambda p: every.append((p.stage_text, p.images_saved)) if p.state == "running" else None)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=20000)
    assert fake_sdwebui_thread.images_generated == 4
    # While steps count, the image named is the one after those already saved (one node: in order).
    wrong = [(text, saved) for text, saved, _step in seen if f"image {saved + 1} of 4" not in text]
    assert not wrong, wrong
    assert {saved for _t, saved, _s in seen} == {0, 1, 2, 3}
    # Between images too: once image N is saved, the counter never names it as the one in hand.
    behind = [(text, saved) for text, saved in every
              if 0 < saved < 4 and any(f"image {n} of 4" in text for n in range(1, saved + 1))]
    assert not behind, behind


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 40.0}], indirect=True)
def test_a_stopped_run_says_stopped_and_counts_in_plain_plurals(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    session = window.session
    _fill(window, **{"txt2img.prompt": "six", "txt2img.steps": 10, "txt2img.batch_count": 6,
                     "txt2img.width": 64, "txt2img.height": 64})
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.pipeline.progress.images_saved >= 1, timeout=15000)
    qtbot.mouseClick(window.commands.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.pipeline.state == "idle", timeout=10000)
    saved = session.pipeline.progress.images_saved
    assert 1 <= saved < 6
    qtbot.waitUntil(lambda: session.rooms_ready and session.queue.model.rowCount() == 1, timeout=10000)
    model = session.queue.model
    qtbot.waitUntil(lambda: model.index(0, 2).data() not in ("Running", "Waiting"), timeout=10000)
    assert model.index(0, 2).data() == "Stopped", "some images were made, then the user stopped it"
    assert model.index(0, 1).data().startswith(f"{saved}/6")
    kept = "1 image kept" if saved == 1 else f"{saved} images kept"
    assert kept in window.notice.message, window.notice.message


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 5.0}], indirect=True)
def test_one_image_saved_is_singular(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    _fill(window, **{"txt2img.prompt": "one", "txt2img.steps": 3, "txt2img.width": 64,
                     "txt2img.height": 64})
    messages = []
    window.session.pipeline.message_changed.connect(messages.append)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=10000)
    qtbot.waitUntil(lambda: bool(messages), timeout=5000)
    assert "1 image saved." in messages and not any("1 images" in m for m in messages), messages
    assert window.notice.message == messages[-1]
