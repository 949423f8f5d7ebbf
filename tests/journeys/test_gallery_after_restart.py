"""Journey: a collection, the stars given in the gallery and the order by rating are there after
a restart; and after both databases are lost, the stars and tags come back from the images'
sidecars when the gallery is rebuilt."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.journeys.conftest import save_server
from tests.journeys.test_ratings_after_restart import run_images


def _select(qtbot, panel, *rows):
    view = panel.view
    for n, row in enumerate(rows):
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         Qt.KeyboardModifier.ControlModifier if n else Qt.KeyboardModifier.NoModifier,
                         pos=view.visualRect(panel.model.index(row)).center())


def test_collections_ratings_and_sidecars_after_a_restart(qtbot, journey, fake_process):
    fake = fake_process(step_ms=5)
    save_server(fake.url)
    window = journey.open()
    run_images(qtbot, window, "a lighthouse at dusk", 3)
    panel, gallery = window.gallery_panel, window.session.gallery
    keys = [i.key for i in gallery.items]
    tip = panel.model.data(panel.model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "Prompt: a lighthouse at dusk" in tip, "a new image's tooltip has its prompt at once"
    _select(qtbot, panel, 1, 2)
    qtbot.keyClick(panel.view, Qt.Key.Key_5)
    qtbot.keyClicks(panel.batch.tag_edit, "keeper")
    qtbot.keyClick(panel.batch.tag_edit, Qt.Key.Key_Return)
    qtbot.keyClicks(panel.batch.collection.lineEdit(), "Best of")
    qtbot.mouseClick(panel.batch.collect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.message.text() == "Added 2 images to “Best of”.", timeout=10000)
    learning = window.session.learning
    qtbot.waitUntil(lambda: all(learning.read_rating(k) == (5, ("keeper",)) for k in keys[1:]),
                    timeout=10000)
    qtbot.waitUntil(lambda: not gallery.tasks.busy, timeout=10000)

    window = journey.restart()
    panel, gallery = window.gallery_panel, window.session.gallery
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3, timeout=10000)
    bar = panel.filters
    qtbot.waitUntil(lambda: bar.collection.findData("Best of") >= 0, timeout=10000)
    bar.collection.setCurrentIndex(bar.collection.findData("Best of"))
    qtbot.waitUntil(lambda: sorted(i.key for i in gallery.items) == sorted(keys[1:]), timeout=10000)
    bar.collection.setCurrentIndex(0)
    bar.sort.setCurrentIndex(bar.sort.findText("Best rated first"))
    qtbot.waitUntil(lambda: gallery.query is not None and len(gallery.items) == 3
                    and [i.rating for i in gallery.items] == [5, 5, None], timeout=10000)

    # Both databases lost: the images' sidecars bring the stars and tags back.
    journey.close()
    data = window.session.app.paths.data_dir
    for name in ("gallery.db", "stablenew.db"):
        for suffix in ("", "-wal", "-shm"):
            (data / (name + suffix)).unlink(missing_ok=True)
    window = journey.open()
    panel, gallery = window.gallery_panel, window.session.gallery
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3, timeout=10000)
    outputs = gallery._outputs
    qtbot.waitUntil(lambda: outputs.worker is None or outputs.worker.join(0), timeout=20000)
    panel.filters.sort.setCurrentIndex(panel.filters.sort.findText("Best rated first"))
    qtbot.waitUntil(lambda: gallery.query is not None and len(gallery.items) == 3
                    and [i.rating for i in gallery.items] == [5, 5, None], timeout=10000)
    assert sorted(i.key for i in gallery.items[:2]) == sorted(keys[1:])
    assert gallery.items[0].tags == ("keeper",)
