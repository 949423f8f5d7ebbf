"""Journey: Ctrl-click two LoRAs in the Models tab, press "Swatch batch": one learning run (one
queue job) makes one image per LoRA on the cards' prompt with one seed, each image carrying its
own `<lora:…>` and trigger word, ready to rate in the Learning tab."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from stablenew.pipeline.infotext import read_image_metadata
from tests.catalog.factory import SD1_KEYS, write_json, write_model


def _click(qtbot, panel, name: str, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    row = [entry.name for entry in panel.model.rows].index(name)
    rect = panel.grid.visualRect(panel.model.index(row))
    qtbot.mouseClick(panel.grid.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 2.0}], indirect=True)
def test_swatch_batch_of_two_loras_makes_one_image_each(qtbot, window_for, fake_sdwebui_thread,
                                                         tmp_path, monkeypatch):
    loras = tmp_path / "models" / "Lora"
    write_model(loras / "neon.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS)
    write_json(loras / "neon.json", {"activation text": "neonstyle, glowing lines",
                                     "preferred weight": 0.7})
    write_model(loras / "ink.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS)
    write_json(loras / "ink.json", {"activation text": "inkwash"})
    write_model(loras / "zeta.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS)
    fake = fake_sdwebui_thread
    fake.lora_dir = loras
    window = window_for(fake.url, learning_mode="active")
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=15000)
    panel = window.models_panel
    window.work_tabs.setCurrentWidget(panel)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(loras))
    qtbot.mouseClick(panel.add_folder_button, Qt.MouseButton.LeftButton)
    # The server's own LoRAs (add_detail, film_grain) join the grid when its list is read.
    qtbot.waitUntil(lambda: {"ink", "neon", "zeta"} <= {e.name for e in panel.model.rows},
                    timeout=10000)
    window.pipeline_panel.editor("txt2img.prompt").set_value("a city at night")
    for path, value in {"txt2img.steps": 2, "txt2img.width": 64, "txt2img.height": 64}.items():
        window.pipeline_panel.editor(path).set_value(value)

    _click(qtbot, panel, "ink")
    assert not panel.swatch_button.isEnabled()  # one LoRA is no swatch
    _click(qtbot, panel, "neon", Qt.KeyboardModifier.ControlModifier)
    # Hashes landing in the background re-filter the grid: the picked LoRAs stay picked.
    window.session.catalog.entries_changed.emit()
    assert [e.name for e in panel.picked()] == ["ink", "neon"]
    # So does a read of the folder again (new rows for the same LoRAs).
    shown = panel.model.rows
    window.session.catalog.refresh()
    qtbot.waitUntil(lambda: panel.model.rows is not shown, timeout=10000)
    assert [e.name for e in panel.picked()] == ["ink", "neon"]
    # The count is on the button before anything runs.
    assert panel.swatch_button.isEnabled()
    assert panel.swatch_button.text() == "Swatch batch (2 images)"
    assert "2 images of your prompt, one per LoRA" in panel.swatch_button.toolTip()
    qtbot.mouseClick(panel.swatch_button, Qt.MouseButton.LeftButton)

    learning = window.session.learning
    assert window.work_tabs.currentWidget() is window.learning_panel
    qtbot.waitUntil(lambda: not learning.runs.running, timeout=30000)
    run = learning.runs.run_result
    assert run is not None and run.job_id
    assert run.column_labels == ("ink 1", "neon 0.7")
    paths = [run.cell(0, column).path for column in range(2)]
    assert all(paths)
    prompts = [read_image_metadata(p).parsed["Prompt"] for p in paths]
    assert prompts == ["a city at night, inkwash, <lora:ink:1>",
                       "a city at night, neonstyle, <lora:neon:0.7>"]
    sent = fake.requests_to("/sdapi/v1/txt2img")
    assert len(sent) == 2 and len({r.payload["seed"] for r in sent}) == 1  # one seed for both
    # One queue job made both.
    queue = window.session.queue
    qtbot.waitUntil(lambda: any(j.id == run.job_id and j.counts.done == 2
                                for j in queue.model.jobs()), timeout=5000)
    [job] = [j for j in queue.model.jobs() if j.id == run.job_id]
    assert job.counts.total == 2
    assert window.pipeline_panel.values()["txt2img.prompt"] == "a city at night"
