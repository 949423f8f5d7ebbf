"""Acting on several images at once through the real widgets: rate, tag, trash (the system
trash, never a hard delete), move, copy, export a ZIP with metadata; the compare view's pick; and
the folder watch noticing images another program added."""

from __future__ import annotations

import contextlib
import json
import zipfile
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from pytestqt.exceptions import TimeoutError as QtTimeout

from tests.gui.test_gallery_find import _names, _open_gallery


def _select(qtbot, panel, *rows):
    view = panel.view
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=view.visualRect(panel.model.index(rows[0])).center())
    for row in rows[1:]:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         Qt.KeyboardModifier.ControlModifier,
                         pos=view.visualRect(panel.model.index(row)).center())


@pytest.fixture
def trash_home(tmp_path, monkeypatch):
    """The freedesktop trash under tmp_path (never the real user's)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    import importlib

    import send2trash.plat_other as plat

    importlib.reload(plat)
    return tmp_path / "xdg" / "Trash"


def test_rate_and_tag_many_then_trash_them(qtbot, window_for, dead_url, trash_home):
    window, gallery, panel, paths = _open_gallery(qtbot, window_for, dead_url, rooms=True)
    _select(qtbot, panel, 0, 1)
    chosen = [paths["robot.png"], paths["lake.png"]]
    assert panel.selected_keys() == chosen
    qtbot.keyClick(panel.view, "4")
    qtbot.keyClicks(panel.batch.tag_edit, "keeper")
    qtbot.keyClick(panel.batch.tag_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: all(gallery.rating_of(k) == (4, ("keeper",)) for k in chosen),
                    timeout=5000)
    qtbot.waitUntil(lambda: [gallery.item(k).rating for k in chosen] == [4, 4], timeout=5000)
    assert gallery.item(paths["owl.png"]).rating is None
    # each rated image carries its marks in a sidecar, for a database lost
    from stablenew.gallery.sidecar import read_marks

    qtbot.waitUntil(lambda: all(read_marks(k).rating == 4 for k in chosen), timeout=5000)
    assert read_marks(chosen[0]).tags == ("keeper",)

    _select(qtbot, panel, *[n for n, i in enumerate(gallery.items) if i.key in chosen])
    assert panel.batch.trash_button.isEnabled()
    qtbot.mouseClick(panel.batch.trash_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.message.text().startswith("Moved to the trash"), timeout=30000)
    assert panel.message.text() == "Moved to the trash: 2 images."
    assert not any(Path(k).exists() for k in chosen)
    trashed = sorted(p.name for p in (trash_home / "files").iterdir())
    assert "robot.png" in trashed and "lake.png" in trashed, "in the trash, where they can be restored"
    assert sorted(_names(gallery)) == ["castle.png", "owl.png"]


def test_move_copy_and_export(qtbot, window_for, dead_url, tmp_path):
    window, gallery, panel, paths = _open_gallery(qtbot, window_for, dead_url)
    _select(qtbot, panel, 2, 3)  # owl, castle
    chosen = panel.selected_keys()
    assert [Path(k).name for k in chosen] == ["owl.png", "castle.png"]
    copies = tmp_path / "copies"
    resets = []
    gallery.items_reset.connect(lambda: resets.append(panel.selected_keys()))
    qtbot.mouseClick(panel.batch.copy_button, Qt.MouseButton.LeftButton)
    dialog = panel.batch.dialog
    assert dialog is not None and dialog.isVisible()
    copies.mkdir()
    dialog.selectFile(str(copies))
    dialog.accept()
    qtbot.waitUntil(lambda: panel.message.text() == "Copied 2 images.", timeout=10000)
    assert sorted(p.name for p in copies.iterdir()) == ["castle.png", "owl.png"]
    assert all(Path(k).exists() for k in chosen)
    # The list is read again after the copy; both images stay selected for the next action.
    qtbot.waitUntil(lambda: bool(resets), timeout=10000)
    assert resets[-1] == chosen and panel.selected_keys() == chosen

    archive = tmp_path / "picked.zip"
    qtbot.mouseClick(panel.batch.export_button, Qt.MouseButton.LeftButton)
    panel.batch.dialog.selectFile(str(archive))
    panel.batch.dialog.accept()
    qtbot.waitUntil(lambda: archive.exists(), timeout=10000)
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["castle.png", "metadata.json", "owl.png"]
        meta = {m["file"]: m for m in json.loads(z.read("metadata.json"))}
    assert meta["owl.png"]["seed"] == 22 and meta["owl.png"]["model"] == "dreamshaper_8"
    assert meta["castle.png"]["prompt"] == "a castle in the fog"

    moved = tmp_path / "moved"
    _select(qtbot, panel, *[n for n, i in enumerate(gallery.items) if i.key in chosen])
    qtbot.mouseClick(panel.batch.move_button, Qt.MouseButton.LeftButton)
    moved.mkdir()
    panel.batch.dialog.selectFile(str(moved))
    panel.batch.dialog.accept()
    qtbot.waitUntil(lambda: panel.message.text() == "Moved 2 images.", timeout=10000)
    assert sorted(p.name for p in moved.iterdir()) == ["castle.png", "owl.png"]
    assert not any(Path(k).exists() for k in chosen)
    # Still in the gallery, at their new place (the folder they went to is listed from now on).
    qtbot.waitUntil(lambda: sorted(i.key for i in gallery.items if i.path.parent == moved)
                    == sorted(str(moved / Path(k).name) for k in chosen), timeout=10000)
    assert sorted(_names(gallery)) == ["castle.png", "lake.png", "owl.png", "robot.png"]


class Choices:
    """The learning store's pairwise-choice book as the gallery sees it (a list here)."""

    def __init__(self):
        self.picked = []

    def record_choice(self, winner, loser):
        self.picked.append((winner, loser))


