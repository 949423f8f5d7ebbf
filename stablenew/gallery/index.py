"""GalleryIndex: every image under the user's folders in SQLite (WAL), kept current incrementally.

A scan stats every file and reads only the new or changed ones (keyed by path, size and mtime),
so a warm rescan of 100,000 images reads no image at all. Files gone from disk are dropped from
the index; their content hash is remembered, so when the same image turns up elsewhere (moved
outside the app) it keeps the path the learning store knows its rating and tags by. Ratings and
tags are never copied here: queries read them from the learning store's tables (attached
read-only), and the user's files are only ever read.

The index is a cache: deleting gallery.db loses nothing but the time to rebuild it (and the
collections, which live only here).

Since version 2 each image also carries a copy of its rating and tags (`rating`, `tags`), so
sorting and filtering by them walks an index instead of looking every image up in the learning
store (376 ms → a few ms at 100,000 images). The learning store stays the truth: a scan copies
its ratings over (`sync_marks`), the gallery writes each change here as well as there, and an
image the store does not know keeps the marks of its sidecar (see `gallery.sidecar`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stablenew.gallery.collections import CollectionsMixin
from stablenew.gallery.metadata import ImageFacts, content_hash, read_facts
from stablenew.gallery.sidecar import Marks, encode_tags, read_marks
from stablenew.gallery.walk import Problem, path_range, statements, walk
from stablenew.pipeline.infotext import ImageMetadataError
from stablenew.storage.paths import AppPaths
from stablenew.storage.sqlite import set_up_wal

SCHEMA_VERSION = 3
BATCH = 500  # images written per transaction while scanning

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gallery_schema_version (version INTEGER NOT NULL);
CREATE TABLE gallery_images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    run TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    mtime REAL NOT NULL,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    media TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
    prompt TEXT NOT NULL DEFAULT '',
    negative TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
    seed INTEGER,
    sampler TEXT NOT NULL DEFAULT '',
    steps INTEGER,
    cfg REAL,
    pack TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
    node TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
    source TEXT NOT NULL DEFAULT '',
    hash TEXT NOT NULL,
    -- the path the learning store knows this image by (its first path, if it was moved)
    rating_key TEXT NOT NULL
);
-- rating_key too, so a rating or tag filter checks it while walking the date order
CREATE INDEX gallery_images_mtime ON gallery_images(mtime, rating_key);
CREATE INDEX gallery_images_name ON gallery_images(name);
CREATE INDEX gallery_images_size ON gallery_images(size);
CREATE INDEX gallery_images_model ON gallery_images(model, mtime);
CREATE INDEX gallery_images_run ON gallery_images(run, mtime);
CREATE INDEX gallery_images_pack ON gallery_images(pack, mtime);
CREATE INDEX gallery_images_node ON gallery_images(node, mtime);
CREATE INDEX gallery_images_hash ON gallery_images(hash);
CREATE INDEX gallery_images_rating_key ON gallery_images(rating_key);

CREATE TABLE gallery_loras (
    name TEXT NOT NULL COLLATE NOCASE,
    image_id INTEGER NOT NULL,
    PRIMARY KEY (name, image_id)
) WITHOUT ROWID;
CREATE INDEX gallery_loras_image ON gallery_loras(image_id);

CREATE TABLE gallery_roots (path TEXT PRIMARY KEY, added_at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE gallery_problems (
    path TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    seen_at REAL NOT NULL
) WITHOUT ROWID;
-- images that left the disk: a file with the same hash showing up later is the same image
CREATE TABLE gallery_gone (
    old_id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    rating_key TEXT NOT NULL,
    gone_at REAL NOT NULL
);
CREATE INDEX gallery_gone_hash ON gallery_gone(hash);

CREATE TABLE gallery_collections (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE gallery_collection_items (
    collection_id INTEGER NOT NULL,
    image_id INTEGER NOT NULL,
    added_at REAL NOT NULL,
    PRIMARY KEY (collection_id, image_id)
) WITHOUT ROWID;
CREATE INDEX gallery_collection_items_image ON gallery_collection_items(image_id);
"""

