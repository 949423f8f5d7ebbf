"""A checkpoint named oddly but known from its header to be Flux gets Flux's card and payload:
the catalog's base model goes into family detection on the card and for the job."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt

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


FLUX_FORGE = {"flavor": "forge",
              "checkpoints": ("flux1-dev-bnb-nf4-v2.safetensors", "sd_xl_base_1.0.safetensors")}


def _pick(qtbot, combo, name: str) -> None:
    """Choose *name* from the combo's list as a user does: open it, arrows, Enter."""
    names = [combo.itemText(i) for i in range(combo.count())]
    # The arrow at the right end opens the list (the rest of an editable picker is for typing).
    qtbot.mouseClick(combo, Qt.MouseButton.LeftButton,
                     pos=QPoint(combo.width() - 6, combo.height() // 2))
    view = combo.view()
    qtbot.waitUntil(view.isVisible, timeout=3000)
    target = names.index(name)
    key = Qt.Key.Key_Down if target > combo.currentIndex() else Qt.Key.Key_Up
    for _ in range(abs(target - combo.currentIndex())):
        qtbot.keyClick(view, key)
    qtbot.keyClick(view, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: combo.currentText() == name, timeout=3000)


@pytest.mark.parametrize("fake_sdwebui_thread", [FLUX_FORGE], indirect=True)
def test_flux_on_forge_takes_its_vae_and_text_encoders_from_the_nodes_modules(
        qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    panel = window.pipeline_panel
    fields = {path: panel.editor(path).widget for path in
              ("txt2img.vae", "txt2img.text_encoder", "txt2img.text_encoder_2")}
    assert all(w.isHidden() for w in fields.values())  # SD 1.5 and SDXL carry their own
    model = panel.editor("txt2img.checkpoint").widget
    model.lineEdit().setFocus()
    qtbot.waitUntil(model.lineEdit().hasFocus, timeout=3000)
    model.lineEdit().clear()
    qtbot.keyClicks(model.lineEdit(), "flux1-dev-bnb-nf4-v2.safetensors")
    qtbot.waitUntil(lambda: not any(w.isHidden() for w in fields.values()), timeout=5000)
    vae = fields["txt2img.vae"]
    qtbot.waitUntil(lambda: vae.count() >= 4, timeout=5000)
    listed = {vae.itemText(i) for i in range(vae.count())}
    assert set(fake_sdwebui_thread.sd_modules) <= listed  # the node's /sd-modules
    _pick(qtbot, vae, "ae.safetensors")
    _pick(qtbot, fields["txt2img.text_encoder"], "clip_l.safetensors")
    _pick(qtbot, fields["txt2img.text_encoder_2"], "t5xxl_fp8_e4m3fn.safetensors")

    for path, value in {"txt2img.prompt": "a lighthouse", "txt2img.steps": 4,
                        "txt2img.width": 64, "txt2img.height": 64}.items():
        panel.editor(path).set_value(value)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(fake_sdwebui_thread.requests_to("/sdapi/v1/txt2img")),
                    timeout=20000)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=20000)
    assert window.session.pipeline.error is None, window.session.pipeline.error
    sent = fake_sdwebui_thread.requests_to("/sdapi/v1/txt2img")[0].payload
    assert sent["override_settings"]["forge_additional_modules"] == [
        "ae.safetensors", "clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors"]
    assert fake_sdwebui_thread.unknown_fields == []

    # Back on SDXL the fields go away without a word on the card.
    model.lineEdit().clear()
    qtbot.keyClicks(model.lineEdit(), "sd_xl_base_1.0.safetensors")
    qtbot.waitUntil(lambda: all(w.isHidden() for w in fields.values()), timeout=5000)
    assert panel.family_note.isHidden()
