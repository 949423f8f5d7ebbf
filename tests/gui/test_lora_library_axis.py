"""Journey: pick LoRAs in the Models tab, add a "LoRA from library" axis in the Variants tab: the
count it shows is what Run makes, one image per picked LoRA, and it follows the pick."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QFileDialog

from stablenew.pipeline.infotext import read_image_metadata
from tests.catalog.factory import SD1_KEYS, write_model


def _click(qtbot, panel, name: str, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    row = [entry.name for entry in panel.model.rows].index(name)
    rect = panel.grid.visualRect(panel.model.index(row))
    qtbot.mouseClick(panel.grid.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 2.0}], indirect=True)
def test_library_axis_runs_the_picked_loras(qtbot, window_for, fake_sdwebui_thread, tmp_path,
                                            monkeypatch):
    from stablenew.gui.panels.randomizer_panel import RandomizerPanel

    loras = tmp_path / "models" / "Lora"
    for name in ("ink", "neon", "zeta"):
        write_model(loras / f"{name}.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS)
    fake = fake_sdwebui_thread
    fake.lora_dir = loras
    window = window_for(fake.url)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=15000)
    models = window.models_panel
    window.work_tabs.setCurrentWidget(models)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(loras))
    qtbot.mouseClick(models.add_folder_button, Qt.MouseButton.LeftButton)
    # The server's own LoRAs (add_detail, film_grain) join the grid when its list is read.
    qtbot.waitUntil(lambda: {"ink", "neon", "zeta"} <= {e.name for e in models.model.rows},
                    timeout=10000)
    _click(qtbot, models, "ink")
    _click(qtbot, models, "zeta", Qt.KeyboardModifier.ControlModifier)
    window.pipeline_panel.editor("txt2img.prompt").set_value("a fox")
    for path, value in {"txt2img.steps": 2, "txt2img.width": 64, "txt2img.height": 64}.items():
        window.pipeline_panel.editor(path).set_value(value)

    window.work_tabs.setCurrentWidget(window.variants_panel)
    panel = window.findChild(RandomizerPanel)
    assert panel is not None
    qtbot.waitUntil(panel.enabled_box.isVisible, timeout=5000)
    box = panel.enabled_box
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    qtbot.mouseClick(panel.axes.add_button, Qt.MouseButton.LeftButton)
    row = panel.axes.rows[-1]
    row.kind.setCurrentIndex(row.kind.findData("lora_library"))
    assert row.values.text() == "ink:1, zeta:1" and row.values.isReadOnly()
    qtbot.waitUntil(lambda: "make 2 images in 2 variants" in panel.count_label.text(), timeout=10000)

    # A third LoRA picked in Models: the axis and its count follow.
    window.work_tabs.setCurrentWidget(models)
    _click(qtbot, models, "neon", Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: "make 3 images in 3 variants" in panel.count_label.text(), timeout=10000)
    assert row.values.text() == "ink:1, neon:1, zeta:1"
    shown = int(re.search(r"make (\d+) images?", panel.count_label.text()).group(1))

    saved = []
    window.session.queued_image_saved.connect(saved.append)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(saved) == shown and window.session.pipeline.state == "idle",
                    timeout=30000)
    assert window.session.pipeline.error is None, window.session.pipeline.error
    prompts = sorted(read_image_metadata(r.path).parsed["Prompt"] for r in saved)
    assert prompts == [f"a fox, <lora:{name}:1>" for name in ("ink", "neon", "zeta")]
    assert len(fake.requests_to("/sdapi/v1/txt2img")) == shown
