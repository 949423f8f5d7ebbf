"""The gallery's rating book over the learning store, and the store calls that let an image
StableNew made while learning was off be rated too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.learning.errors import LearningError, RecordNotFound
from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore
from stablenew.storage.settings import LearningMode

if TYPE_CHECKING:
    from stablenew.controller.learning_controller import LearningController

RATINGS_OFF = ("Ratings are off: Learning is set to Off, so this was not kept. To keep ratings and "
               "tags, set Learning to Passive or Active (in the Learning tab or in Settings).")


class RatingsOff(LearningError):
    """A rating or tag refused because the learning mode is Off."""


class LearningRatingBook:
    """The gallery's RatingBook backed by the learning store (writes go through the controller)."""

    def __init__(self, controller: LearningController) -> None:
        self._controller = controller

    def rating(self, path: str) -> tuple[int | None, tuple[str, ...]]:
        return self._controller.read_rating(path)

    def rate(self, path: str, stars: int | None) -> asyncio.Future[None]:
        """Raises RatingsOff at once while learning is Off; the awaitable raises the store's
        reason when it does not keep the rating (e.g. an image another tool made)."""
        self._refuse_while_off()
        return _kept(self._controller.rate(path, stars))

    def set_tags(self, path: str, tags: tuple[str, ...]) -> asyncio.Future[None]:
        """Make the image's tags exactly *tags*; the difference is taken on the writer, after
        the writes queued before it, so a quick on-and-off keeps what was chosen last."""
        self._refuse_while_off()
        wanted = frozenset(" ".join(t.split()).casefold() for t in tags if t.strip())
        return _kept(self._controller.set_tags(path, wanted))

    def _refuse_while_off(self) -> None:
        if self._controller.mode is LearningMode.off:
            raise RatingsOff(RATINGS_OFF)


def _kept(*writes: asyncio.Task[LearningError | None] | None) -> asyncio.Future[None]:
    """A future that fails with the first reason one of *writes* was not kept (already running,
    so nothing is lost or left un-awaited if nobody waits for it)."""

    async def wait() -> None:
        for write in writes:
            error = await write if write is not None else None
            if error is not None:
                raise error

    future = asyncio.ensure_future(wait())
    future.add_done_callback(lambda f: f.cancelled() or f.exception())  # read: never "never retrieved"
    return future


Ref = int | str | Path


def known(fn: Callable[..., LearningRecord]) -> Callable[..., LearningRecord]:
    """*fn* on a record; an image StableNew made while learning was off (or before this
    database existed) is recorded from its own PNG metadata first, so it can be rated too."""
    def call(store: LearningStore, ref: Ref, *args: object, **kwargs: object) -> LearningRecord:
        try:
            return fn(store, ref, *args, **kwargs)
        except RecordNotFound:
            if isinstance(ref, int) or not Path(ref).is_file():
                raise
            from stablenew.learning.rebuild import record_image_file

            record_image_file(store, Path(ref), refused="it cannot be rated for learning")
            return fn(store, ref, *args, **kwargs)
    return call


def set_tag_set(store: LearningStore, ref: Ref, wanted: frozenset[str]) -> LearningRecord:
    """On the writer thread: add and remove tags until the record has exactly *wanted*."""
    record = store.get(ref)
    for tag in sorted(set(record.tags) - wanted):
        record = store.tag(ref, tag, on=False)
    for tag in sorted(wanted - set(record.tags)):
        record = store.tag(ref, tag)
    return record
