"""Journey: tick "Add matching LoRAs" in the Models tab and press Run: the server gets the LoRA
that fits the prompt and that it has, with its trigger word; a LoRA only another folder has is
left out; the image names its hash and says which LoRA was chosen for the user."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QFileDialog

from stablenew.pipeline.infotext import read_image_metadata
from tests.catalog.factory import SDXL_KEYS, write_json, write_model


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 2.0}], indirect=True)
def test_add_matching_loras_in_models_then_run(qtbot, window_for, fake_sdwebui_thread, tmp_path,
                                               monkeypatch):
    server_loras = tmp_path / "models" / "Lora"
    write_model(server_loras / "neon.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"},
                SDXL_KEYS, tensor_bytes=64, fill=b"\x03")
    write_json(server_loras / "neon.json", {"activation text": "neonstyle", "preferred weight": 0.7})
    elsewhere = tmp_path / "nas" / "Lora"  # in the catalog, but not on the server Run uses
    write_model(elsewhere / "rain.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"}, SDXL_KEYS)
    fake = fake_sdwebui_thread
    fake.lora_dir = server_loras
    window = window_for(fake.url)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=15000)
    panel = window.models_panel
    window.work_tabs.setCurrentWidget(panel)
    for folder in (server_loras, elsewhere):
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, f=folder, **k: str(f))
        qtbot.mouseClick(panel.add_folder_button, Qt.MouseButton.LeftButton)
    catalog = window.session.catalog
    # Beside the server's own LoRAs (listed in Models with no folder added), both folders' files.
    qtbot.waitUntil(lambda: {"neon", "rain"} <= {e.name for e in catalog.catalog.loras if e.size},
                    timeout=20000)
    # Looked up afresh each time: a second read of the folders makes new entries.
    qtbot.waitUntil(lambda: catalog.catalog.find("neon").sha256 is not None, timeout=20000)
    neon = catalog.catalog.find("neon")

    bar = panel.auto_loras
    assert not bar.switch.isChecked() and not bar.most.isEnabled()
    qtbot.mouseClick(bar.switch, Qt.MouseButton.LeftButton, pos=QPoint(8, bar.switch.height() // 2))
    qtbot.waitUntil(lambda: window.session.app.settings.lora_auto, timeout=2000)
    assert bar.most.isEnabled()
    bar.most.lineEdit().selectAll()
    qtbot.keyClicks(bar.most.lineEdit(), "3")
    assert window.session.app.settings.lora_auto_max == 3

    window.pipeline_panel.editor("txt2img.prompt").set_value("a city at night, neon rain")
    for path, value in {"txt2img.steps": 2, "txt2img.width": 64, "txt2img.height": 64}.items():
        window.pipeline_panel.editor(path).set_value(value)
    saved = []
    window.session.queued_image_saved.connect(saved.append)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(saved) and window.session.pipeline.state == "idle", timeout=20000)
    assert window.session.pipeline.error is None, window.session.pipeline.error
    sent = "a city at night, neon rain, neonstyle, <lora:neon:0.7>"
    assert fake.requests_to("/sdapi/v1/txt2img")[-1].payload["prompt"] == sent
    meta = read_image_metadata(saved[0].path)
    assert meta.parsed["Lora hashes"] == f"neon: {neon.autov3}"
    assert meta.stablenew["tags"]["auto_loras"] == ["neon:0.7"]
    assert meta.stablenew["tags"]["original_prompt"] == "a city at night, neon rain"
    assert window.pipeline_panel.values()["txt2img.prompt"] == "a city at night, neon rain"
