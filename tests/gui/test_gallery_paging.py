"""A big output folder: the gallery has a row for every image at once (newest first, each once) and
reads a page's details as it comes into view, without decoding the shown thumbnails again."""

from __future__ import annotations

import gc
import os
from collections import Counter
from pathlib import Path

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


def test_every_image_has_its_row_at_once_and_pages_are_read_as_they_show(qtbot, window_for,
                                                                          dead_url):
    window = window_for(dead_url, connect=False)
    window.resize(1200, 900)
    gallery, panel = window.session.gallery, window.gallery_panel
    total = 2 * PAGE_SIZE + EXTRA
    newest_first = _outputs(window.session.app.output_dir, total)
    decoded = Counter()
    gallery.thumbnail_ready.connect(lambda key, _image: decoded.update([key]))

    with qtbot.waitSignal(panel.model.modelReset, timeout=20000):
        gallery.refresh()
    # A row for every image from the start (the scroll bar has its full length), newest first,
    # each once; only the first page's details are read.
    assert panel.model.rowCount() == gallery.total == total
    assert [gallery.key_at(r) for r in range(total)] == newest_first
    assert len(gallery.items) == PAGE_SIZE
    assert [i.key for i in gallery.items] == newest_first[:PAGE_SIZE]
    # Squeezed beside the search box, the title keeps the count whole ("1,337 image" was shown).
    count = f"{total:,} images"
    assert panel.title.text() in (f"Gallery · {count}", count)
    panel.title.setFixedWidth(panel.title.fontMetrics().horizontalAdvance(count) + 12)
    qtbot.waitUntil(lambda: panel.title.text() == count, timeout=5000)
    panel.title.setFixedWidth(panel.title.fontMetrics().horizontalAdvance(f"Gallery · {count}")
                              + 12)
    qtbot.waitUntil(lambda: panel.title.text() == f"Gallery · {count}", timeout=5000)
    panel.title.setMinimumWidth(40)
    panel.title.setMaximumWidth(16777215)
    qtbot.waitUntil(lambda: len(decoded) > 0 and not gallery.tasks.busy, timeout=20000)
    shown = dict(decoded)
    icons = {key: panel.model._icons[key].cacheKey() for key in shown}
    assert len(gallery.items) == PAGE_SIZE, "nothing further down is read unasked"

    # Dragged to the bottom: the last page is read (not those between), its tiles painted.
    bar = panel.view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=10000)
    last = panel.model.index(total - 1)
    assert gc.isenabled()
    with qtbot.waitSignal(gallery.rows_read, timeout=20000):
        bar.setValue(bar.maximum())
        # While the drag goes on, no cycle collection (a full one is a 20-40 ms hitch at
        # 100,000 images); it is back once the scrolling settles.
        assert not gc.isenabled()
    qtbot.waitUntil(gc.isenabled, timeout=5000)
    qtbot.waitUntil(lambda: gallery.item(newest_first[-1]) is not None, timeout=20000)
    assert panel.view.visualRect(last).intersects(panel.view.viewport().rect())
    assert gallery.item(newest_first[PAGE_SIZE + 10]) is None, "the middle page was not needed"
    qtbot.waitUntil(lambda: newest_first[-1] in panel.model._icons, timeout=20000)
    assert panel.model.rowCount() == total

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
    window.gallery_panel.view.hide()  # only the rows asked for here are painted
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
    assert panel.model.rowCount() == 200
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
    assert panel.model.rowCount() == 200, "what was listed stays listed"
    assert panel.view.currentIndex().data(GalleryModel.KeyRole) == newest_first[90]
    qtbot.waitUntil(lambda: first_in_view() == first, timeout=5000)
    assert bar.value() == value
    assert opened == [], "the image shown was not opened again"


