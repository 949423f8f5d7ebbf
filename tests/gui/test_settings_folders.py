"""Settings are the one home of the wildcards folder, packs folder and learning mode: the dialog
shows them, and every room of a real session follows a change made there."""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QFileDialog, QPushButton

from stablenew.controller.app_controller import start_up
from stablenew.controller.session import Session
from stablenew.gui.settings_dialog import SettingsDialog
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import LearningMode, peek_settings

WAIT_MS = 5000


def _close(qtbot, session: Session) -> None:
    closing = asyncio.ensure_future(session.aclose())
    qtbot.waitUntil(closing.done, timeout=WAIT_MS)


def test_the_dialog_shows_the_folders_and_mode_in_plain_words(qtbot, qloop, tmp_path, monkeypatch):
    session = Session(start_up())
    try:
        dialog = SettingsDialog(session.app)
        qtbot.addWidget(dialog)
        for name, words in (("wildcards_dir", "__animal__"), ("packs_dir", "prompt packs"),
                            ("learning_mode", "Passive keeps every image")):
            assert words in dialog.editors[name].widget.toolTip()
        assert dialog.editors["learning_mode"].value() == "passive"
        # Choices read as words; the value kept is the one the settings file holds.
        shown = {name: [dialog.editors[name].widget.itemText(i)
                        for i in range(dialog.editors[name].widget.count())]
                 for name in ("learning_mode", "theme", "server_kind")}
        assert shown == {"learning_mode": ["Off", "Passive", "Active"],
                         "theme": ["Follow the system", "Light", "Dark"],
                         "server_kind": ["Detect it", "AUTOMATIC1111", "Forge", "SD.Next", "ComfyUI"]}
        theme = dialog.editors["theme"]
        assert theme.widget.currentText() == "Follow the system" and theme.value() == "system"
        theme.widget.setCurrentIndex(theme.widget.findText("Dark"))
        assert theme.value() == "dark"
        theme.set_value("light")
        assert theme.widget.currentText() == "Light"
        # Whole seconds for the timeout; the cards' floats keep two places.
        timeout = dialog.editors["request_timeout_s"].widget
        assert timeout.text() == "600" and timeout.singleStep() == 1
        # Each folder has a picker that opens where the folder is and fills the field.
        asked = []

        def pick(parent, caption, start):
            asked.append((caption, start))
            return str(tmp_path / caption)

        monkeypatch.setattr(QFileDialog, "getExistingDirectory", pick)
        for name in ("output_dir", "wildcards_dir", "packs_dir"):
            dialog.findChild(QPushButton, f"choose:{name}").click()
        assert [c for c, _ in asked] == ["Output folder", "Wildcards folder", "Packs folder"]
        assert asked[2][1] == str(AppPaths.default().packs_dir)
        assert dialog.editors["wildcards_dir"].value() == str(tmp_path / "Wildcards folder")
    finally:
        _close(qtbot, session)


def test_every_room_follows_a_change_made_in_the_dialog(qtbot, qloop, tmp_path):
    wildcards, packs = tmp_path / "wildcards", tmp_path / "packs"
    wildcards.mkdir()
    packs.mkdir()
    (packs / "birds.txt").write_text("a heron\n", encoding="utf-8")
    session = Session(start_up())
    try:
        session.open_rooms()
        learning, library, adapter = session.learning, session.library, session.randomizer
        assert learning.mode is LearningMode.passive
        dialog = SettingsDialog(session.app)
        qtbot.addWidget(dialog)
        dialog.editors["wildcards_dir"].set_value(str(wildcards))
        dialog.editors["packs_dir"].set_value(str(packs))
        dialog.editors["learning_mode"].set_value("active")
        dialog.save()
        assert dialog.result() == SettingsDialog.DialogCode.Accepted
        assert adapter.wildcards_dir == wildcards
        assert library.packs_folder == packs
        assert learning.mode is LearningMode.active
        qtbot.waitUntil(lambda: [i.name for i in library.packs()] == ["birds"], timeout=WAIT_MS)
        # The rooms' own switches write through the same settings.
        learning.set_mode("off")
        assert session.app.settings.learning_mode is LearningMode.off
        paths = session.app.paths
        qtbot.waitUntil(lambda: paths.settings_file.exists()
                        and peek_settings(paths).learning_mode is LearningMode.off, timeout=WAIT_MS)
        saved = peek_settings(paths)
        assert saved.wildcards_path() == wildcards and saved.packs_path(paths) == packs
    finally:
        _close(qtbot, session)


def test_a_corrupt_old_choice_file_does_not_stop_start_up(qtbot, qloop):
    paths = AppPaths.default()
    paths.config_dir.mkdir(parents=True)
    old = paths.config_dir / "learning.yaml"
    old.write_text("mode: [\n", encoding="utf-8")
    session = Session(start_up())
    try:
        notice = session.app.notice
        assert notice is not None and "earlier learning mode could not be read" in notice.message
        session.open_rooms()
        assert session.learning.mode is LearningMode.passive
        assert old.read_text(encoding="utf-8") == "mode: [\n"
    finally:
        _close(qtbot, session)
