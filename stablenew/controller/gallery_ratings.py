"""Where the gallery's ratings and tags are kept: the learning store's book, read and written."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeAlias

from stablenew.errors import StableNewError
from stablenew.learning.ratings import RecordReader

#: What a rating book's write returns: a Future or awaitable that fails when the value was not
#: kept, or None when it was kept at once.
WriteOutcome: TypeAlias = "Awaitable[object] | concurrent.futures.Future[None] | None"


class RatingBook(Protocol):
    """Where ratings and tags are written (the learning store's book).

    `rate` and `set_tags` are called on the Qt thread and must not block it (they hand the
    write to a worker). A write may return a future or awaitable that fails when the value was
    not kept, or raise at once when it is refused; the gallery then puts the stored value back
    and says why.
    """

    def rating(self, path: str) -> tuple[int | None, tuple[str, ...]]: ...
    def rate(self, path: str, stars: int | None) -> WriteOutcome: ...
    def set_tags(self, path: str, tags: tuple[str, ...]) -> WriteOutcome: ...


class RatingsUnavailable(StableNewError):
    """A rating or tag that cannot be kept because the learning room did not open."""


class StoredRatings:
    """The gallery's ratings: read from the learning store's database (the one place a rating is
    kept, so every view shows the same stars from the first moment), written through the
    learning room's book, which *writer* gives (opening the room if a rating comes first)."""

    def __init__(self, database: Path, writer: Callable[[], RatingBook | None]) -> None:
        self._reader = RecordReader(database)
        self._writer = writer

    def rating(self, path: str) -> tuple[int | None, tuple[str, ...]]:
        """May block briefly (an indexed read that never waits for writers): worker threads."""
        return self._reader.rating(path)

    def rate(self, path: str, stars: int | None) -> WriteOutcome:
        return self._book().rate(path, stars)

    def set_tags(self, path: str, tags: tuple[str, ...]) -> WriteOutcome:
        return self._book().set_tags(path, tags)

    def _book(self) -> RatingBook:
        book = self._writer()
        if book is None:
            raise RatingsUnavailable(
                "Ratings cannot be kept right now: the learning part of StableNew did not start. "
                "See its error, then restart StableNew.")
        return book

    def close(self) -> None:
        self._reader.close()
