"""Collections: the gallery's virtual albums, kept in the index database (only there)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable


class CollectionsMixin:
    """The album methods of GalleryIndex (its connection and lock)."""

    _db: sqlite3.Connection
    _lock: threading.RLock

    def create_collection(self, name: str) -> int:
        name = name.strip()
        if not name:
            raise ValueError("A collection needs a name.")
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO gallery_collections (name, created_at) "
                             "VALUES (?, ?)", (name, time.time()))
            return int(self._db.execute("SELECT id FROM gallery_collections WHERE name = ?",
                                        (name,)).fetchone()[0])

    def collections(self) -> list[tuple[str, int]]:
        """Every collection's name and how many images (still indexed) it holds."""
        with self._lock:
            return [(r[0], r[1]) for r in self._db.execute(
                "SELECT c.name, COUNT(g.id) FROM gallery_collections c "
                "LEFT JOIN gallery_collection_items i ON i.collection_id = c.id "
                "LEFT JOIN gallery_images g ON g.id = i.image_id GROUP BY c.id ORDER BY c.name")]

    def add_to_collection(self, name: str, paths: Iterable[str | os.PathLike[str]]) -> int:
        """Put the indexed images at *paths* in the collection *name* (made if new)."""
        collection = self.create_collection(name)
        with self._lock:
            before = self._db.total_changes
            now = time.time()
            self._db.executemany(
                "INSERT OR IGNORE INTO gallery_collection_items "
                "SELECT ?, id, ? FROM gallery_images WHERE path = ?",
                [(collection, now, os.fspath(p)) for p in paths])
            return self._db.total_changes - before

    def remove_from_collection(self, name: str, paths: Iterable[str | os.PathLike[str]]) -> None:
        with self._lock:
            self._db.executemany(
                "DELETE FROM gallery_collection_items WHERE collection_id = "
                "(SELECT id FROM gallery_collections WHERE name = ?) AND image_id = "
                "(SELECT id FROM gallery_images WHERE path = ?)",
                [(name, os.fspath(p)) for p in paths])

    def delete_collection(self, name: str) -> None:
        """Forget the album; its images stay where they are."""
        with self._lock:
            self._db.execute("DELETE FROM gallery_collection_items WHERE collection_id = "
                             "(SELECT id FROM gallery_collections WHERE name = ?)", (name,))
            self._db.execute("DELETE FROM gallery_collections WHERE name = ?", (name,))