def test_compare_two_with_zoom_and_pan_together_and_pick_with_the_arrow_keys(
        qtbot, window_for, dead_url):
    window, gallery, panel, paths = _open_gallery(qtbot, window_for, dead_url)
    book = Choices()
    gallery.actions.choice_book = book
    _select(qtbot, panel, 0, 1)
    qtbot.mouseClick(panel.batch.compare_button, Qt.MouseButton.LeftButton)
    dialog = panel.compare
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    left, right = dialog.views
    qtbot.waitUntil(lambda: not left.image.isNull() and not right.image.isNull(), timeout=5000)
    # zoom the left: the right follows; pan the right: the left follows
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent

    wheel = QWheelEvent(QPointF(50, 50), QPointF(left.mapToGlobal(QPoint(50, 50))), QPoint(0, 0),
                        QPoint(0, 240), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    from PySide6.QtWidgets import QApplication

    QApplication.sendEvent(left, wheel)
    assert left.zoom > 1 and right.zoom == left.zoom
    centre = right.rect().center()
    qtbot.mousePress(right, Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseMove(right, centre + QPoint(40, 0))
    qtbot.mouseRelease(right, Qt.MouseButton.LeftButton, pos=centre + QPoint(40, 0))
    assert right.center.x() < 0.5 and left.center.x() == right.center.x()
    qtbot.keyClick(dialog, Qt.Key.Key_Right)  # the right one is better
    qtbot.waitUntil(lambda: book.picked == [(paths["lake.png"], paths["robot.png"])], timeout=5000)
    assert not dialog.isVisible()


def test_a_pick_without_the_learning_room_says_so(qtbot, window_for, dead_url):
    window, gallery, panel, paths = _open_gallery(qtbot, window_for, dead_url)
    gallery.actions.choice_book = None
    _select(qtbot, panel, 0, 1)
    qtbot.mouseClick(panel.batch.compare_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(gallery.error_changed, timeout=5000) as said:
        qtbot.keyClick(panel.compare, Qt.Key.Key_Left)
    assert "learning" in said.args[0].message


def test_the_folder_watch_lists_an_image_another_program_added(qtbot, window_for, dead_url):
    from tests.gallery.factory import a1111_text, png

    window, gallery, panel, paths = _open_gallery(qtbot, window_for, dead_url)
    qtbot.waitUntil(lambda: len(gallery.watch._watcher.directories()) >= 3, timeout=5000)
    png(Path(paths["owl.png"]).parent / "new.png", {"parameters": a1111_text("a new fox")})
    qtbot.waitUntil(lambda: "new.png" in _names(gallery), timeout=15000)
    gone = Path(paths["castle.png"])
    gone.unlink()
    qtbot.waitUntil(lambda: "castle.png" not in _names(gallery), timeout=15000)


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 5.0}], indirect=True)
def test_queue_again_makes_each_selected_image_again_with_its_own_seed(
        qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    from tests.gui.test_gallery_find import _outputs

    paths = _outputs(window.session.app.output_dir)
    gallery, panel = window.session.gallery, window.gallery_panel
    gallery.refresh()
    qtbot.waitUntil(lambda: len(gallery.items) == 4, timeout=20000)
    _select(qtbot, panel, 1, 2)  # lake (seed 33), owl (seed 22)
    assert sorted(panel.selected_keys()) == sorted([paths["lake.png"], paths["owl.png"]])
    qtbot.mouseClick(panel.batch.queue_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.message.text() == "Queued 2 images again.", timeout=10000)

    def seeds():
        return sorted(r.payload.get("seed") for r in fake_sdwebui_thread.requests
                      if r.path.endswith("/txt2img"))

    qtbot.waitUntil(lambda: seeds() == [22, 33], timeout=30000)
    prompts = {r.payload.get("prompt") for r in fake_sdwebui_thread.requests
               if r.path.endswith("/txt2img")}
    assert "an owl at night, cyberpunk city" in prompts


def test_a_compare_pick_reaches_the_learning_stores_pairwise_choices(qtbot, window_for, dead_url):
    from tests.gui.test_gallery_find import _open_gallery as open_with_rooms

    window, gallery, panel, paths = open_with_rooms(qtbot, window_for, dead_url, rooms=True)
    assert gallery.actions.choice_book is window.session.taste
    _select(qtbot, panel, 0, 1)  # robot, lake
    qtbot.mouseClick(panel.batch.compare_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(gallery.actions.choice_recorded, timeout=10000):
        qtbot.keyClick(panel.compare, Qt.Key.Key_Left)  # the left one is better
    from stablenew.learning.store import LearningStore

    with LearningStore(window.session.app.paths.database_file) as store:
        choice, = store.choices()
    assert (str(choice.winner_path), str(choice.loser_path)) == (paths["robot.png"], paths["lake.png"])


def test_many_run_folders_are_watched_a_batch_at_a_time(qtbot, window_for, dead_url):
    # Each folder costs the Qt thread an inotify watch: 2,000 run folders given to the watcher
    # at once held the window 270 ms as the gallery opened.
    from PIL import Image

    from stablenew.controller.gallery_watch import WATCH_BATCH

    window = window_for(dead_url, connect=False)
    gallery, root = window.session.gallery, window.session.app.output_dir
    image = Image.new("RGB", (4, 4), "teal")
    for n in range(3 * WATCH_BATCH + 7):
        folder = root / f"run-{n:03d}"
        folder.mkdir(parents=True)
        image.save(folder / "0.png")
    watcher = gallery.watch._watcher
    batches: list[int] = []
    add = watcher.addPaths

    def counted(paths):
        batches.append(len(paths))
        return add(paths)

    watcher.addPaths = counted
    gallery.refresh()
    expected = {str(root), *(str(root / f"run-{n:03d}") for n in range(3 * WATCH_BATCH + 7))}
    qtbot.waitUntil(lambda: expected <= set(watcher.directories()), timeout=20000)
    assert batches and max(batches) <= WATCH_BATCH, batches


def test_the_batch_buttons_show_their_whole_names_beside_the_viewer(qtbot, window_for, dead_url):
    """With several images selected (the viewer open beside the gallery), every button of the
    batch bar is as wide as its label needs: none is cut to "ove." or "opy."."""
    window, gallery, panel, paths = _open_gallery(qtbot, window_for, dead_url, rooms=True)
    _select(qtbot, panel, 0)  # one image: the viewer opens and the gallery column narrows
    _select(qtbot, panel, 1, 2)
    bar = panel.batch
    buttons = [bar.collect_button, bar.move_button, bar.copy_button, bar.trash_button,
               bar.export_button, bar.queue_button, bar.compare_button]

    def cut() -> list[str]:
        return [b.text() for b in buttons if b.width() < b.sizeHint().width()]

    def outside() -> list[str]:
        return [b.text() for b in buttons if not bar.rect().contains(b.geometry())]

    with contextlib.suppress(QtTimeout):  # the layout settles; the asserts say what is wrong
        qtbot.waitUntil(lambda: bar.isVisible() and not cut() and not outside(), timeout=3000)
    assert cut() == [], f"cut at a gallery column {panel.width()} px wide"
    assert outside() == [], "the bar is as tall as its rows"
    assert bar.width() <= panel.width()
