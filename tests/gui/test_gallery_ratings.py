"""Gallery ratings the learning store refuses while learning is Off are put back on screen, and
the window says why and what to do; an image it cannot record keeps its rating beside it."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt

from stablenew.gui.widgets.stars import STAR_SIZE

FAST = {"step_ms": 5.0}


def _star_x(stars: int) -> int:
    return 2 + (stars - 1) * (STAR_SIZE + 4) + STAR_SIZE // 2


def _one_image_and_rooms(qtbot, window):
    """Run one image, wait for the learning room, and open the image in the viewer."""
    window.pipeline_panel.editor("txt2img.prompt").set_value("a lighthouse at dusk")
    window.pipeline_panel.editor("txt2img.batch_count").set_value(1)
    window.commands.run_button.click()
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=15000)
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() >= 1, timeout=5000)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=10000)
    assert window.session.learning is not None
    window.gallery_panel.select_first()
    key = window.session.gallery.items[0].key
    qtbot.waitUntil(lambda: window.viewer.sidebar.key == key, timeout=5000)
    return key


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_a_rating_refused_while_learning_is_off_goes_back_to_the_stored_stars(
        qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    key = _one_image_and_rooms(qtbot, window)
    gallery, learning, sidebar = window.session.gallery, window.session.learning, window.viewer.sidebar
    # Kept while learning is on: the store holds 3 stars.
    qtbot.keyClick(window.gallery_panel.view, Qt.Key.Key_3)
    qtbot.waitUntil(lambda: learning.read_rating(key)[0] == 3, timeout=5000)
    assert sidebar.stars.stars == 3

    learning.set_mode("off")
    with qtbot.waitSignal(gallery.error_changed, timeout=5000) as refused:
        qtbot.keyClick(window.gallery_panel.view, Qt.Key.Key_5)
    assert "Learning" in refused.args[0].message and "Passive or Active" in refused.args[0].message
    assert window.notice.isVisible() and window.notice.message == refused.args[0].message
    assert sidebar.stars.stars == 3, "the stars show what is stored, not the refused rating"
    assert gallery.item(key).rating == 3
    row = window.gallery_panel.model.index(0)
    assert row.data(Qt.ItemDataRole.DisplayRole) == "★★★"

    # Clicking the stars in the viewer is refused the same way.
    window.notice.clear()
    with qtbot.waitSignal(gallery.error_changed, timeout=5000):
        qtbot.mouseClick(sidebar.stars, Qt.MouseButton.LeftButton, pos=QPoint(_star_x(1), 12))
    assert sidebar.stars.stars == 3 and window.notice.isVisible()
    assert learning.read_rating(key)[0] == 3

    # Back on, the same key press is kept and no message is shown.
    learning.set_mode("passive")
    window.notice.clear()
    qtbot.keyClick(window.gallery_panel.view, Qt.Key.Key_5)
    qtbot.waitUntil(lambda: learning.read_rating(key)[0] == 5, timeout=5000)
    qtbot.waitUntil(lambda: not gallery.tasks.busy, timeout=5000)
    assert sidebar.stars.stars == 5 and gallery.item(key).rating == 5
    assert not window.notice.isVisible()


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_an_image_another_tool_made_keeps_its_rating_beside_it(
        qtbot, window_for, fake_sdwebui_thread):
    """Learning cannot record an image without StableNew settings, but the gallery keeps the
    user's stars and tags for it: in its sidecar and the index, with no error shown."""
    from stablenew.gallery.sidecar import read_marks

    window = window_for(fake_sdwebui_thread.url)
    _one_image_and_rooms(qtbot, window)
    gallery = window.session.gallery
    foreign = window.session.app.output_dir / "from-elsewhere.png"
    Image.new("RGB", (32, 32), "navy").save(foreign)
    gallery.refresh()  # listed from the index at once; the scan behind it finds the new file
    key = str(foreign)
    qtbot.waitUntil(lambda: gallery.item(key) is not None, timeout=10000)
    assert gallery.item(key).rating is None
    row = next(r for r, i in enumerate(gallery.items) if i.key == key)
    window.gallery_panel.view.setCurrentIndex(window.gallery_panel.model.index(row))
    qtbot.waitUntil(lambda: window.viewer.sidebar.key == key, timeout=5000)
    errors = []
    gallery.error_changed.connect(errors.append)
    qtbot.keyClick(window.gallery_panel.view, Qt.Key.Key_4)
    qtbot.waitUntil(lambda: read_marks(foreign).rating == 4, timeout=10000)
    qtbot.waitUntil(lambda: not gallery.tasks.busy, timeout=5000)
    assert gallery.item(key).rating == 4 and window.viewer.sidebar.stars.stars == 4
    assert not errors and "cannot" not in window.notice.message
    assert window.session.learning.read_rating(key) == (None, ()), "learning cannot use it"

    # Listed again (the store still does not know it): the stars come from the index.
    with qtbot.waitSignal(window.gallery_panel.model.modelReset, timeout=5000):
        gallery.refresh()
    assert gallery.item(key).rating == 4


