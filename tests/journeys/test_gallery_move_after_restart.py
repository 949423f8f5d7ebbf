"""Journey: images rated, then moved to another folder with the gallery's Move…, are still in
the gallery at their new place with their stars after a restart; the selection of both stays
through the Copy… before it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from tests.journeys.conftest import save_server
from tests.journeys.test_gallery_after_restart import _select
from tests.journeys.test_ratings_after_restart import run_images


def _choose_folder(qtbot, panel, button, folder: Path) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    dialog = panel.batch.dialog
    assert dialog is not None and dialog.isVisible()
    dialog.selectFile(str(folder))
    dialog.accept()


def test_moved_images_keep_their_place_and_stars_after_a_restart(qtbot, journey, fake_process,
                                                                  tmp_path):
    fake = fake_process(step_ms=5)
    save_server(fake.url)
    window = journey.open()
    run_images(qtbot, window, "an owl in the snow", 3)
    panel, gallery = window.gallery_panel, window.session.gallery
    _select(qtbot, panel, 0, 1)
    chosen = panel.selected_keys()
    qtbot.keyClick(panel.view, Qt.Key.Key_4)
    learning = window.session.learning
    qtbot.waitUntil(lambda: all(learning.read_rating(k)[0] == 4 for k in chosen), timeout=10000)

    copies, moved = tmp_path / "copies", tmp_path / "moved"
    copies.mkdir()
    moved.mkdir()
    _choose_folder(qtbot, panel, panel.batch.copy_button, copies)
    qtbot.waitUntil(lambda: panel.message.text() == "Copied 2 images.", timeout=10000)
    qtbot.waitUntil(lambda: not gallery.tasks.busy, timeout=10000)
    assert panel.selected_keys() == chosen, "both still selected after the copy"
    _choose_folder(qtbot, panel, panel.batch.move_button, moved)
    qtbot.waitUntil(lambda: panel.message.text() == "Moved 2 images.", timeout=10000)
    new_keys = sorted(str(moved / Path(k).name) for k in chosen)
    qtbot.waitUntil(lambda: sorted(i.key for i in gallery.items if i.path.parent == moved)
                    == new_keys, timeout=10000)
    qtbot.waitUntil(lambda: not gallery.tasks.busy, timeout=10000)

    window = journey.restart()
    panel, gallery = window.gallery_panel, window.session.gallery
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3, timeout=10000)
    qtbot.waitUntil(lambda: sorted(i.key for i in gallery.items if i.path.parent == moved)
                    == new_keys, timeout=10000)
    # The stars the user sees on the tiles (the learning store keeps them under the old path)
    qtbot.waitUntil(lambda: [getattr(gallery.item(k), "rating", None) for k in new_keys] == [4, 4],
                    timeout=10000)
    assert not any(Path(k).exists() for k in chosen)
