"""The catalog's SQLite cache (WAL): entries keyed by path + size + mtime, hashes, scanned folders.

A cache only: deleting the file loses nothing but the time to read the folders and hash the
files again. Entries also carry a signature of their sidecars and previews, so editing a
`.json` beside a LoRA re-reads it; hashes depend on the model file alone.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from stablenew.catalog.entry import ModelEntry
from stablenew.errors import StableNewError
from stablenew.storage.sqlite import DatabaseUnusable, open_database

_SCHEMA_VERSION = 1


class CatalogCacheError(StableNewError):
    """The cache database cannot be opened or used."""


@dataclass(frozen=True)
class CachedRow:
    """One cached entry and the file state it was read from."""

    size: int
    mtime_ns: int
    side_sig: str
    data: str


class CatalogCache:
    """Entries, hashes and scanned folders in one SQLite file; safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self._db = open_database(self.path, self._set_up, what="model catalog cache")
        except DatabaseUnusable as exc:
            raise CatalogCacheError(
                f"{exc.message} Or delete it: StableNew then reads your model folders again "
                "(nothing else is lost).", detail=exc.detail) from exc

    def _set_up(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._migrate()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == _SCHEMA_VERSION:
            return
        self._db.executescript(f"""
            BEGIN;
            DROP TABLE IF EXISTS entries;
            DROP TABLE IF EXISTS hashes;
            CREATE TABLE entries (path TEXT PRIMARY KEY, root TEXT NOT NULL, size INTEGER NOT NULL,
                                  mtime_ns INTEGER NOT NULL, side_sig TEXT NOT NULL, data TEXT NOT NULL);
            CREATE INDEX entries_root ON entries(root);
            CREATE TABLE hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                                 lora_hash TEXT, sha256 TEXT);
            CREATE TABLE IF NOT EXISTS roots (root TEXT PRIMARY KEY, kind TEXT NOT NULL);
            PRAGMA user_version = {_SCHEMA_VERSION};
            COMMIT;
        """)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- entries ---

    def rows_under(self, root: str) -> dict[str, CachedRow]:
        with self._lock:
            rows = self._db.execute("SELECT path, size, mtime_ns, side_sig, data FROM entries WHERE root = ?",
                                    (root,)).fetchall()
        return {p: CachedRow(s, m, sig, d) for p, s, m, sig, d in rows}

    def store(self, root: str, entries: Iterable[tuple[ModelEntry, str]],
              removed: Iterable[str] = ()) -> None:
        """Write (entry, sidecar signature) pairs and forget *removed* paths, in one transaction."""
        rows = [(e.path, root, e.size, e.mtime_ns, sig, json.dumps(e.to_json(), ensure_ascii=False))
                for e, sig in entries]
        gone = [(p,) for p in removed]
        if not rows and not gone:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)", rows)
                self._db.executemany("DELETE FROM entries WHERE path = ?", gone)
                self._db.executemany("DELETE FROM hashes WHERE path = ?", gone)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # --- hashes ---

    def hashes_under(self, root: str) -> dict[str, tuple[int, int, str | None, str | None]]:
        prefix = root.rstrip("/\\")
        with self._lock:
            rows = self._db.execute(
                "SELECT h.path, h.size, h.mtime_ns, h.lora_hash, h.sha256 FROM hashes h "
                "JOIN entries e ON e.path = h.path WHERE e.root = ?", (prefix,)).fetchall()
        return {p: (s, m, lh, sh) for p, s, m, lh, sh in rows}

    def store_hashes(self, path: str, size: int, mtime_ns: int, lora_hash: str | None, sha256: str | None
                     ) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)",
                             (path, size, mtime_ns, lora_hash, sha256))

    # --- scanned folders ---

    def remember_root(self, root: str, kind: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO roots VALUES (?, ?)", (root, kind))

    def roots(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(r, k) for r, k in self._db.execute("SELECT root, kind FROM roots ORDER BY root")]


def default_cache_path() -> Path:
    """`catalog.db` in StableNew's data folder (beside, not inside, the main database)."""
    from stablenew.storage.paths import AppPaths

    return AppPaths.default().data_dir / "catalog.db"
