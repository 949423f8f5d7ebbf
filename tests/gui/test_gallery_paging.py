"""A big output folder: the gallery lists the newest page, and scrolling to the end lists the older
pages, newest first, each image once, without decoding the shown thumbnails again."""

from __future__ import annotations

import os
from collections import Counter

from PIL import Image

from stablenew.controller.gallery_controller import PAGE_SIZE

EXTRA = 137  # more than one page, less than two: the last page is a short one


def _outputs(root, count):
    """*count* tiny PNGs over two run folders, each a second newer than the one before; newest first."""
    image = Image.new("RGB", (4, 4), "teal")
    paths = []
    base = 1_700_000_000
    for i in range(count):
        folder = root / f"run-{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}.png"
        image.save(path)
        os.utime(path, (base + i, base + i))
        paths.append(path)
    # Thumbnails the runner writes (in a dot folder) are not outputs.
    (root / "run-0" / ".thumbnails").mkdir()
    image.save(root / "run-0" / ".thumbnails" / "00000.png")
    return [str(p) for p in reversed(paths)]


def test_scrolling_to_the_end_lists_every_older_image_once(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    window.resize(1200, 900)
    gallery, panel = window.session.gallery, window.gallery_panel
    total = 2 * PAGE_SIZE + EXTRA
    newest_first = _outputs(window.session.app.output_dir, total)
    decoded = Counter()
    gallery.thumbnail_ready.connect(lambda key, _image: decoded.update([key]))

    with qtbot.waitSignal(panel.model.modelReset, timeout=20000):
        gallery.refresh()
    assert panel.model.rowCount() == PAGE_SIZE and gallery.has_more
    assert [i.key for i in gallery.items] == newest_first[:PAGE_SIZE]
    assert f"{PAGE_SIZE:,} of {total:,}" in panel.title.text()
    # The thumbnails in view are decoded once, and nothing older is listed unasked.
    qtbot.waitUntil(lambda: len(decoded) > 0 and not gallery.tasks.busy, timeout=20000)
    shown = dict(decoded)
    icons = {key: panel.model._icons[key].cacheKey() for key in shown}
    assert panel.model.rowCount() == PAGE_SIZE

    bar = panel.view.verticalScrollBar()
    for listed in (2 * PAGE_SIZE, total):
        qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=10000)
        with qtbot.waitSignal(panel.model.rowsInserted, timeout=20000):
            bar.setValue(bar.maximum())
        assert panel.model.rowCount() == len(gallery.items) == listed

    assert not gallery.has_more and gallery.total == total
    keys = [i.key for i in gallery.items]
    assert keys == newest_first, "newest first across pages, each image once"
    assert len(set(keys)) == total
    assert panel.title.text() == f"Gallery · {total:,} images"
    # Scrolled back to the top, the first page's thumbnails are the ones already decoded.
    bar.setValue(0)
    qtbot.waitUntil(lambda: not gallery.tasks.busy, timeout=20000)
    assert all(decoded[key] == 1 for key in shown), "shown thumbnails were not decoded again"
    assert all(panel.model._icons[key].cacheKey() == icons[key] for key in shown)
    assert max(decoded.values()) == 1


def test_thumbnail_icons_are_capped_and_come_back_when_scrolled_to_again(qtbot, window_for, dead_url,
                                                                          monkeypatch):
    from stablenew.gui import gallery_panel

    monkeypatch.setattr(gallery_panel, "MAX_ICONS", 12)
    window = window_for(dead_url, connect=False)
    gallery, model = window.session.gallery, window.gallery_panel.model
    newest_first = _outputs(window.session.app.output_dir, 40)
    with qtbot.waitSignal(model.modelReset, timeout=20000):
        gallery.refresh()

    def icon_at(row):
        return model.data(model.index(row), gallery_panel.Qt.ItemDataRole.DecorationRole)

    for row in range(40):  # as if the user scrolled through every row
        icon_at(row)
        qtbot.waitUntil(lambda row=row: newest_first[row] in model._icons, timeout=10000)
    assert len(model._icons) == 12, "the oldest-shown icons were let go"
    assert newest_first[0] not in model._icons
    icon_at(0)  # scrolled back to the top: the icon is built again
    qtbot.waitUntil(lambda: newest_first[0] in model._icons, timeout=10000)
    assert len(model._icons) == 12


def test_a_refresh_keeps_the_selected_image_and_the_place_scrolled_to(qtbot, window_for, dead_url):
    from PySide6.QtCore import QPoint

    from stablenew.gui.gallery_panel import GRID, GalleryModel

    window = window_for(dead_url, connect=False)
    window.resize(1200, 900)
    gallery, panel = window.session.gallery, window.gallery_panel
    gallery.page_size = 60
    newest_first = _outputs(window.session.app.output_dir, 200)
    with qtbot.waitSignal(panel.model.modelReset, timeout=20000):
        gallery.refresh()
    bar = panel.view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=10000)
    with qtbot.waitSignal(panel.model.rowsInserted, timeout=20000):
        bar.setValue(bar.maximum())  # the second page: the user scrolled past the first
    assert panel.model.rowCount() == 120
    panel.view.setCurrentIndex(panel.model.index(90))
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=10000)
    bar.setValue(bar.maximum() // 2)

    def first_in_view():
        return panel.view.indexAt(QPoint(GRID[0] // 2, GRID[1] // 2)).data(GalleryModel.KeyRole)

    first, value = first_in_view(), bar.value()
    assert first is not None and first != newest_first[0]
    opened = []
    panel.selected.connect(opened.append)
    with qtbot.waitSignal(panel.model.modelReset, timeout=20000):
        gallery.refresh()
    assert panel.model.rowCount() == 120, "what was listed stays listed"
    assert panel.view.currentIndex().data(GalleryModel.KeyRole) == newest_first[90]
    qtbot.waitUntil(lambda: first_in_view() == first, timeout=5000)
    assert bar.value() == value
    assert opened == [], "the image shown was not opened again"
