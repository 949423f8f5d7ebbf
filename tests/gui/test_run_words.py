"""What the status bar says while a run works: the hires pass by name, the decode after the last step."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.fakes.comfyui import FakeComfyUI


def _watch_status(window) -> list[tuple[str, str, int]]:
    """Each state of the status bar at a progress update: stage words, step bar text, its maximum."""
    status, seen = window.status, []

    def look(_progress) -> None:
        bar = status.step_bar
        seen.append((status.stage_label.text(), bar.format().replace("%v", str(bar.value()))
                     .replace("%m", str(bar.maximum())), bar.maximum()))

    window.session.pipeline.progress_changed.connect(look)
    return seen


def _hires_run(qtbot, window, steps: int, hires_steps: int) -> None:
    editor = window.pipeline_panel.editor
    values = {"txt2img.prompt": "a castle", "txt2img.steps": steps, "txt2img.width": 64,
              "txt2img.height": 64, "txt2img.hires.enabled": True, "txt2img.hires.steps": hires_steps,
              "txt2img.hires.scale": 2.0}
    for path, value in values.items():
        editor(path).set_value(value)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "running", timeout=5000)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=30000)
    assert window.session.pipeline.error is None, window.session.pipeline.error


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 60.0, "decode_ms": 1500.0}], indirect=True)
def test_a1111_hires_pass_is_named_and_the_decode_shows_activity(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    seen = _watch_status(window)
    _hires_run(qtbot, window, steps=10, hires_steps=16)
    bars = [bar for _stage, bar, _top in seen]
    assert any(bar.startswith("Hires fix ") and bar.endswith("/16") for bar in bars), bars
    assert not any(bar.startswith("step ") and bar.endswith("/16") for bar in bars), \
        "the hires steps are not counted as the first pass's"
    assert any(bar.startswith("step ") and bar.endswith("/10") for bar in bars), bars
    busy = [stage for stage, _bar, top in seen if "decoding and saving…" in stage]
    assert busy, [s for s, _b, _t in seen]
    assert all(top == 0 for stage, _bar, top in seen if "decoding" in stage), "a busy bar, not 16/16"


def test_comfyui_hires_pass_is_named_apart_from_the_first(qtbot, window_for):
    with FakeComfyUI(step_ms=40.0).running_in_thread() as fake:
        window = window_for(fake.url)
        seen = _watch_status(window)
        _hires_run(qtbot, window, steps=10, hires_steps=6)
    bars = [bar for _stage, bar, _top in seen]
    assert any(bar.startswith("Hires fix ") and bar.endswith("/6") for bar in bars), bars
    assert not any(bar.endswith("/16") for bar in bars), "one count for both passes"
