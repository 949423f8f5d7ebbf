"""Live previews in the viewer during steps, on both server kinds, as the `live_previews` setting says."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

SIDE = 128  # the images asked for; the fakes' preview frames are smaller (16 or 64 px)


def _run_and_watch(qtbot, window) -> list[tuple[str, int]]:
    """Run once from the Run button; each picture the viewer showed: its caption and width."""
    shown = []
    window.session.pipeline.preview_changed.connect(
        lambda image, *_: shown.append((window.viewer.caption.full_text(), image.original_width)))
    editor = window.pipeline_panel.editor
    editor("txt2img.prompt").set_value("a lighthouse at dusk")
    for path, value in (("txt2img.steps", 30), ("txt2img.width", SIDE), ("txt2img.height", SIDE)):
        editor(path).set_value(value)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "running", timeout=5000)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=20000)
    assert window.session.pipeline.error is None, window.session.pipeline.error
    qtbot.waitUntil(lambda: any(width == SIDE for _c, width in shown), timeout=5000)
    return shown


@pytest.mark.parametrize("fake_comfyui_thread", [{"step_ms": 40.0}], indirect=True)
def test_comfyui_steps_show_live_frames_and_the_result_is_not_called_a_preview(
        qtbot, window_for, fake_comfyui_thread):
    window = window_for(fake_comfyui_thread.url, live_previews=True)
    shown = _run_and_watch(qtbot, window)
    frames = [caption for caption, width in shown if width < SIDE]
    assert frames, f"no preview frame reached the viewer during the steps: {shown}"
    assert all(caption.startswith("Live preview") for caption in frames), frames
    results = [caption for caption, width in shown if width == SIDE]
    assert results and not any("preview" in c.lower() for c in results), results


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 40.0}], indirect=True)
def test_a1111_steps_show_live_frames(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url, live_previews=True)
    shown = _run_and_watch(qtbot, window)
    frames = [caption for caption, width in shown if width < SIDE]
    assert frames and all(c.startswith("Live preview") for c in frames), shown


@pytest.mark.parametrize("fake_comfyui_thread", [{"step_ms": 20.0}], indirect=True)
def test_previews_off_in_settings_asks_the_server_for_none(qtbot, window_for, fake_comfyui_thread):
    window = window_for(fake_comfyui_thread.url, live_previews=False)
    shown = _run_and_watch(qtbot, window)
    assert [width for _c, width in shown] == [SIDE], "only the saved image was shown"
    assert shown[0][0] == "Latest result"


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 30.0}], indirect=True)
def test_previews_off_in_settings_shows_no_a1111_frames(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url, live_previews=False)
    shown = _run_and_watch(qtbot, window)
    assert [width for _c, width in shown] == [SIDE], "only the saved image was shown"
