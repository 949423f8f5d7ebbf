"""The gallery's inspector leads to the Funnel: "Start a funnel from its settings" loads the
image's settings into the cards and opens the Funnel tab, whose Make drafts starts from them."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

FAST = {"step_ms": 2.0}


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_an_image_in_the_gallery_starts_a_funnel_from_its_settings(qtbot, window_for,
                                                                    fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    for path, value in {"txt2img.prompt": "a paper lantern", "txt2img.steps": 4,
                        "txt2img.width": 128, "txt2img.height": 128, "txt2img.seed": 31}.items():
        window.pipeline_panel.editor(path).set_value(value)
    window.commands.run_button.click()
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle"
                    and window.gallery_panel.model.rowCount() == 1, timeout=15000)
    window.gallery_panel.select_first()
    sidebar = window.viewer.sidebar
    qtbot.waitUntil(lambda: bool(sidebar.key) and sidebar.funnel_button.isEnabled(), timeout=5000)
    window.pipeline_panel.editor("txt2img.prompt").set_value("something else")
    window.pipeline_panel.editor("txt2img.seed").set_value(-1)

    qtbot.mouseClick(sidebar.funnel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.work_tabs.currentWidget() is window.funnel_panel, timeout=3000)
    qtbot.waitUntil(lambda: window.pipeline_panel.values()["txt2img.prompt"] == "a paper lantern",
                    timeout=5000)
    assert window.pipeline_panel.values()["txt2img.seed"] == 31
    qtbot.waitUntil(lambda: type(window.funnel_panel).__name__ == "FunnelPanel", timeout=10000)
    panel = window.funnel_panel
    qtbot.waitUntil(lambda: panel.start_button.isEnabled(), timeout=5000)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.controller.funnel is not None, timeout=5000)
    funnel = panel.controller.funnel
    assert funnel.base.txt2img.prompt == "a paper lantern" and funnel.runs[0].seeds[0] == 31
