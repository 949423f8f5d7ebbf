"""Where the gallery's ratings and tags are kept: the learning store's book, read and written."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeAlias

from stablenew.errors import StableNewError
from stablenew.learning.ratings import RecordReader

log = logging.getLogger("stablenew.controller.gallery")

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

    def ratings(self, paths: list[str]) -> dict[str, tuple[int | None, tuple[str, ...]]]:
        """`rating` of many paths at once (a page of the gallery); unrated ones left out."""
        return self._reader.ratings(paths)

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


async def hand_over_file(file: Path, ratings: RatingBook) -> bool:
    """Hand the ratings of an earlier StableNew's ratings.json to *ratings* once; the file keeps
    only what was refused. False when there was no file to hand over (or it was unreadable)."""
    try:
        data = json.loads(await asyncio.to_thread(file.read_text, encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        log.warning("old ratings file %s unreadable (%s); left as it is", file, exc)
        return False
    refused: dict[str, dict[str, object]] = {}  # JSON, as the old file held it
    for path, entry in data.items() if isinstance(data, dict) else ():
        for field_name, value in (("stars", entry.get("stars")), ("tags", entry.get("tags"))):
            if not value:
                continue
            try:
                if field_name == "stars":
                    await _settled(ratings.rate(path, value))
                else:
                    await _settled(ratings.set_tags(path, tuple(value)))
            except Exception as exc:  # noqa: BLE001 - an old rating the store refuses is kept in the file, logged
                log.info("old rating %s of %s not taken: %s", field_name, path, exc)
                refused.setdefault(path, {})[field_name] = value
    from stablenew.storage.atomic import atomic_write_text

    if refused:
        text = json.dumps(refused, indent=1, ensure_ascii=False)
        await asyncio.to_thread(atomic_write_text, file, text)
    else:
        await asyncio.to_thread(file.unlink, missing_ok=True)
    log.info("old ratings file handed to the learning store (%d left in it)", len(refused))
    return True


async def _settled(outcome: WriteOutcome | Exception) -> None:
    """Wait for a rating book's write (a Future, an awaitable or None); raises why it failed."""
    if isinstance(outcome, Exception):
        raise outcome
    if isinstance(outcome, concurrent.futures.Future):
        await asyncio.wrap_future(outcome)
    elif inspect.isawaitable(outcome):
        await outcome