_FTS = """
CREATE VIRTUAL TABLE gallery_fts USING fts5(
    name, prompt, negative, content='gallery_images', content_rowid='id');
CREATE TRIGGER gallery_fts_added AFTER INSERT ON gallery_images BEGIN
    INSERT INTO gallery_fts(rowid, name, prompt, negative)
    VALUES (NEW.id, NEW.name, NEW.prompt, NEW.negative);
END;
CREATE TRIGGER gallery_fts_removed AFTER DELETE ON gallery_images BEGIN
    INSERT INTO gallery_fts(gallery_fts, rowid, name, prompt, negative)
    VALUES ('delete', OLD.id, OLD.name, OLD.prompt, OLD.negative);
END;
CREATE TRIGGER gallery_fts_changed AFTER UPDATE OF name, prompt, negative ON gallery_images BEGIN
    INSERT INTO gallery_fts(gallery_fts, rowid, name, prompt, negative)
    VALUES ('delete', OLD.id, OLD.name, OLD.prompt, OLD.negative);
    INSERT INTO gallery_fts(rowid, name, prompt, negative)
    VALUES (NEW.id, NEW.name, NEW.prompt, NEW.negative);
END;
"""

_V2 = """
ALTER TABLE gallery_images ADD COLUMN rating INTEGER;
ALTER TABLE gallery_images ADD COLUMN tags TEXT NOT NULL DEFAULT '';
CREATE INDEX gallery_images_rating ON gallery_images(rating);
CREATE INDEX gallery_images_rated_first ON gallery_images(rating IS NULL, rating);
ALTER TABLE gallery_gone ADD COLUMN rating INTEGER;
ALTER TABLE gallery_gone ADD COLUMN tags TEXT NOT NULL DEFAULT ''
"""

#: Folders the gallery lists beside the output folder: added by the user, or a move's target.
_V3 = """
CREATE TABLE gallery_shown_folders (path TEXT PRIMARY KEY, added_at REAL NOT NULL) WITHOUT ROWID
"""

#: The newest learning record of each path, with its tags encoded as in `sidecar.encode_tags`.
_LEARNED = """
SELECT r.path AS path, r.rating AS rating,
       COALESCE((SELECT char(31) || group_concat(t.tag, char(31)) || char(31)
                 FROM learning.learning_tags t WHERE t.record_id = r.id), '') AS tags
FROM learning.learning_records r
WHERE r.id IN (SELECT MAX(id) FROM learning.learning_records GROUP BY path)
"""

#: The same for the one image at a path (bound twice: the learned record, then the image).
_ONE = """
SELECT r.rating AS rating,
       COALESCE((SELECT char(31) || group_concat(t.tag, char(31)) || char(31)
                 FROM learning.learning_tags t WHERE t.record_id = r.id), '') AS tags
FROM learning.learning_records r
WHERE r.path = (SELECT rating_key FROM gallery_images WHERE path = ?)
ORDER BY r.id DESC LIMIT 1
"""

_LEARNING_STUB = """
CREATE TABLE IF NOT EXISTS learning.learning_records (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, rating INTEGER);
CREATE TABLE IF NOT EXISTS learning.learning_tags (record_id INTEGER, tag TEXT);
"""


def has_fts5() -> bool:
    """True when this Python's SQLite was built with FTS5 (most are; a few distributions not)."""
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(a)")
    except sqlite3.OperationalError:
        return False
    return True


def default_index_path() -> Path:
    return AppPaths.default().data_dir / "gallery.db"


@dataclass
class ScanProgress:
    """How far a scan got: files looked at, images (re)read, unchanged ones, problems."""

    seen: int = 0
    read: int = 0
    unchanged: int = 0
    removed: int = 0
    moved: int = 0
    problems: list[Problem] = field(default_factory=list)
    current: str = ""
    done: bool = False
    cancelled: bool = False


