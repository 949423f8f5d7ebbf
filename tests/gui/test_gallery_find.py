"""Finding images in the window: the search box (debounced), the order, the filters, collections,
the hover tooltip and the inspector's copy buttons, all through the real widgets; the index is
read off the Qt thread."""

from __future__ import annotations

import os
import threading

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractItemView

from tests.gallery.factory import a1111_text, png

BASE = 1_700_000_000

IMAGES = (  # name, prompt, model, seed
    ("castle.png", "a castle in the fog", "juggernautXL", 11),
    ("owl.png", "an owl at night, cyberpunk city", "dreamshaper_8", 22),
    ("lake.png", "a quiet lake at sunset", "sd_xl_base_1.0", 33),
    ("robot.png", "a cyberpunk robot in the rain <lora:film_grain:0.5>", "realvisXL", 44),
)


def _outputs(root):
    """The four images in two run folders, each a minute newer than the one before."""
    paths = {}
    for n, (name, prompt, model, seed) in enumerate(IMAGES):
        path = png(root / f"run-{n % 2}" / name, {"parameters": a1111_text(
            prompt, model=model, seed=seed)},
            color=(n * 40, 9, 9), size=(8 + n, 8))
        os.utime(path, (BASE + 60 * n, BASE + 60 * n))
        paths[name] = str(path)
    return paths


def _learning_records(database, paths):
    """The images as StableNew's own outputs, known to the learning store (so they can be rated)."""
    import dataclasses
    from pathlib import Path

    from stablenew.learning.records import LearningRecord
    from stablenew.learning.store import LearningStore
    from tests.learning.helpers import image_record

    with LearningStore(database) as store:
        for n, path in enumerate(paths.values()):
            record = dataclasses.replace(image_record(Path(path).parent, n, png=False), path=Path(path))
            store.add_record(LearningRecord.from_image_record(record))


def _names(gallery):
    return [i.path.name for i in gallery.items]


def _open_gallery(qtbot, window_for, dead_url, *, rooms=False):
    window = window_for(dead_url, connect=False)
    window.resize(1400, 1000)
    paths = _outputs(window.session.app.output_dir)
    gallery, panel = window.session.gallery, window.gallery_panel
    if rooms:
        _learning_records(window.session.app.paths.database_file, paths)
        window.start_after_first_paint()
        qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=15000)
    gallery.refresh()
    qtbot.waitUntil(lambda: len(gallery.items) == 4, timeout=20000)
    # the first listing walks the folder while the index is built; once built the listed
    # images get their model and prompt (for the tooltip) without a reset of the list
    qtbot.waitUntil(lambda: gallery.items[0].model == "realvisXL", timeout=20000)
    return window, gallery, panel, paths


def _no_sqlite_on_the_qt_thread(monkeypatch):
    """Fails the test if the index is read on the Qt (main) thread."""
    from stablenew.gallery.index import GalleryIndex

    real = GalleryIndex.execute

    def execute(self, sql, params=()):
        assert threading.current_thread() is not threading.main_thread(), sql
        return real(self, sql, params)

    monkeypatch.setattr(GalleryIndex, "execute", execute)


def test_search_box_is_debounced_and_finds_prompts_and_file_names(qtbot, window_for, dead_url,
                                                                   monkeypatch):
    window, gallery, panel, _paths = _open_gallery(qtbot, window_for, dead_url)
    _no_sqlite_on_the_qt_thread(monkeypatch)
    asked = []
    gallery.items_reset.connect(lambda: asked.append(gallery.query))
    qtbot.keyClicks(panel.filters.search, "cyberpunk")
    assert asked == [], "typing does not ask the index at every key"
    qtbot.waitUntil(lambda: sorted(_names(gallery)) == ["owl.png", "robot.png"], timeout=5000)
    assert len(asked) == 1, "one search for the whole word"
    assert panel.model.rowCount() == 2 and "2 images found" in panel.title.text()
    # a file name is found too
    panel.filters.search.clear()
    qtbot.keyClicks(panel.filters.search, "lake")
    qtbot.waitUntil(lambda: _names(gallery) == ["lake.png"], timeout=5000)
    assert "1 image found" in panel.title.text()
    panel.filters.search.clear()
    qtbot.waitUntil(lambda: gallery.query is None and len(gallery.items) == 4, timeout=5000)


