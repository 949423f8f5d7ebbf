"""A checkpoint named oddly but known from its header to be Flux gets Flux's card and payload:
the catalog's base model goes into family detection on the card and for the job."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from stablenew.catalog.entry import BaseModel
from tests.catalog.factory import write_model

#: A Flux checkpoint's own tensor names (no LoRA prefix): what the catalog reads the family from.
FLUX_CHECKPOINT_KEYS = ("model.diffusion_model.double_blocks.0.img_attn.proj.weight",
                        "model.diffusion_model.single_blocks.0.linear1.weight")
FORGE = {"flavor": "forge", "checkpoints": ("myMerge_v3.safetensors", "dreamshaper_8.safetensors")}


@pytest.mark.parametrize("fake_sdwebui_thread", [FORGE], indirect=True)
def test_a_flux_checkpoint_named_oddly_is_flux_on_the_card_and_on_forge(
        qtbot, window_for, fake_sdwebui_thread, tmp_path):
    folder = tmp_path / "Stable-diffusion"
    write_model(folder / "myMerge_v3.safetensors", keys=FLUX_CHECKPOINT_KEYS)
    window = window_for(fake_sdwebui_thread.url)
    session, panel = window.session, window.pipeline_panel
    qtbot.waitUntil(lambda: session.catalog is not None, timeout=10000)
    negative = panel.editor("txt2img.negative_prompt").widget
    model = panel.editor("txt2img.checkpoint").widget
    model.lineEdit().setFocus()
    qtbot.waitUntil(model.lineEdit().hasFocus, timeout=3000)
    model.lineEdit().clear()
    qtbot.keyClicks(model.lineEdit(), "myMerge_v3.safetensors")
    # Its name says nothing: without the catalog, the card takes it for SD 1.5.
    assert not negative.isHidden() and panel.family_note.isHidden()

    session.catalog.add_folder(folder, "checkpoint")
    qtbot.waitUntil(lambda: session.catalog.catalog.checkpoint_base("myMerge_v3")
                    is BaseModel.flux, timeout=10000)
    qtbot.waitUntil(lambda: negative.isHidden(), timeout=5000)  # the card hears of it by itself
    assert panel.family_note.text().startswith("Flux.1:")
    assert panel.editor("txt2img.family").value() == "auto"  # the user's choice is untouched

    editor = panel.editor
    for path, value in {"txt2img.prompt": "a lighthouse", "txt2img.steps": 4,
                        "txt2img.width": 64, "txt2img.height": 64, "txt2img.cfg_scale": 7.0,
                        "txt2img.guidance": 3.0}.items():
        editor(path).set_value(value)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(fake_sdwebui_thread.requests_to("/sdapi/v1/txt2img")),
                    timeout=20000)
    qtbot.waitUntil(lambda: session.pipeline.state == "idle", timeout=20000)
    assert session.pipeline.error is None, session.pipeline.error
    sent = fake_sdwebui_thread.requests_to("/sdapi/v1/txt2img")[0].payload
    assert sent["cfg_scale"] == 1.0 and sent["distilled_cfg_scale"] == 3.0
    assert sent["negative_prompt"] == ""
