"""The txt2img card hides what a model family does not use (and says why), and its References
section takes pictures by paste or file, through the real widgets."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog


def png_file(path: Path, color=(200, 20, 20)) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), color).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def test_a_flux_model_hides_negative_prompt_and_cfg_and_says_why(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    panel = window.pipeline_panel
    negative = panel.editor("txt2img.negative_prompt").widget
    cfg = panel.editor("txt2img.cfg_scale").widget
    guidance = panel.editor("txt2img.guidance").widget
    assert not negative.isHidden() and guidance.isHidden() and panel.family_note.isHidden()
    model = panel.editor("txt2img.checkpoint").widget
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    model.lineEdit().setFocus()
    qtbot.waitUntil(model.lineEdit().hasFocus, timeout=3000)  # typing keeps the cursor where it is
    qtbot.keyClicks(model.lineEdit(), "flux1-dev-fp8.safetensors")
    assert panel.editor("txt2img.checkpoint").value() == "flux1-dev-fp8.safetensors"
    qtbot.waitUntil(lambda: negative.isHidden(), timeout=3000)
    assert cfg.isHidden() and not guidance.isHidden()
    note = panel.family_note.text()
    assert not panel.family_note.isHidden()
    assert note.startswith("Flux.1:") and "no negative prompt" in note and "Guidance instead of CFG" in note
    # The family's defaults (plain data in resources/families/flux.yaml) are one click away.
    button = panel.family_defaults
    assert not button.isHidden() and button.text() == "Use Flux.1 defaults"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    values = panel.values()
    assert (values["txt2img.sampler"], values["txt2img.scheduler"], values["txt2img.steps"]) == (
        "Euler", "Simple", 20)
    assert (values["txt2img.width"], values["txt2img.guidance"]) == (1024, 3.5) and button.isHidden()
    # The user's choice of family wins over the name.
    family = panel.editor("txt2img.family").widget
    family.setFocus()
    qtbot.keyClicks(family, "SDXL")
    qtbot.waitUntil(lambda: not negative.isHidden(), timeout=3000)
    assert guidance.isHidden() and panel.family_note.isHidden()
    config = window.session.pipeline.build_config(panel.values())
    assert config.txt2img.family.value == "sdxl"


def test_references_are_pasted_chosen_edited_and_removed(qtbot, window_for, dead_url, tmp_path):
    window = window_for(dead_url, connect=False)
    panel = window.pipeline_panel
    section = panel.references["txt2img"]
    assert section.hint.isVisible() or section.hint.isVisibleTo(section)
    image = QImage(20, 20, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.darkGreen)
    QGuiApplication.clipboard().setImage(image)
    qtbot.mouseClick(section.paste_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(section.rows) == 1, timeout=5000)
    row = section.rows[0]
    row.strength.clear()
    qtbot.keyClicks(row.strength, "0.6")
    qtbot.mouseClick(row.preprocess, Qt.MouseButton.LeftButton)
    config = window.session.pipeline.build_config(panel.values())
    (ref,) = config.txt2img.references
    assert ref.strength == 0.6 and not ref.preprocess and ref.kind.value == "canny"
    stored = Path(ref.image)
    assert stored.exists() and stored.name == f"{ref.sha256}.png"

    qtbot.mouseClick(section.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.findChild(QFileDialog) is not None, timeout=3000)
    dialog = section.findChild(QFileDialog)
    dialog.fileSelected.emit(str(png_file(tmp_path / "pose.png")))
    dialog.reject()
    qtbot.waitUntil(lambda: len(section.rows) == 2, timeout=5000)
    second = section.rows[1]
    second.kind.setFocus()
    qtbot.keyClicks(second.kind, "Pose")
    config = window.session.pipeline.build_config(panel.values())
    assert [r.kind.value for r in config.txt2img.references] == ["canny", "openpose"]

    # Shown again in fresh cards (a preset, the queue's config), the units are the same.
    other = window_for(dead_url, connect=False)
    other.session.pipeline.load_config(config)
    assert other.pipeline_panel.references["txt2img"].value() == section.value()

    qtbot.mouseClick(row.remove, Qt.MouseButton.LeftButton)
    assert len(section.rows) == 1
    config = window.session.pipeline.build_config(panel.values())
    assert [r.kind.value for r in config.txt2img.references] == ["openpose"]


def test_a_file_that_is_no_picture_is_refused_in_plain_words(qtbot, window_for, dead_url, tmp_path):
    window = window_for(dead_url, connect=False)
    section = window.pipeline_panel.references["img2img"]
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    section.file_chosen.emit("img2img", str(bad))
    qtbot.waitUntil(lambda: bool(section.error.text()), timeout=5000)
    assert "PNG, JPEG or WebP" in section.error.text() and section.rows == []


CN = ("control_v11p_sd15_canny [d14c016b]", "diffusers_xl_canny_mid [112a778d]")


@pytest.mark.parametrize("fake_sdwebui_thread", [{"controlnet_models": CN}], indirect=True)
def test_the_model_is_picked_from_what_the_node_has(qtbot, window_for, fake_sdwebui_thread, tmp_path):
    window = window_for(fake_sdwebui_thread.url)
    section = window.pipeline_panel.references["txt2img"]
    qtbot.waitUntil(lambda: section.models == CN, timeout=5000)
    section.file_chosen.emit("txt2img", str(png_file(tmp_path / "edges.png")))
    qtbot.waitUntil(lambda: len(section.rows) == 1, timeout=5000)
    picker = section.rows[0].model
    assert [picker.itemText(i) for i in range(picker.count())] == ["", *CN]  # "" is automatic
    picker.setCurrentIndex(2)
    config = window.session.pipeline.build_config(window.pipeline_panel.values())
    assert config.txt2img.references[0].model == "diffusers_xl_canny_mid [112a778d]"
    picker.setCurrentIndex(0)
    config = window.session.pipeline.build_config(window.pipeline_panel.values())
    assert config.txt2img.references[0].model == ""


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 5.0}], indirect=True)
def test_a_picture_from_the_gallery_becomes_a_reference(qtbot, window_for, fake_sdwebui_thread):
    import hashlib

    window = window_for(fake_sdwebui_thread.url)
    panel, gallery_panel = window.pipeline_panel, window.gallery_panel
    section = panel.references["img2img"]
    # Nothing selected yet: the button says what to do instead of doing nothing.
    qtbot.mouseClick(section.gallery_button, Qt.MouseButton.LeftButton)
    assert section.error.text() == "Select a picture in the gallery first, then press From gallery."
    assert section.rows == []

    panel.editor("txt2img.prompt").set_value("a lighthouse at dusk")
    panel.editor("txt2img.batch_count").set_value(1)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle"
                    and gallery_panel.model.rowCount() >= 1, timeout=15000)
    view = gallery_panel.view
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=view.visualRect(gallery_panel.model.index(0)).center())
    qtbot.waitUntil(lambda: len(gallery_panel.selected_keys()) == 1, timeout=3000)
    made = window.session.gallery.item(gallery_panel.selected_keys()[0]).path

    qtbot.mouseClick(section.gallery_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(section.rows) == 1, timeout=5000)
    assert section.error.isHidden()
    config = window.session.pipeline.build_config(panel.values())
    (ref,) = config.img2img.references
    assert ref.sha256 == hashlib.sha256(made.read_bytes()).hexdigest()
    assert Path(ref.image).read_bytes() == made.read_bytes() and Path(ref.image) != made


def _cells(panel, paths):
    """Each field's (row, column) in its card's grid."""
    from stablenew.gui.cards.stage_card import FieldGrid

    cells = {}
    for grid in panel.findChildren(FieldGrid):
        for path in paths:
            index = grid.grid.indexOf(panel.editor(path).widget)
            if index >= 0:
                row, col, _rs, _cs = grid.grid.getItemPosition(index)
                cells[path] = (row, col)
    return cells


def test_a_hidden_field_leaves_no_hole_in_the_card(qtbot, window_for, dead_url):
    """Guidance (Flux only) is hidden for SD models: Width takes its place beside nothing, the
    rows close up (a user saw Width alone in the right column with an empty cell before it)."""
    window = window_for(dead_url, connect=False)
    panel = window.pipeline_panel
    paths = ("txt2img.steps", "txt2img.cfg_scale", "txt2img.guidance", "txt2img.width",
             "txt2img.height")
    cells = _cells(panel, paths)
    assert "txt2img.guidance" not in cells  # hidden: not in the grid at all
    steps, cfg, width, height = (cells[p] for p in paths if p != "txt2img.guidance")
    assert cfg == (steps[0], 1) and width == (steps[0] + 2, 0) and height == (steps[0] + 2, 1)
    model = panel.editor("txt2img.checkpoint")
    model.set_value("flux1-dev-fp8.safetensors")
    qtbot.waitUntil(lambda: "txt2img.guidance" in _cells(panel, paths), timeout=3000)
    cells = _cells(panel, paths)
    # Flux: CFG hidden, Guidance shown where it stood; still no hole.
    assert "txt2img.cfg_scale" not in cells
    assert cells["txt2img.guidance"] == (cells["txt2img.steps"][0], 1)
    assert cells["txt2img.width"] == (cells["txt2img.steps"][0] + 2, 0)
