"""Journey: scan a LoRA folder in the Models tab, filter, add a LoRA with its trigger word, run,
and the saved image's infotext carries `Lora hashes` as A1111 writes them."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from stablenew.pipeline.infotext import read_image_metadata
from tests.catalog.factory import PNG_2PX, SD1_KEYS, SDXL_KEYS, write_json, write_model


def add_folder_in_models(qtbot, window, folder, monkeypatch, rows: int):
    """What a user does: open the Models tab, press Add folder… and pick *folder*; returns the
    panel once it lists *rows* models."""
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=15000)
    panel = window.models_panel
    window.work_tabs.setCurrentWidget(panel)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    qtbot.mouseClick(panel.add_folder_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.model.rowCount() == rows, timeout=10000)
    return panel


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 5.0}], indirect=True)
def test_pick_a_lora_run_and_the_image_names_its_hash(qtbot, window_for, fake_sdwebui_thread, tmp_path,
                                                      monkeypatch):
    loras = tmp_path / "models" / "Lora"
    write_model(loras / "style" / "neon.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"},
                SDXL_KEYS, tensor_bytes=64, fill=b"\x03")
    write_json(loras / "style" / "neon.json", {"activation text": "neonstyle, glowing lines",
                                               "preferred weight": 0.7})
    (loras / "style" / "neon.preview.png").write_bytes(PNG_2PX)
    write_model(loras / "old_sd1.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS)
    fake = fake_sdwebui_thread
    fake.lora_dir = loras  # the server uses the same folder, as on one PC
    fake.loras = ()  # and lists nothing else (its LoRAs would show beside the folder's)
    window = window_for(fake.url)
    panel = add_folder_in_models(qtbot, window, loras, monkeypatch, rows=2)
    assert type(panel).__name__ == "ModelsPanel"
    catalog = window.session.catalog
    # hashed in the background (a re-read, when the server's list comes, makes new entries)
    qtbot.waitUntil(lambda: catalog.catalog.find("neon").sha256 is not None, timeout=10000)

    panel.family.setCurrentIndex(panel.family.findData("SDXL"))
    assert [e.name for e in panel.model.rows] == ["neon"]
    rect = panel.grid.visualRect(panel.model.index(0))
    qtbot.mouseClick(panel.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert [b.text() for b in panel.trigger_boxes] == ["neonstyle", "glowing lines"]
    window.pipeline_panel.editor("txt2img.prompt").set_value("a city at night")
    for path, value in {"txt2img.steps": 3, "txt2img.width": 64, "txt2img.height": 64}.items():
        window.pipeline_panel.editor(path).set_value(value)
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.pipeline_panel.values()["txt2img.prompt"]
                    == "a city at night, neonstyle, <lora:neon:0.7>", timeout=5000)

    saved = []
    window.session.queued_image_saved.connect(saved.append)
    window.commands.run_button.click()
    qtbot.waitUntil(lambda: bool(saved) and window.session.pipeline.state == "idle", timeout=20000)
    assert window.session.pipeline.error is None, window.session.pipeline.error
    meta = read_image_metadata(saved[0].path)
    assert meta.parsed["Prompt"] == "a city at night, neonstyle, <lora:neon:0.7>"
    assert meta.parsed["Lora hashes"] == f"neon: {catalog.catalog.find('neon').autov3}"


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 2.0}], indirect=True)
def test_try_this_lora_runs_its_weights_in_the_learning_room(qtbot, window_for, fake_sdwebui_thread,
                                                              tmp_path, monkeypatch):
    loras = tmp_path / "models" / "Lora"
    write_model(loras / "neon.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"}, SDXL_KEYS)
    write_json(loras / "neon.json", {"activation text": "neonstyle"})
    fake_sdwebui_thread.lora_dir = loras  # the server's only LoRAs, as on one PC
    fake_sdwebui_thread.loras = ()
    window = window_for(fake_sdwebui_thread.url, learning_mode="active")
    panel = add_folder_in_models(qtbot, window, loras, monkeypatch, rows=1)
    window.pipeline_panel.editor("txt2img.prompt").set_value("a city at night")
    for path, value in {"txt2img.steps": 2, "txt2img.width": 64, "txt2img.height": 64}.items():
        window.pipeline_panel.editor(path).set_value(value)
    rect = panel.grid.visualRect(panel.model.index(0))
    qtbot.mouseClick(panel.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    # The row may come from the server's list before the folder's sidecar is read: the pick
    # then shows the trigger word once it is.
    qtbot.waitUntil(lambda: [b.text() for b in panel.trigger_boxes] == ["neonstyle"], timeout=10000)
    qtbot.mouseClick(panel.try_button, Qt.MouseButton.LeftButton)
    learning = window.session.learning
    assert window.work_tabs.currentWidget() is window.learning_panel
    qtbot.waitUntil(lambda: not learning.runs.running, timeout=30000)
    run = learning.runs.run_result
    assert run is not None and len(run.column_labels) == 5
    # Every weight made its image, sent with the LoRA at that weight and its trigger word.
    assert all(run.cell(0, c).path for c in range(5))
    sent = [r.payload["prompt"] for r in fake_sdwebui_thread.requests_to("/sdapi/v1/txt2img")]
    assert sorted(sent) == [f"a city at night, neonstyle, <lora:neon:{w}>"
                            for w in ("0.2", "0.4", "0.6", "0.8", "1")]
    # The cards' own prompt is as the user left it.
    assert window.pipeline_panel.values()["txt2img.prompt"] == "a city at night"


def test_the_picked_lora_stays_picked_and_shows_new_words_when_its_folder_is_read_again(
        qtbot, window_for, fake_sdwebui_thread, tmp_path, monkeypatch):
    """A user picks a LoRA, sets its weight, then writes its trigger words into its sidecar: the
    folder is read again, and the LoRA stays picked with its new words. Another file arriving
    (a re-read that changes nothing of it) keeps the user's weight and ticks."""
    loras = tmp_path / "models" / "Lora"
    write_model(loras / "neon.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"}, SDXL_KEYS)
    fake_sdwebui_thread.lora_dir = loras
    fake_sdwebui_thread.loras = ()
    window = window_for(fake_sdwebui_thread.url)
    panel = add_folder_in_models(qtbot, window, loras, monkeypatch, rows=1)
    rect = panel.grid.visualRect(panel.model.index(0))
    qtbot.mouseClick(panel.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert "no trigger words" in panel.details.text() and panel.try_button.isEnabled()

    write_json(loras / "neon.json", {"activation text": "neonstyle, glowing lines"})
    qtbot.waitUntil(lambda: [b.text() for b in panel.trigger_boxes] == ["neonstyle", "glowing lines"],
                    timeout=10000)
    assert panel.grid.currentIndex().row() == 0 and panel.try_button.isEnabled()
    assert "no trigger words" not in panel.details.text()

    panel.weight.setValue(0.55)
    panel.trigger_boxes[1].setChecked(True)
    shown = panel.model.rows[0]
    write_model(loras / "moss.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"}, SDXL_KEYS)
    qtbot.waitUntil(lambda: panel.model.rowCount() == 2, timeout=10000)
    assert next(e for e in panel.model.rows if e.name == "neon") is not shown  # read anew
    assert panel.grid.currentIndex().data(Qt.ItemDataRole.DisplayRole) is not None
    assert panel._entry().name == "neon"
    assert panel.weight.value() == 0.55
    assert [b.isChecked() for b in panel.trigger_boxes] == [True, True]
