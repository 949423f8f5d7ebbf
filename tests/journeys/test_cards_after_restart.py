"""Journeys: the cards come back as the user left them, after a normal close and after a crash
(SIGKILL); a damaged memory of them is set aside with a plain message, never in the way."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QPlainTextEdit, QTextEdit

from stablenew.controller.card_memory import CARDS_FILE
from stablenew.storage.paths import AppPaths
from tests.journeys.conftest import save_server

TYPED = {"txt2img.prompt": "a harbour at night, lanterns",
         "txt2img.negative_prompt": "blurry, text"}
SET = {"txt2img.steps": 12, "txt2img.cfg_scale": 5.5, "txt2img.width": 640,
       "txt2img.hires.enabled": True, "txt2img.hires.scale": 1.5, "upscale.enabled": True}


def type_into(qtbot, window, path: str, text: str) -> None:
    widget = window.pipeline_panel.editor(path).widget
    assert isinstance(widget, QLineEdit | QPlainTextEdit | QTextEdit), type(widget)
    widget.setFocus()
    widget.clear()
    qtbot.keyClicks(widget, text)


def shown(window) -> dict:
    values = window.pipeline_panel.values()
    return {path: values[path] for path in (*TYPED, *SET)}


def cards_file():
    return AppPaths.default().data_dir / CARDS_FILE


def test_the_cards_come_back_after_a_normal_close(qtbot, journey, fake_process):
    save_server(fake_process(step_ms=5).url)
    window = journey.open()
    defaults = shown(window)
    assert defaults != {**TYPED, **SET}
    for path, text in TYPED.items():
        type_into(qtbot, window, path, text)
    for path, value in SET.items():
        window.pipeline_panel.editor(path).set_value(value)

    window = journey.restart()
    assert shown(window) == {**TYPED, **SET}
    # What is typed after a restart is what the next restart shows (the memory does not fight it).
    type_into(qtbot, window, "txt2img.prompt", "a harbour at dawn")
    window.pipeline_panel.editor("txt2img.hires.enabled").set_value(False)
    window = journey.restart()
    assert window.pipeline_panel.values()["txt2img.prompt"] == "a harbour at dawn"
    assert window.pipeline_panel.values()["txt2img.hires.enabled"] is False
    assert window.pipeline_panel.values()["txt2img.steps"] == 12


def test_the_cards_come_back_after_a_crash(qtbot, journey, fake_process, spawn_app):
    save_server(fake_process(step_ms=5).url)
    app = spawn_app([{"fill": {**TYPED, **SET}}])
    # (its first line: wait_for_line reads buffered lines and can miss a second one written with it)
    app.wait_for_line("step 0 done", timeout=60)
    # A moment after the user stops typing, the cards are on disk; then the power goes.
    deadline = time.monotonic() + 10
    while TYPED["txt2img.prompt"] not in (cards_file().read_text(encoding="utf-8")
                                          if cards_file().exists() else ""):
        assert time.monotonic() < deadline, "the cards were never saved"
        time.sleep(0.02)
    app.kill()

    window = journey.open()
    assert shown(window) == {**TYPED, **SET}


def test_a_damaged_memory_of_the_cards_is_set_aside_with_a_plain_message(qtbot, journey,
                                                                          fake_process):
    save_server(fake_process(step_ms=5).url)
    cards_file().parent.mkdir(parents=True, exist_ok=True)
    cards_file().write_text("version: 1\ntxt2img:\n  steps: many\n", encoding="utf-8")
    window = journey.open()
    assert window.notice.isVisible()
    assert "start from the defaults" in window.notice.message
    assert window.pipeline_panel.values()["txt2img.steps"] == window.session.pipeline.default_values()[
        "txt2img.steps"]
    aside = list(cards_file().parent.glob(f"{CARDS_FILE}.bad-*"))
    assert len(aside) == 1 and aside[0].read_text(encoding="utf-8").endswith("steps: many\n")

    type_into(qtbot, window, "txt2img.prompt", "a fresh start")
    window = journey.restart()
    assert window.pipeline_panel.values()["txt2img.prompt"] == "a fresh start"
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle"
                    and window.gallery_panel.model.rowCount() >= 1, timeout=30000)


def test_a_reference_picture_comes_back_with_its_kind_and_thumbnail(qtbot, journey, fake_process,
                                                                     tmp_path):
    # The user chooses a picture for the txt2img card, makes it steer the pose, and closes the
    # app: reopened, the card shows the same picture (its thumbnail, read off the Qt thread) and
    # the same kind, not an empty choice and a placeholder.
    from PIL import Image

    save_server(fake_process(step_ms=5).url)
    picture = tmp_path / "pose.png"
    Image.new("RGB", (40, 60), (30, 160, 90)).save(picture)
    from PySide6.QtWidgets import QFileDialog

    window = journey.open()
    section = window.pipeline_panel.references["txt2img"]
    qtbot.mouseClick(section.add_button, Qt.MouseButton.LeftButton)  # Choose…
    qtbot.waitUntil(lambda: section.findChild(QFileDialog) is not None, timeout=3000)
    dialog = section.findChild(QFileDialog)
    dialog.fileSelected.emit(str(picture))  # the file picked in the dialog
    dialog.reject()
    qtbot.waitUntil(lambda: len(section.rows) == 1, timeout=10_000)
    kind = section.rows[0].kind
    kind.setFocus()
    qtbot.keyClicks(kind, "Pose")
    assert kind.currentText() == "Pose (openpose)" and section.rows[0].has_thumbnail

    window = journey.restart()
    section = window.pipeline_panel.references["txt2img"]
    assert len(section.rows) == 1
    row = section.rows[0]
    assert row.kind.currentData() == "openpose" and row.kind.currentText() == "Pose (openpose)"
    qtbot.waitUntil(lambda: row.has_thumbnail, timeout=10_000)
    assert not row.thumb.pixmap().isNull()
    assert window.session.pipeline.build_config(
        window.pipeline_panel.values()).txt2img.references[0].kind.value == "openpose"


def test_a_start_picture_chosen_in_the_init_image_field_is_kept_and_comes_back(
        qtbot, journey, fake_process, tmp_path):
    # The user presses the folder button in Image to image's Init image field, picks a picture
    # and closes the app; then the original file goes. Reopened, the card starts from a kept
    # copy of it. A file that is no picture is refused on the card, in plain words.
    from PIL import Image
    from PySide6.QtWidgets import QFileDialog, QToolButton

    save_server(fake_process(step_ms=5).url)
    picture = tmp_path / "start.png"
    Image.new("RGB", (48, 32), (200, 80, 40)).save(picture)
    window = journey.open()
    panel = window.pipeline_panel
    field = panel.editor("img2img.init_image")

    def choose(path) -> None:
        button = next(b for b in field.widget.findChildren(QToolButton)
                      if b.defaultAction() is panel.choose_start)
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.findChild(QFileDialog) is not None, timeout=3000)
        dialog = panel.findChild(QFileDialog)
        dialog.fileSelected.emit(str(path))  # the file picked in the dialog
        dialog.reject()
        dialog.deleteLater()

    not_a_picture = tmp_path / "notes.txt"
    not_a_picture.write_text("hello", encoding="utf-8")
    choose(not_a_picture)
    error = panel.references["img2img"].error
    qtbot.waitUntil(lambda: not error.isHidden() and "notes.txt" in error.text(), timeout=10_000)
    assert field.value() == ""

    choose(picture)
    qtbot.waitUntil(lambda: field.value() != "", timeout=10_000)
    kept = field.value()
    assert "start_images" in kept and Path(kept).read_bytes() == picture.read_bytes()
    window = journey.restart()
    picture.unlink()
    field = window.pipeline_panel.editor("img2img.init_image")
    assert field.value() == kept
    config = window.session.pipeline.build_config(window.pipeline_panel.values())
    assert config.img2img.init_image == kept
