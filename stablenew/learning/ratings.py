"""RecordReader: the rating and tags of an image, read straight from the learning tables.

Its own module, with nothing but sqlite3, so every view can read ratings from the one place
they are kept (the learning store in stablenew.db) from the first moment, before the learning
room and its heavier imports have opened.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

__all__ = ["RecordReader"]


class RecordReader:
    """Quick lookups for the GUI thread on their own read-only connection: in WAL mode a
    reader never waits for the writer, so a gallery full of stars never queues behind writes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection | None:
        if self._db is None:
            if not self.path.exists():
                return None  # nothing recorded yet; try again next time
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=1.0)
        return self._db

    def rating(self, path: str | os.PathLike[str]) -> tuple[int | None, tuple[str, ...]]:
        """Rating and tags of the image at *path*; (None, ()) when it is not recorded."""
        with self._lock:
            try:
                db = self._connection()
                if db is None:
                    return None, ()
                row = db.execute("SELECT id, rating FROM learning_records WHERE path = ? "
                                 "ORDER BY id DESC LIMIT 1", (os.fspath(path),)).fetchone()
                if row is None:
                    return None, ()
                tags = tuple(r[0] for r in db.execute(
                    "SELECT tag FROM learning_tags WHERE record_id = ? ORDER BY tag", (row[0],)))
            except sqlite3.Error:  # no learning tables yet, or a busy file: show no stars
                return None, ()
            return row[1], tags

    def ratings(self, paths: list[str]) -> dict[str, tuple[int | None, tuple[str, ...]]]:
        """`rating` of each recorded path among *paths* in two queries (a gallery page of
        hundreds at once); paths not recorded are left out."""
        found: dict[str, tuple[int | None, tuple[str, ...]]] = {}
        with self._lock:
            try:
                db = self._connection()
                if db is None:
                    return found
                for start in range(0, len(paths), 500):
                    chunk = paths[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    latest = {path: (record_id, rating) for record_id, path, rating in db.execute(
                        f"SELECT id, path, rating FROM learning_records WHERE id IN (SELECT MAX(id) "
                        f"FROM learning_records WHERE path IN ({marks}) GROUP BY path)", chunk)}
                    tags: dict[int, list[str]] = {}
                    ids = [record_id for record_id, _ in latest.values()]
                    for record_id, tag in db.execute(
                            f"SELECT record_id, tag FROM learning_tags WHERE record_id IN "
                            f"({','.join('?' * len(ids))}) ORDER BY tag", ids):
                        tags.setdefault(record_id, []).append(tag)
                    found.update((path, (rating, tuple(tags.get(record_id, ()))))
                                 for path, (record_id, rating) in latest.items())
            except sqlite3.Error:  # no learning tables yet, or a busy file: show no stars
                return {}
        return found

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
