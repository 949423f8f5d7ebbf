"""The gallery's rating book over the learning store: a quick change of tags keeps what the
user chose last (issue 18: set_tags compared against the read-only connection while writes
were still queued, so a tag added and at once removed again stayed)."""

from __future__ import annotations

import asyncio

from stablenew.controller.learning_controller import LearningController, LearningMode
from tests.learning.helpers import image_record


async def test_a_tag_added_and_at_once_removed_is_gone(tmp_path, qapp):
    learning = LearningController(tmp_path / "db.sqlite", mode=LearningMode.passive,
                                  remember_mode=False)
    book = learning.rating_book()
    made = image_record(tmp_path / "out", 0)
    path = str(made.path)
    try:
        learning.on_image_record(made)
        await learning.wait_idle(10)
        assert learning.read_rating(path) == (None, ())

        # Two clicks before the first write has landed: on, then off again.
        added = book.set_tags(path, ("keeper",))
        removed = book.set_tags(path, ())
        await asyncio.wait_for(asyncio.gather(added, removed), 10)
        await learning.wait_idle(10)
        assert learning.read_rating(path) == (None, ())

        # And the other way round: off, then on again, keeps the tag.
        await book.set_tags(path, ("keeper", "sharp"))
        first = book.set_tags(path, ("sharp",))
        second = book.set_tags(path, ("keeper", "sharp"))
        await asyncio.wait_for(asyncio.gather(first, second), 10)
        await learning.wait_idle(10)
        assert learning.read_rating(path) == (None, ("keeper", "sharp"))
    finally:
        await learning.aclose()