class GalleryIndex(CollectionsMixin):
    """The gallery's SQLite index of images; safe to share between threads (one lock)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 learning_db: str | os.PathLike[str] | None = None,
                 use_fts: bool | None = None) -> None:
        self.path = Path(path) if path is not None else default_index_path()
        self.learning_db = Path(learning_db) if learning_db is not None else None
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._want_fts = has_fts5() if use_fts is None else use_fts
        set_up_wal(self._db, self._migrate, wait_s=10.0,
                   pragmas=("synchronous=NORMAL", "busy_timeout=10000", "cache_size=-32000"))
        self.fts = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'gallery_fts'").fetchone() is not None
        self._learning_attached = False
        self._attach_learning()

    def _migrate(self) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT name FROM sqlite_master WHERE name = "
                             "'gallery_schema_version'").fetchone()
            version = 0
            if row is not None:
                found = db.execute("SELECT version FROM gallery_schema_version").fetchone()
                version = found[0] if found else 0
            if version < 1:
                for statement in statements(_SCHEMA):
                    db.execute(statement)
                if self._want_fts:
                    for statement in statements(_FTS, split_triggers=True):
                        db.execute(statement)
            if version < 2:
                for statement in statements(_V2):
                    db.execute(statement)
            if version < 3:
                for statement in statements(_V3):
                    db.execute(statement)
                db.execute("DELETE FROM gallery_schema_version")
                db.execute("INSERT INTO gallery_schema_version VALUES (?)", (SCHEMA_VERSION,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _attach_learning(self) -> None:
        """Ratings and tags come from the learning store; with none yet, from empty stand-ins."""
        with self._lock:
            if self._learning_attached:
                return
            try:
                self._db.execute("DETACH DATABASE learning")
            except sqlite3.OperationalError:
                pass
            if self.learning_db is not None and self.learning_db.exists():
                uri = self.learning_db.resolve().as_uri() + "?mode=ro"
                try:
                    self._db.execute("ATTACH DATABASE ? AS learning", (uri,))
                    self._db.execute("SELECT 1 FROM learning.learning_records LIMIT 1")
                    self._db.execute("SELECT 1 FROM learning.learning_tags LIMIT 1")
                    self._learning_attached = True
                    return
                except sqlite3.Error:
                    try:
                        self._db.execute("DETACH DATABASE learning")
                    except sqlite3.OperationalError:
                        pass
            self._db.execute("ATTACH DATABASE ':memory:' AS learning")
            self._db.executescript(_LEARNING_STUB)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> GalleryIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, params: Iterable[object] = ()) -> list[sqlite3.Row]:
        """Run one read query under the lock (for `gallery.query`)."""
        with self._lock:
            self._attach_learning()
            return self._db.execute(sql, tuple(params)).fetchall()

    # --- folders ------------------------------------------------------------------------

    def add_root(self, folder: str | os.PathLike[str]) -> str:
        # Absolute but not resolved: paths stay as the user and the learning store name them
        # (an output folder reached through a link keeps its ratings); loops are caught by inode.
        root = os.path.abspath(os.path.expanduser(os.fspath(folder)))
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO gallery_roots VALUES (?, ?)", (root, time.time()))
        return root

    def roots(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT path FROM gallery_roots ORDER BY path")]

    def show_folder(self, folder: str | os.PathLike[str]) -> str:
        """List *folder* in the gallery beside the output folder from now on (and index it)."""
        root = self.add_root(folder)
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO gallery_shown_folders VALUES (?, ?)",
                             (root, time.time()))
        return root

    def shown_folders(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT path FROM gallery_shown_folders ORDER BY path")]

    def problems(self) -> list[Problem]:
        """The "could not read" list of the last scans."""
        with self._lock:
            return [Problem(r[0], r[1]) for r in self._db.execute(
                "SELECT path, reason FROM gallery_problems ORDER BY path")]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM gallery_images").fetchone()[0])

    # --- scanning -----------------------------------------------------------------------

    def scan(self, folder: str | os.PathLike[str], *,
             progress: Callable[[ScanProgress], None] | None = None,
             cancel: threading.Event | None = None, shallow: bool = False) -> ScanProgress:
        """Bring the index of *folder* up to date with the disk; returns what happened.

        New and changed images are read, unchanged ones only stat'ed; images gone from the
        folder are dropped (a cancelled scan drops nothing: it did not see everything).
        *shallow* scans the folder's own files only (a folder the watch saw change).
        """
        root = os.path.abspath(os.fspath(folder)) if shallow else self.add_root(folder)
        state = ScanProgress()
        with self._lock:
            known = {r[0]: (r[1], r[2]) for r in self._db.execute(
                "SELECT path, size, mtime_ns FROM gallery_images WHERE path > ? AND path < ?",
                path_range(root)) if not shallow or os.path.dirname(r[0]) == root}
            self._db.execute("DELETE FROM gallery_problems WHERE path = ? OR (path > ? AND path < ?)",
                             (root, *path_range(root)))
        seen: set[str] = set()
        batch: list[tuple[str, os.stat_result, ImageFacts | None, str]] = []
        last_report = 0.0
        for item in walk(root, state.problems, shallow=shallow):
            if cancel is not None and cancel.is_set():
                state.cancelled = True
                break
            if isinstance(item, Problem):
                continue
            path, st = item
            state.seen += 1
            seen.add(path)
            if known.get(path) == (st.st_size, st.st_mtime_ns):
                state.unchanged += 1
            else:
                state.current = path
                try:
                    facts = read_facts(Path(path))
                    facts.marks = read_marks(path)
                    digest = content_hash(path, st.st_size)
                except ImageMetadataError as exc:
                    state.problems.append(Problem(path, exc.message))
                    seen.discard(path)
                    continue
                except OSError as exc:
                    state.problems.append(Problem(path, f"could not be read ({exc.strerror or exc})"))
                    seen.discard(path)
                    continue
                except Exception as exc:  # noqa: BLE001 - a malformed file must not end the scan of the rest
                    state.problems.append(Problem(path, f"could not be read ({exc!r})"))
                    seen.discard(path)
                    continue
                batch.append((path, st, facts, digest))
                state.read += 1
                if len(batch) >= BATCH:
                    self._write(batch)
                    batch.clear()
            now = time.monotonic()
            if progress is not None and now - last_report > 0.1:
                last_report = now
                progress(state)
        self._write(batch)
        if not state.cancelled:
            gone = [p for p in known if p not in seen]
            state.removed, state.moved = self._forget(gone)
        self.sync_marks()
        self._record_problems(state.problems)
        state.done = True
        if progress is not None:
            progress(state)
        return state

    def index_file(self, path: str | os.PathLike[str]) -> Problem | None:
        """Add or refresh one image (a new output as it is saved); a Problem when unreadable."""
        file = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(file)
            facts = read_facts(Path(file))
            facts.marks = read_marks(file)
            digest = content_hash(file, st.st_size)
        except ImageMetadataError as exc:
            problem = Problem(file, exc.message)
        except OSError as exc:
            problem = Problem(file, f"could not be read ({exc.strerror or exc})")
        else:
            self._write([(file, st, facts, digest)])
            self.sync_marks(file)
            return None
        self._record_problems([problem])
        return problem

    def _write(self, batch: list[tuple[str, os.stat_result, ImageFacts | None, str]]) -> None:
        if not batch:
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for path, st, facts, digest in batch:
                    self._upsert(path, st, facts or ImageFacts(), digest)
                self._adopt([digest for *_, digest in batch])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _upsert(self, path: str, st: os.stat_result, f: ImageFacts, digest: str) -> None:
        db = self._db
        p = Path(path)
        values = (p.name, p.parent.name, st.st_size, st.st_mtime_ns, st.st_mtime, f.width,
                  f.height, f.media, f.prompt, f.negative, f.model, f.seed, f.sampler, f.steps,
                  f.cfg, f.pack, f.node, f.source, digest)
        row = db.execute("SELECT id FROM gallery_images WHERE path = ?", (path,)).fetchone()
        marks = f.marks
        if row is None:
            image_id = db.execute(
                "INSERT INTO gallery_images (name, run, size, mtime_ns, mtime, width, height, "
                "media, prompt, negative, model, seed, sampler, steps, cfg, pack, node, source, "
                "hash, path, rating_key, rating, tags) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (*values, path, path, marks.rating, encode_tags(marks.tags))).lastrowid
        else:
            image_id = row[0]
            db.execute(
                "UPDATE gallery_images SET name=?, run=?, size=?, mtime_ns=?, mtime=?, width=?, "
                "height=?, media=?, prompt=?, negative=?, model=?, seed=?, sampler=?, steps=?, "
                "cfg=?, pack=?, node=?, source=?, hash=? WHERE id = ?", (*values, image_id))
            if not marks.empty:
                db.execute("UPDATE gallery_images SET rating = ?, tags = ? WHERE id = ?",
                           (marks.rating, encode_tags(marks.tags), image_id))
            db.execute("DELETE FROM gallery_loras WHERE image_id = ?", (image_id,))
        db.executemany("INSERT OR IGNORE INTO gallery_loras VALUES (?, ?)",
                       [(name, image_id) for name in f.loras])
        db.execute("DELETE FROM gallery_problems WHERE path = ?", (path,))

    def _forget(self, paths: list[str]) -> tuple[int, int]:
        """Drop images no longer on disk; keep their hashes so a moved copy is known again.

        Returns (removed, moved): moved counts the images found again at a new path.
        """
        if not paths:
            return 0, 0
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                hashes = []
                for path in paths:
                    if os.path.lexists(path):
                        continue  # still there, only unreadable now: its problem says why
                    row = db.execute("SELECT id, hash, rating_key, rating, tags FROM "
                                     "gallery_images WHERE path = ?", (path,)).fetchone()
                    if row is None:
                        continue
                    db.execute("INSERT OR REPLACE INTO gallery_gone (old_id, hash, rating_key, "
                               "gone_at, rating, tags) VALUES (?, ?, ?, ?, ?, ?)",
                               (row[0], row[1], row[2], now, row[3], row[4]))
                    db.execute("DELETE FROM gallery_images WHERE id = ?", (row[0],))
                    db.execute("DELETE FROM gallery_loras WHERE image_id = ?", (row[0],))
                    hashes.append(row[1])
                moved = self._adopt(hashes)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return len(hashes), moved

    def _adopt(self, hashes: list[str]) -> int:
        """Images that reappeared (same hash as one gone) take over its rating key and albums."""
        db = self._db
        moved = 0
        for digest in dict.fromkeys(hashes):
            gone = db.execute("SELECT old_id, rating_key, rating, tags FROM gallery_gone "
                              "WHERE hash = ? "
                              "ORDER BY gone_at DESC", (digest,)).fetchall()
            if not gone:
                continue
            # the copy that has no history of its own yet, i.e. is known only by its own path
            heirs = db.execute("SELECT id FROM gallery_images WHERE hash = ? AND rating_key = path",
                               (digest,)).fetchall()
            for (old_id, key, rating, tags), (new_id,) in zip(gone, heirs, strict=False):
                # the marks come along unless the file brought its own (its sidecar)
                db.execute("UPDATE gallery_images SET rating_key = ?, "
                           "rating = COALESCE(rating, ?), tags = CASE tags WHEN '' THEN ? "
                           "ELSE tags END WHERE id = ?", (key, rating, tags, new_id))
                db.execute("UPDATE OR IGNORE gallery_collection_items SET image_id = ? "
                           "WHERE image_id = ?", (new_id, old_id))
                db.execute("DELETE FROM gallery_gone WHERE old_id = ?", (old_id,))
                moved += 1
        return moved

    # --- ratings and tags (a copy of the learning store's, for sorting and filtering) -------

    def sync_marks(self, path: str | None = None) -> int:
        """Copy the learning store's ratings and tags onto the images it knows (of *path* alone,
        or of all); images it does not know keep theirs. Returns how many changed."""
        with self._lock:
            self._attach_learning()
            before = self._db.total_changes
            if path is None:
                self._db.execute(
                    f"UPDATE gallery_images SET rating = s.rating, tags = s.tags FROM ({_LEARNED}) s "
                    "WHERE gallery_images.rating_key = s.path AND "
                    "(gallery_images.rating IS NOT s.rating OR gallery_images.tags IS NOT s.tags)")
            else:  # one new output: its own records only, not a pass over the whole store
                self._db.execute(
                    f"UPDATE gallery_images SET rating = s.rating, tags = s.tags FROM ({_ONE}) s "
                    "WHERE gallery_images.path = ?", (path, path))
            return self._db.total_changes - before

    def set_marks(self, key: str, marks: Marks) -> int:
        """The rating and tags the user just gave the image known by *key* (its path or the
        path its rating is kept under); returns how many rows changed. An image rated at its
        own path (after a move) is known by that path from now on: the store has a record
        of it there, newer than the one it followed."""
        with self._lock:
            before = self._db.total_changes
            self._db.execute("UPDATE gallery_images SET rating = ?, tags = ?, rating_key = "
                             "CASE WHEN path = ? THEN path ELSE rating_key END "
                             "WHERE path = ? OR rating_key = ?",
                             (marks.rating, encode_tags(marks.tags), key, key, key))
            return self._db.total_changes - before

    def moved(self, old: str, new: str) -> None:
        """The app moved an image: same row, new path; its rating key and albums stay."""
        p = Path(new)
        with self._lock:
            self._db.execute("UPDATE OR IGNORE gallery_images SET path = ?, name = ?, run = ? "
                             "WHERE path = ?", (new, p.name, p.parent.name, old))

    def remove(self, paths: Iterable[str]) -> None:
        """Images the app sent to the trash: out of the index (and its albums) now."""
        with self._lock:
            for path in paths:
                row = self._db.execute("SELECT id FROM gallery_images WHERE path = ?",
                                       (path,)).fetchone()
                if row is None:
                    continue
                self._db.execute("DELETE FROM gallery_images WHERE id = ?", (row[0],))
                self._db.execute("DELETE FROM gallery_loras WHERE image_id = ?", (row[0],))
                self._db.execute("DELETE FROM gallery_collection_items WHERE image_id = ?",
                                 (row[0],))

    def _record_problems(self, problems: list[Problem]) -> None:
        if not problems:
            return
        with self._lock:
            now = time.time()
            self._db.executemany("INSERT OR REPLACE INTO gallery_problems VALUES (?, ?, ?)",
                                 [(p.path, p.reason, now) for p in problems])
