"""The model picker groups the server's checkpoints by family under headings that cannot be
picked; choosing one by click sets the card's model."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

MATCH = Qt.MatchFlag.MatchStartsWith

CHECKPOINTS = ("sd_xl_base_1.0.safetensors", "SD15/dreamshaper_8.safetensors",
               "flux1-dev-fp8.safetensors", "ponyDiffusionV6XL.safetensors",
               "juggernautXL_v9.safetensors")


@pytest.mark.parametrize("fake_sdwebui_thread", [{"checkpoints": CHECKPOINTS}], indirect=True)
def test_checkpoints_are_grouped_by_family(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    combo = window.pipeline_panel.editor("txt2img.checkpoint").widget
    qtbot.waitUntil(lambda: combo.count() > len(CHECKPOINTS), timeout=5000)
    items = [combo.itemText(i) for i in range(combo.count())]
    headings = [i for i in range(combo.count()) if combo.itemText(i) in ("SD 1.5", "SDXL", "Pony", "Flux")]
    assert [combo.itemText(i) for i in headings] == ["SD 1.5", "SDXL", "Pony", "Flux"]
    for i in headings:  # a heading is not a model anyone can pick
        assert not combo.model().item(i).isEnabled()
    named = [t.split(" [")[0] for t in items if t and t not in ("SD 1.5", "SDXL", "Pony", "Flux")]
    assert named == ["SD15/dreamshaper_8.safetensors", "juggernautXL_v9.safetensors",
                     "sd_xl_base_1.0.safetensors", "ponyDiffusionV6XL.safetensors",
                     "flux1-dev-fp8.safetensors"]
    # Picked from the list, a model is the card's value.
    flux = next(i for i, t in enumerate(items) if t.startswith("flux1-dev"))
    combo.setCurrentIndex(flux)
    assert window.pipeline_panel.values()["txt2img.checkpoint"].startswith("flux1-dev-fp8")
    # The refiner's picker is grouped the same way; the upscaler's is not.
    refiner = window.pipeline_panel.editor("txt2img.refiner.checkpoint").widget
    assert refiner.findText("Flux") >= 0
    upscaler = window.pipeline_panel.editor("upscale.upscaler").widget
    assert upscaler.findText("SDXL") < 0


def test_refresh_lists_shows_a_model_copied_to_the_server_while_the_app_runs(
        qtbot, window_for, fake_sdwebui_thread):
    # A1111 lists its folders as they were at start-up until asked to read them again: the
    # status bar's Refresh lists asks it to, and the cards' pickers follow.
    window = window_for(fake_sdwebui_thread.url)
    combo = window.pipeline_panel.editor("txt2img.checkpoint").widget
    qtbot.waitUntil(lambda: combo.findText("sd_xl_base_1.0", flags=MATCH) >= 0, timeout=5000)
    fake_sdwebui_thread.add_files(checkpoints=("juggernautXL_v9.safetensors",))
    server = window.session.server
    server.check_health()  # a health check alone reads nothing new
    qtbot.waitUntil(lambda: not server.tasks.busy, timeout=5000)
    assert combo.findText("juggernautXL_v9", flags=MATCH) < 0
    button = window.status.refresh_button
    assert button.isVisible() and button.text() == "Refresh lists"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: combo.findText("juggernautXL_v9", flags=MATCH) >= 0, timeout=10_000)
    qtbot.waitUntil(lambda: button.isEnabled() and button.text() == "Refresh lists", timeout=5000)
    assert "A1111, ready" in window.status.node_label.full_text()


def test_refresh_lists_while_connecting_leaves_the_connect_alone(qtbot, window_for,
                                                                 fake_sdwebui_thread):
    # A server slow to answer its first probe: pressing Refresh lists meanwhile must not
    # cancel that connect and start another (it reads the lists anyway).
    fake_sdwebui_thread.inject("stall", path="/sdapi/v1/sd-models", seconds=1.5)
    window = window_for(fake_sdwebui_thread.url, connect=False)
    server = window.session.server
    server.reconnect()
    connecting = server._connecting
    qtbot.mouseClick(window.status.refresh_button, Qt.MouseButton.LeftButton)
    assert server._connecting is connecting and not connecting.done()
    qtbot.waitUntil(lambda: server.state == "connected", timeout=15_000)
