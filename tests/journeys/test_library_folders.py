"""Journeys in the sidebar: files dropped into the presets and profiles folders by another
program show at once (broken ones with their error), and the empty Packs and Profiles tabs say
what they are for and how to make one."""

from __future__ import annotations

import shutil

from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtWidgets import QLineEdit

from stablenew.storage.paths import AppPaths
from tests.journeys.conftest import save_server

AT_ONCE_MS = 3000  # the packs folder is also polled every 2 s: the presets were never


def names(widget) -> list[str]:
    return [widget.item(i).text() for i in range(widget.count())]


def tooltip(widget, name: str) -> str:
    return next(widget.item(i).toolTip() for i in range(widget.count())
                if widget.item(i).text() == name)


def test_presets_and_profiles_changed_on_disk_show_at_once(qtbot, journey, fake_process):
    save_server(fake_process(step_ms=5).url)
    window = journey.open()
    sidebar = window.sidebar
    paths = AppPaths.default()
    assert not paths.presets_dir.exists(), "a first start: the folder is made by the first save"

    # A broken preset dropped into the presets folder: listed at once, with what is wrong.
    paths.presets_dir.mkdir(parents=True)
    bad = paths.presets_dir / "night.yaml"
    bad.write_text("version: 1\nname: Night\nconfig:\n  txt2img:\n    steps: many\n", encoding="utf-8")
    qtbot.waitUntil(lambda: "night" in names(sidebar.presets), timeout=AT_ONCE_MS)
    assert "cannot be used" in tooltip(sidebar.presets, "night")
    assert "line 5" in tooltip(sidebar.presets, "night")
    assert "night.yaml cannot be used" in sidebar.status.text()
    assert "config.txt2img.steps" in sidebar.status.text()

    # Mended in the editor (written in place): usable at once.
    with open(bad, "w", encoding="utf-8") as f:
        f.write("version: 1\nname: Night\nconfig:\n  txt2img:\n    steps: 9\n")
    qtbot.waitUntil(lambda: "Night" in names(sidebar.presets), timeout=AT_ONCE_MS)
    assert "cannot be used" not in tooltip(sidebar.presets, "Night")

    # Removed: gone at once. A profile copied in: there at once.
    bad.unlink()
    qtbot.waitUntil(lambda: "Night" not in names(sidebar.presets), timeout=AT_ONCE_MS)
    paths.profiles_dir.mkdir(parents=True)
    source = paths.profiles_dir.parent / "Mira.yaml"
    source.write_text("version: 1\nname: Mira\ncharacter: a red-haired sailor\n", encoding="utf-8")
    shutil.move(source, paths.profiles_dir / "Mira.yaml")
    qtbot.waitUntil(lambda: "Mira" in names(sidebar.profiles), timeout=AT_ONCE_MS)
    assert "cannot be used" not in tooltip(sidebar.profiles, "Mira")


def test_the_empty_packs_and_profiles_tabs_explain_and_offer_to_make_one(qtbot, journey,
                                                                          fake_process):
    from PySide6.QtGui import QDesktopServices

    save_server(fake_process(step_ms=5).url)
    window = journey.open()
    sidebar = window.sidebar
    opened = []

    class Opener(QObject):
        """Stands in for the file manager: QDesktopServices hands it the URL it would open."""

        @Slot(QUrl)
        def open(self, url) -> None:  # noqa: A003 (Qt calls it by this name)
            opened.append(url.toLocalFile())

    opener = Opener()
    QDesktopServices.setUrlHandler("file", opener, "open")
    try:
        # Packs: what a pack is, where they are read from, and a way to make the first one.
        sidebar.tabs.setCurrentIndex(1)
        empty = sidebar.packs_empty
        assert empty.isVisible() and not sidebar.packs.isVisible()
        assert "prompt pack" in empty.text.text() and "one prompt per line" in empty.text.text()
        qtbot.mouseClick(empty.open_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(opened) == 1, timeout=5000)
        packs_folder = AppPaths.default().packs_dir
        assert opened == [str(packs_folder)] and packs_folder.is_dir()

        qtbot.mouseClick(empty.create_button, Qt.MouseButton.LeftButton)
        dialog = sidebar.name_dialog
        qtbot.waitUntil(lambda: dialog.isVisible(), timeout=5000)
        qtbot.keyClicks(dialog.findChild(QLineEdit), "Harbours")
        qtbot.keyClick(dialog.findChild(QLineEdit), Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: names(sidebar.packs) == ["Harbours"], timeout=AT_ONCE_MS)
        assert sidebar.packs.isVisible() and not empty.isVisible()
        assert (packs_folder / "Harbours.txt").is_file()
        assert "Created pack 'Harbours'" in sidebar.status.text()

        # Profiles: what a profile is, and New… from the tab itself.
        sidebar.tabs.setCurrentIndex(2)
        empty = sidebar.profiles_empty
        assert empty.isVisible() and "profile" in empty.text.text()
        qtbot.mouseClick(empty.open_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(opened) == 2, timeout=5000)
        assert opened[1] == str(AppPaths.default().profiles_dir)
        assert AppPaths.default().profiles_dir.is_dir()
    finally:
        QDesktopServices.unsetUrlHandler("file")