async def test_an_old_ratings_file_is_handed_to_the_learning_store_once(tmp_path, qapp):
    """An earlier StableNew kept ratings made before the learning room opened in ratings.json:
    the store takes them once, and the file keeps only what the store refused."""
    import json

    from stablenew.controller.gallery_controller import GalleryController, StoredRatings
    from stablenew.controller.learning_controller import LearningController, LearningMode
    from tests.learning.helpers import image_record

    out, file, db = tmp_path / "out", tmp_path / "data" / "ratings.json", tmp_path / "db.sqlite"
    made = image_record(out, 0)
    foreign = out / "from-elsewhere.png"  # no StableNew settings: learning cannot rate it
    Image.new("RGB", (32, 32), "navy").save(foreign)
    ours, theirs = str(made.path), str(foreign)
    file.parent.mkdir(parents=True)
    file.write_text(json.dumps({ours: {"stars": 4, "tags": ["nailed it"]}, theirs: {"stars": 2}}),
                    encoding="utf-8")
    learning = LearningController(db, mode=LearningMode.passive, remember_mode=False)
    gallery = GalleryController(lambda: out, StoredRatings(db, learning.rating_book))
    try:
        learning.on_image_record(made)  # the store knows the image StableNew made
        await learning.wait_idle(10)
        gallery.hand_over_rating_file(file)
        await gallery.tasks.wait_idle(10)
        await learning.wait_idle(10)
        await gallery.tasks.wait_idle(10)
        assert learning.read_rating(ours) == (4, ("nailed it",)), "handed to the learning store"
        assert json.loads(file.read_text(encoding="utf-8")) == {theirs: {"stars": 2}}, \
            "what learning took left the file; what it refused stays"
        assert (gallery.item(ours).rating, gallery.item(ours).tags) == (4, ("nailed it",))
        assert gallery.item(theirs).rating is None, "shown as the store holds it"

        # Once: a newer rating in the store is not overwritten by a later start's hand-over.
        gallery.rate(ours, 5)
        await gallery.tasks.wait_idle(10)
        await learning.wait_idle(10)
        gallery.hand_over_rating_file(file)
        await gallery.tasks.wait_idle(10)
        await learning.wait_idle(10)
        assert learning.read_rating(ours) == (5, ("nailed it",))
        assert json.loads(file.read_text(encoding="utf-8")) == {theirs: {"stars": 2}}
    finally:
        await gallery.aclose()
        await learning.aclose()


async def test_stars_show_before_the_learning_room_opens_and_a_rating_waits_for_nothing(
        tmp_path, qapp):
    """The gallery reads ratings from the learning store itself: no learning room is needed to
    show them, and a rating made when there is none to keep it says why and is put back."""
    from stablenew.controller.gallery_controller import GalleryController, StoredRatings
    from stablenew.learning.records import LearningRecord
    from stablenew.learning.store import LearningStore
    from tests.learning.helpers import image_record

    out, db = tmp_path / "out", tmp_path / "db.sqlite"
    made = image_record(out, 0)
    with LearningStore(db) as store:
        store.add_record(LearningRecord.from_image_record(made))
        store.rate(str(made.path), 4)
        store.tag(str(made.path), "nailed it")
    gallery = GalleryController(lambda: out, StoredRatings(db, lambda: None))
    errors = []
    gallery.error_changed.connect(errors.append)
    try:
        gallery.refresh()
        await gallery.tasks.wait_idle(10)
        key = str(made.path)
        assert (gallery.item(key).rating, gallery.item(key).tags) == (4, ("nailed it",))
        gallery.rate(key, 2)
        await gallery.tasks.wait_idle(10)
        assert gallery.item(key).rating == 4, "put back: nothing kept it"
        assert errors and "learning part of StableNew did not start" in errors[-1].message
    finally:
        await gallery.aclose()
