"""The session wires the rooms together: a profile's bias reaches every run's randomizer."""

from __future__ import annotations

import asyncio

from stablenew.controller.app_controller import start_up
from stablenew.controller.session import Session
from stablenew.randomizer.profiles import RandomizerBias


def test_profile_bias_reaches_the_randomizer_and_clears(qtbot, qloop):
    session = Session(start_up())
    try:
        session.open_rooms()
        assert session.library is not None and session.randomizer is not None
        session.library.preset_actions.bias_changed.emit(
            RandomizerBias(wildcard_weights={"hair": {"red": 3.0}}))
        assert session.randomizer.spec.wildcard_weights == {"hair": {"red": 3.0}}
        session.library.preset_actions.clear_bias()
        assert session.randomizer.spec.wildcard_weights == {}
    finally:
        closing = asyncio.ensure_future(session.aclose())
        qtbot.waitUntil(closing.done, timeout=5000)


def test_an_image_saved_before_the_learning_room_opened_is_recorded(qtbot, qloop, tmp_path):
    """Every path records: the first image of a Run pressed at once (the learning room not
    open yet) reaches the learning store too."""
    from stablenew.learning.store import LearningStore
    from tests.learning.helpers import image_record

    session = Session(start_up())
    record = image_record(tmp_path, 0)
    try:
        assert session.learning is None
        session._queue_record(record)  # the queue's record hook, as a runner calls it
        session.open_rooms()  # as the window does after its first paint
        assert session.learning is not None

        def stored() -> bool:
            with LearningStore(session.app.paths.database_file) as store:
                return [str(r.path) for r in store.records()] == [str(record.path)]

        qtbot.waitUntil(stored, timeout=5000)
    finally:
        closing = asyncio.ensure_future(session.aclose())
        qtbot.waitUntil(closing.done, timeout=5000)


def test_images_the_queue_deletes_leave_the_gallery_too(qtbot, qloop, tmp_path):
    """The gallery keeps this session's images listed first even when a scan misses them: an
    unfinished attempt's image the queue deletes (from its own thread) must leave it too."""
    import threading

    from tests.learning.helpers import image_record

    session = Session(start_up())
    out = session.app.output_dir
    kept, removed = image_record(out, 0), image_record(out, 1)
    try:
        for record in (kept, removed):
            session.queued_image_saved.emit(record)
        gallery = session.gallery
        qtbot.waitUntil(lambda: gallery.row_of(str(removed.path)) >= 0
                        and gallery.row_of(str(kept.path)) >= 0, timeout=5000)
        removed.path.unlink()
        worker = threading.Thread(target=session._outputs_removed, args=([removed.path],))
        worker.start()  # as a runner's database thread calls it
        worker.join()
        qtbot.waitUntil(lambda: gallery.row_of(str(removed.path)) < 0, timeout=5000)
        assert gallery.row_of(str(kept.path)) >= 0
    finally:
        closing = asyncio.ensure_future(session.aclose())
        qtbot.waitUntil(closing.done, timeout=5000)