def test_sort_and_filters(qtbot, window_for, dead_url):
    window, gallery, panel, paths = _open_gallery(qtbot, window_for, dead_url)
    bar = panel.filters
    assert _names(gallery) == ["robot.png", "lake.png", "owl.png", "castle.png"]
    bar.sort.setCurrentIndex(bar.sort.findText("Name"))
    qtbot.waitUntil(lambda: _names(gallery) == ["castle.png", "lake.png", "owl.png", "robot.png"],
                    timeout=5000)
    bar.sort.setCurrentIndex(bar.sort.findText("Largest first"))
    qtbot.waitUntil(lambda: gallery.query is not None and gallery.query.sort.value == "size",
                    timeout=5000)
    bar.sort.setCurrentIndex(bar.sort.findText("Oldest first"))
    qtbot.waitUntil(lambda: _names(gallery) == ["castle.png", "owl.png", "lake.png", "robot.png"],
                    timeout=5000)

    qtbot.mouseClick(bar.filters_button, Qt.MouseButton.LeftButton)
    assert bar.panel.isVisible()
    # the filter lists offer what the index holds (read in the background)
    qtbot.waitUntil(lambda: bar.combos["model"].findText("realvisXL") >= 0, timeout=5000)
    assert bar.combos["lora"].findText("film_grain") >= 0
    bar.combos["model"].setCurrentIndex(bar.combos["model"].findText("dreamshaper_8"))
    qtbot.waitUntil(lambda: _names(gallery) == ["owl.png"], timeout=5000)
    bar.combos["model"].setCurrentIndex(0)  # Any
    qtbot.waitUntil(lambda: len(gallery.items) == 4, timeout=5000)
    bar.combos["run"].lineEdit().selectAll()
    qtbot.keyClicks(bar.combos["run"].lineEdit(), "run-0")
    qtbot.waitUntil(lambda: _names(gallery) == ["castle.png", "lake.png"], timeout=5000)
    bar.combos["model"].setCurrentIndex(bar.combos["model"].findText("realvisXL"))
    qtbot.waitUntil(lambda: _names(gallery) == [], timeout=5000)
    assert "0 images found" in panel.title.text()
    qtbot.mouseClick(bar.clear_button, Qt.MouseButton.LeftButton)
    bar.media.setCurrentIndex(bar.media.findData("jpeg"))
    qtbot.waitUntil(lambda: gallery.query is not None and gallery.query.media == "jpeg"
                    and _names(gallery) == [], timeout=5000)
    bar.media.setCurrentIndex(bar.media.findData("png"))
    qtbot.waitUntil(lambda: len(gallery.items) == 4, timeout=5000)
    qtbot.mouseClick(bar.clear_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(gallery.items) == 4, timeout=5000)
    bar.combos["lora"].setCurrentIndex(bar.combos["lora"].findText("film_grain"))
    qtbot.waitUntil(lambda: _names(gallery) == ["robot.png"], timeout=5000)
    qtbot.mouseClick(bar.clear_button, Qt.MouseButton.LeftButton)
    # a date range: only the day of the images
    bar.since.setDate(bar.since.date().fromString("2023-11-14", "yyyy-MM-dd"))
    bar.until.setDate(bar.until.date().fromString("2023-11-14", "yyyy-MM-dd"))
    qtbot.mouseClick(bar.dates, Qt.MouseButton.LeftButton, pos=bar.dates.rect().center())
    qtbot.waitUntil(lambda: gallery.query is not None and gallery.query.since is not None,
                    timeout=5000)
    qtbot.waitUntil(lambda: len(gallery.items) == 4, timeout=5000)
    bar.until.setDate(bar.until.date().fromString("2023-11-13", "yyyy-MM-dd"))
    bar.since.setDate(bar.since.date().fromString("2023-11-13", "yyyy-MM-dd"))
    qtbot.waitUntil(lambda: _names(gallery) == [], timeout=5000)


