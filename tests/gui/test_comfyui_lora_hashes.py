"""Journey: on a ComfyUI server, a LoRA added from the Models tab runs through the graph's
LoraLoader chain, and the saved image's infotext carries `Lora hashes` as A1111 writes them,
from the catalog's hashes (ComfyUI computes none)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from stablenew.pipeline.infotext import read_image_metadata
from tests.catalog.factory import SD1_KEYS, write_json, write_model
from tests.fakes.comfyui import FakeComfyUI
from tests.gui.test_models_room import add_folder_in_models


def test_comfyui_image_names_its_loras_hashes(qtbot, window_for, tmp_path, monkeypatch):
    loras = tmp_path / "models" / "loras"
    write_model(loras / "style" / "neon.safetensors", {"ss_base_model_version": "sd_v1"},
                SD1_KEYS, tensor_bytes=64, fill=b"\x03")
    write_json(loras / "style" / "neon.json", {"activation text": "neonstyle",
                                               "preferred weight": 0.7})
    with FakeComfyUI(step_ms=1, loras=("style/neon.safetensors",)).running_in_thread() as comfy:
        window = window_for(comfy.url)
        panel = add_folder_in_models(qtbot, window, loras, monkeypatch, rows=1)
        neon = window.session.catalog.catalog.find("neon")
        qtbot.waitUntil(lambda: neon.lora_hash is not None, timeout=10000)  # in the background
        window.pipeline_panel.editor("txt2img.prompt").set_value("a city at night")
        for path, value in {"txt2img.steps": 2, "txt2img.width": 64, "txt2img.height": 64}.items():
            window.pipeline_panel.editor(path).set_value(value)
        rect = panel.grid.visualRect(panel.model.index(0))
        qtbot.mouseClick(panel.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.pipeline_panel.values()["txt2img.prompt"]
                        == "a city at night, neonstyle, <lora:neon:0.7>", timeout=5000)

        saved = []
        window.session.queued_image_saved.connect(saved.append)
        qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: bool(saved) and window.session.pipeline.state == "idle",
                        timeout=20000)
        graph = comfy.received[-1]["prompt"]
    assert window.session.pipeline.error is None, window.session.pipeline.error
    assert [n["inputs"]["lora_name"] for n in graph.values()
            if n["class_type"] == "LoraLoader"] == ["style/neon.safetensors"]
    meta = read_image_metadata(saved[0].path)
    assert meta.parsed["Prompt"] == "a city at night, neonstyle, <lora:neon:0.7>"
    assert meta.parsed["Lora hashes"] == f"neon: {neon.autov3}"
    assert f'Lora hashes: "neon: {neon.autov3}"' in meta.parameters