def test_images_the_scan_finds_behind_the_list_appear_without_losing_the_place(qtbot, window_for,
                                                                              dead_url):
    """The list comes from the index at once; the folder scan behind it finds images another
    program added and one it deleted: the list follows, the selected image and the image
    first in view stay where they were."""
    from PySide6.QtCore import QPoint

    from stablenew.gui.gallery_panel import GRID, GalleryModel

    window = window_for(dead_url, connect=False)
    window.resize(1200, 900)
    gallery, panel = window.session.gallery, window.gallery_panel
    root = window.session.app.output_dir
    newest_first = _outputs(root, 200)
    with qtbot.waitSignal(panel.model.modelReset, timeout=20000):
        gallery.refresh()
    outputs = gallery._outputs
    qtbot.waitUntil(lambda: outputs.worker is not None and outputs.worker.join(0), timeout=20000)
    gallery.refresh()  # from the index now
    qtbot.waitUntil(lambda: not gallery.tasks.busy, timeout=20000)
    bar = panel.view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=10000)
    panel.view.setCurrentIndex(panel.model.index(90))
    bar.setValue(bar.maximum() // 2)

    def first_in_view():
        return panel.view.indexAt(QPoint(GRID[0] // 2, GRID[1] // 2)).data(GalleryModel.KeyRole)

    first = first_in_view()
    assert first not in (None, newest_first[0])
    image = Image.new("RGB", (4, 4), "orange")
    added = []
    for n in range(3):  # newer than every listed image: they go first
        path = root / "run-9" / f"new-{n}.png"
        path.parent.mkdir(exist_ok=True)
        image.save(path)
        os.utime(path, (1_800_000_000 + n, 1_800_000_000 + n))
        added.append(str(path))
    Path(newest_first[150]).unlink()
    gallery.refresh()
    qtbot.waitUntil(lambda: panel.model.rowCount() == 202, timeout=20000)
    assert [gallery.key_at(r) for r in range(3)] == added[::-1]
    assert gallery.row_of(newest_first[150]) == -1
    assert panel.view.currentIndex().data(GalleryModel.KeyRole) == newest_first[90]
    qtbot.waitUntil(lambda: first_in_view() == first, timeout=5000)


def test_a_tile_is_painted_with_one_call_into_python(qtbot, window_for, dead_url, monkeypatch):
    from PySide6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem

    from stablenew.gui.gallery_panel import GalleryModel

    # Each call from Qt into Python takes the GIL, and waits for it while a worker thread runs
    # Python (a page read, a thumbnail decoded): a grid painted with seven calls per tile (one
    # per role Qt's delegate asks for) stalled the window 30-50 ms while tiles filled in.
    calls: Counter[str] = Counter()
    for name in ("data", "multiData"):
        original = getattr(GalleryModel, name)

        def counted(self, *args, _original=original, _name=name):
            calls[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(GalleryModel, name, counted)
    window = window_for(dead_url, connect=False)
    window.resize(1200, 900)
    gallery, panel = window.session.gallery, window.gallery_panel
    keys = _outputs(window.session.app.output_dir, 12)
    with qtbot.waitSignal(panel.model.modelReset, timeout=20000):
        gallery.refresh()
    view = panel.view
    shown = [keys[r] for r in range(12) if view.visualRect(panel.model.index(r))
             .intersects(view.viewport().rect())]
    assert keys[0] in shown
    qtbot.waitUntil(lambda: all(k in panel.model._icons for k in shown)
                    and not gallery.tasks.busy, timeout=20000)
    gallery.rate(keys[0], 3)
    calls.clear()
    view.viewport().repaint()
    assert calls["data"] == 0, calls
    assert 0 < calls["multiData"] <= len(shown), (calls, len(shown))
    # What the tile shows came through that one call: the stars and the thumbnail.
    index = panel.model.index(0)
    option = QStyleOptionViewItem()
    QStyledItemDelegate().initStyleOption(option, index)
    assert option.text == "★★★"
    assert option.icon.cacheKey() == panel.model._icons[keys[0]].cacheKey()


def test_when_a_drag_stops_only_the_pages_in_view_are_read(qtbot, window_for, dead_url):
    # Reading a page is Python a worker runs while the window paints the tiles filling in: the
    # pages a drag passed on its way (kept while it went on) are not read when it stops.
    from stablenew.gui.gallery_panel import SETTLE_MS

    window = window_for(dead_url, connect=False)
    window.resize(1200, 900)
    gallery, panel = window.session.gallery, window.gallery_panel
    total = 6 * PAGE_SIZE
    newest_first = _outputs(window.session.app.output_dir, total)
    with qtbot.waitSignal(panel.model.modelReset, timeout=20000):
        gallery.refresh()
    qtbot.waitUntil(lambda: not gallery.tasks.busy, timeout=20000)
    bar = panel.view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=10000)
    read_pages: list[int] = []
    gallery.rows_read.connect(lambda first, _last: read_pages.append(first // PAGE_SIZE))
    for step in range(1, 21):  # a drag through pages 1 to 4, each move painted, to the bottom
        bar.setValue(bar.maximum() * step // 20)
        qtbot.wait(SETTLE_MS // 4)
    qtbot.waitUntil(lambda: gallery.item(newest_first[-1]) is not None, timeout=20000)
    qtbot.wait(SETTLE_MS * 3)
    qtbot.waitUntil(lambda: not gallery.tasks.busy, timeout=20000)
    assert read_pages and set(read_pages) <= {4, 5}, read_pages
    for page in (1, 2, 3):
        assert gallery.item(newest_first[page * PAGE_SIZE + 5]) is None, page