def test_rating_filter_and_sort_follow_the_stars_given(qtbot, window_for, dead_url):
    window, gallery, panel, paths = _open_gallery(qtbot, window_for, dead_url, rooms=True)
    view = panel.view
    for row, stars in ((1, 4), (3, 2)):  # lake.png 4 stars, castle.png 2
        view.setCurrentIndex(panel.model.index(row))
        qtbot.keyClick(view, str(stars))
    qtbot.waitUntil(lambda: not gallery.tasks.busy, timeout=5000)
    bar = panel.filters
    bar.sort.setCurrentIndex(bar.sort.findText("Best rated first"))
    qtbot.waitUntil(lambda: _names(gallery)[:2] == ["lake.png", "castle.png"], timeout=5000)
    qtbot.mouseClick(bar.filters_button, Qt.MouseButton.LeftButton)
    bar.min_rating.setCurrentIndex(bar.min_rating.findData(3))
    qtbot.waitUntil(lambda: _names(gallery) == ["lake.png"], timeout=5000)
    assert gallery.items[0].rating == 4


def test_collections_and_multi_select(qtbot, window_for, dead_url):
    window, gallery, panel, paths = _open_gallery(qtbot, window_for, dead_url)
    view, actions = panel.view, panel.batch
    assert view.selectionMode() == QAbstractItemView.SelectionMode.ExtendedSelection
    assert not actions.isVisible()
    first = view.visualRect(panel.model.index(0)).center()
    third = view.visualRect(panel.model.index(2)).center()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=first)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.ControlModifier, pos=third)
    assert panel.selected_keys() == [paths["robot.png"], paths["owl.png"]]
    assert actions.isVisible() and actions.count_label.text() == "2 selected"
    qtbot.keyClicks(actions.collection.lineEdit(), "Keepers")
    qtbot.mouseClick(actions.collect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.message.text() == "Added 2 images to “Keepers”.", timeout=5000)
    bar = panel.filters
    qtbot.waitUntil(lambda: bar.collection.findData("Keepers") >= 0, timeout=5000)
    assert bar.collection.itemText(bar.collection.findData("Keepers")) == "Keepers (2)"
    bar.collection.setCurrentIndex(bar.collection.findData("Keepers"))
    qtbot.waitUntil(lambda: sorted(_names(gallery)) == ["owl.png", "robot.png"], timeout=5000)


def test_tooltip_and_inspector(qtbot, window_for, dead_url):
    window, gallery, panel, paths = _open_gallery(qtbot, window_for, dead_url)
    assert gallery.items[0].model == "realvisXL"
    tip = panel.model.data(panel.model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "robot.png" in tip and "Model: realvisXL" in tip
    assert "Prompt: a cyberpunk robot in the rain" in tip
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton,
                     pos=panel.view.visualRect(panel.model.index(0)).center())
    sidebar = window.viewer.sidebar
    qtbot.waitUntil(lambda: sidebar.key == paths["robot.png"], timeout=5000)
    clipboard = QGuiApplication.clipboard()
    qtbot.mouseClick(sidebar.copy_prompt, Qt.MouseButton.LeftButton)
    assert clipboard.text().startswith("a cyberpunk robot in the rain")
    qtbot.mouseClick(sidebar.copy_seed, Qt.MouseButton.LeftButton)
    assert clipboard.text() == "44"
    qtbot.mouseClick(sidebar.copy_all, Qt.MouseButton.LeftButton)
    assert "Seed: 44" in clipboard.text() and "Model: realvisXL" in clipboard.text()
    assert "Model" in sidebar.params.toPlainText()
