"""LearningStore: learning records, ratings, tags and learning runs in SQLite (WAL).

The database file is shared with the queue, so every table here is named `learning_*` and
the schema version lives in its own table, `learning_schema_version`.

Insights must stay fast with hundreds of thousands of records, so the store keeps running
aggregates instead of scanning: each record's parameter values are denormalised into
`learning_params` (one row per record and parameter), and triggers maintain
`learning_stats` (count, sum and sum of squares of ratings per pack, parameter and value)
and `learning_tag_stats` in the same transaction as every write. Reading insights is then a
read of a few hundred aggregate rows, however many records there are; `rebuild_stats()`
recomputes them from scratch (used after migrations and by the consistency tests).

The store is synchronous and thread-safe; the GUI never calls it on the Qt thread but through
`StoreWorker`, a single writer thread with an asyncio face.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from stablenew.learning.errors import LearningStoreError, RecordNotFound
from stablenew.learning.parameters import parameter_values
from stablenew.learning.records import LearningRecord, check_rating, clean_tag, config_hash
from stablenew.pipeline.config import MAX_SEED, PipelineConfig, migrate_config
from stablenew.storage.paths import AppPaths
from stablenew.storage.sqlite import DatabaseUnusable, open_database

# 1: first layout, the full config JSON in every record.
# 2: settings shared by a batch stored once (learning_settings); run index covers pack/rating.
SCHEMA_VERSION = 2
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS learning_schema_version (version INTEGER NOT NULL);

CREATE TABLE learning_records (
    id INTEGER PRIMARY KEY,
    record_key TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL,
    image_index INTEGER NOT NULL,
    pack TEXT NOT NULL DEFAULT '',
    preset TEXT,
    prompt TEXT NOT NULL DEFAULT '',
    negative_prompt TEXT NOT NULL DEFAULT '',
    settings_hash TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    seed INTEGER NOT NULL,
    stages TEXT NOT NULL DEFAULT '[]',
    node TEXT NOT NULL DEFAULT '',
    node_kind TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL,
    thumbnail TEXT,
    timings_json TEXT NOT NULL DEFAULT '{}',
    warnings_json TEXT NOT NULL DEFAULT '[]',
    rating INTEGER CHECK (rating IS NULL OR rating BETWEEN 1 AND 5),
    note TEXT NOT NULL DEFAULT '',
    learning_run_id TEXT,
    variant_id TEXT,
    variant_label TEXT,
    job_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX learning_records_path ON learning_records(path);
CREATE INDEX learning_records_pack ON learning_records(pack, rating);
CREATE INDEX learning_records_run ON learning_records(learning_run_id, pack, rating)
    WHERE learning_run_id IS NOT NULL;
CREATE INDEX learning_records_created ON learning_records(created_at);

-- Settings shared by many images (a batch, a learning-run column) are stored once: the
-- config without its seed and prompts, which each record keeps in its own columns.
CREATE TABLE learning_settings (
    hash TEXT PRIMARY KEY,
    config_json TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE learning_params (
    record_id INTEGER NOT NULL,
    param TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (record_id, param)
) WITHOUT ROWID;
CREATE INDEX learning_params_value ON learning_params(param, value);

CREATE TABLE learning_tags (
    record_id INTEGER NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (record_id, tag)
) WITHOUT ROWID;

CREATE TABLE learning_stats (
    pack TEXT NOT NULL,
    param TEXT NOT NULL,
    value TEXT NOT NULL,
    n INTEGER NOT NULL,
    total REAL NOT NULL,
    total_sq REAL NOT NULL,
    PRIMARY KEY (pack, param, value)
) WITHOUT ROWID;

CREATE TABLE learning_tag_stats (
    pack TEXT NOT NULL,
    tag TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (pack, tag)
) WITHOUT ROWID;

CREATE TABLE learning_runs (
    id TEXT PRIMARY KEY,
    pack TEXT NOT NULL DEFAULT '',
    parameter TEXT NOT NULL,
    status TEXT NOT NULL,
    result_json TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

CREATE TRIGGER learning_params_added AFTER INSERT ON learning_params
WHEN (SELECT rating FROM learning_records WHERE id = NEW.record_id) IS NOT NULL
BEGIN
    INSERT INTO learning_stats (pack, param, value, n, total, total_sq)
    SELECT r.pack, NEW.param, NEW.value, 1, r.rating, r.rating * r.rating
    FROM learning_records r WHERE r.id = NEW.record_id
    ON CONFLICT (pack, param, value) DO UPDATE SET
        n = n + 1, total = total + excluded.total, total_sq = total_sq + excluded.total_sq;
END;

CREATE TRIGGER learning_params_removed AFTER DELETE ON learning_params
WHEN (SELECT rating FROM learning_records WHERE id = OLD.record_id) IS NOT NULL
BEGIN
    UPDATE learning_stats SET
        n = n - 1,
        total = total - (SELECT rating FROM learning_records WHERE id = OLD.record_id),
        total_sq = total_sq - (SELECT rating * rating FROM learning_records WHERE id = OLD.record_id)
    WHERE pack = (SELECT pack FROM learning_records WHERE id = OLD.record_id)
      AND param = OLD.param AND value = OLD.value;
END;

CREATE TRIGGER learning_records_rated AFTER UPDATE OF rating ON learning_records
WHEN OLD.rating IS NOT NEW.rating
BEGIN
    UPDATE learning_stats SET
        n = n - 1, total = total - OLD.rating, total_sq = total_sq - OLD.rating * OLD.rating
    WHERE OLD.rating IS NOT NULL AND pack = OLD.pack
      AND (param, value) IN (SELECT param, value FROM learning_params WHERE record_id = OLD.id);
    INSERT INTO learning_stats (pack, param, value, n, total, total_sq)
    SELECT NEW.pack, p.param, p.value, 1, NEW.rating, NEW.rating * NEW.rating
    FROM learning_params p WHERE p.record_id = NEW.id AND NEW.rating IS NOT NULL
    ON CONFLICT (pack, param, value) DO UPDATE SET
        n = n + 1, total = total + excluded.total, total_sq = total_sq + excluded.total_sq;
END;

CREATE TRIGGER learning_tags_added AFTER INSERT ON learning_tags
BEGIN
    INSERT INTO learning_tag_stats (pack, tag, n)
    SELECT r.pack, NEW.tag, 1 FROM learning_records r WHERE r.id = NEW.record_id
    ON CONFLICT (pack, tag) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER learning_tags_removed AFTER DELETE ON learning_tags
BEGIN
    UPDATE learning_tag_stats SET n = n - 1
    WHERE tag = OLD.tag AND pack = (SELECT pack FROM learning_records WHERE id = OLD.record_id);
END;

CREATE TRIGGER learning_records_removed BEFORE DELETE ON learning_records
BEGIN
    DELETE FROM learning_params WHERE record_id = OLD.id;
    DELETE FROM learning_tags WHERE record_id = OLD.id;
END;
"""

_RECORD_COLUMNS = (
    "record_key, run_id, image_index, pack, preset, prompt, negative_prompt, settings_hash, "
    "config_hash, seed, stages, node, node_kind, path, thumbnail, timings_json, warnings_json, "
    "rating, note, learning_run_id, variant_id, variant_label, job_id, created_at, updated_at"
)
_SELECT_RECORD = (f"SELECT id, {_RECORD_COLUMNS}, config_json FROM learning_records "
                  "LEFT JOIN learning_settings ON hash = settings_hash")


@dataclass(frozen=True)
class ValueStats:
    """Ratings of the images that ran with one value of one parameter (in one pack or all)."""

    param: str
    value: str
    n: int
    total: float
    total_sq: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0


@dataclass(frozen=True)
class StoreSummary:
    records: int
    rated: int
    packs: tuple[str, ...]


def default_database() -> Path:
    return AppPaths.default().database_file


class LearningStore:
    """The learning tables of StableNew's database; every method is one transaction."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_database()
        self._lock = threading.RLock()
        try:
            # Big batches (imports, rebuilds) stay in memory instead of spilling to the WAL early.
            self._db = open_database(self.path, self._set_up, what="learning database",
                                     pragmas=("cache_size=-32000",))
        except DatabaseUnusable as exc:
            raise LearningStoreError(exc.message, detail=exc.detail) from exc

    def _set_up(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._migrate()

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> LearningStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    # --- schema -------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._lock:
            return _read_version(self._db)

    def _migrate(self) -> None:
        with self._write():
            version = _read_version(self._db)
            if version > SCHEMA_VERSION:
                raise LearningStoreError(
                    f"The learning database was written by a newer StableNew (learning schema "
                    f"{version}; this one knows up to {SCHEMA_VERSION}). Update StableNew.",
                    detail=f"{self.path}: learning_schema_version={version}")
            if version == SCHEMA_VERSION:
                return
            if version == -1:  # no learning tables yet
                _create_schema(self._db)
            elif version == 0:
                _migrate_v0(self._db)
            elif version == 1:
                _migrate_v1_to_v2(self._db)
            self._db.execute("DELETE FROM learning_schema_version")
            self._db.execute("INSERT INTO learning_schema_version (version) VALUES (?)",
                             (SCHEMA_VERSION,))

    # --- writing records ----------------------------------------------------------------

    def add_record(self, record: LearningRecord) -> LearningRecord:
        """Store a new image, or refresh a known one (same record_key) keeping its rating,
        tags and note. Returns the record as stored (with its id)."""
        with self._write():
            return self._upsert(record)

    def add_records(self, records: Iterable[LearningRecord]) -> int:
        """Store many records in one transaction; returns how many were written.

        New records take a batched path (one insert each, their parameter and tag rows in
        one `executemany`); known ones are refreshed like `add_record`.
        """
        count = 0
        params: list[tuple[int, str, str]] = []
        tags: list[tuple[int, str]] = []
        insert = (f"INSERT INTO learning_records ({_RECORD_COLUMNS}) VALUES "
                  f"({', '.join('?' * len(_RECORD_COLUMNS.split(',')))}) "
                  "ON CONFLICT (record_key) DO NOTHING RETURNING id")
        with self._write():
            for record in records:
                now = record.updated_at or time.time()
                row = self._db.execute(insert, self._values(record, now)).fetchone()
                if row is None:  # known already: refresh it, keeping the user's rating
                    self._upsert(record)
                else:
                    record_id = int(row[0])
                    params += [(record_id, k, v) for k, v in record.parameter_values().items()]
                    tags += [(record_id, t) for t in _clean_tags(record.tags)]
                count += 1
                if len(params) > 20_000:
                    self._flush_derived(params, tags)
            self._flush_derived(params, tags)
        return count

    def _flush_derived(self, params: list[tuple[int, str, str]], tags: list[tuple[int, str]]) -> None:
        self._db.executemany("INSERT INTO learning_params (record_id, param, value) VALUES (?, ?, ?)",
                             params)
        self._db.executemany("INSERT OR IGNORE INTO learning_tags (record_id, tag) VALUES (?, ?)", tags)
        params.clear()
        tags.clear()

    def _values(self, record: LearningRecord, now: float) -> tuple[Any, ...]:
        """The record's column values, its shared settings stored (once) on the way."""
        digest, text = settings_of(record.config)
        self._db.execute("INSERT OR IGNORE INTO learning_settings (hash, config_json) VALUES (?, ?)",
                         (digest, text))
        return _record_values(record, digest, now)

    def _upsert(self, record: LearningRecord) -> LearningRecord:
        db = self._db
        now = record.updated_at or time.time()
        row = db.execute("SELECT id, rating, note FROM learning_records WHERE record_key = ?",
                         (record.record_key,)).fetchone()
        values = self._values(record, now)
        if row is None:
            cur = db.execute(
                f"INSERT INTO learning_records ({_RECORD_COLUMNS}) VALUES "
                f"({', '.join('?' * len(values))})", values)
            assert cur.lastrowid is not None  # an INSERT into a rowid table always sets it
            record_id = cur.lastrowid
            tags = _clean_tags(record.tags)
            stored = replace(record, id=record_id, tags=tags, updated_at=now)
        else:
            record_id = int(row["id"])
            tags = tuple(r[0] for r in db.execute(
                "SELECT tag FROM learning_tags WHERE record_id = ? ORDER BY tag", (record_id,)))
            # Remove derived rows first so the triggers subtract them from the old pack.
            db.execute("DELETE FROM learning_params WHERE record_id = ?", (record_id,))
            db.execute("DELETE FROM learning_tags WHERE record_id = ?", (record_id,))
            keep = ("rating", "note", "created_at")
            names = [c.strip() for c in _RECORD_COLUMNS.split(",")]
            sets = [(n, v) for n, v in zip(names, values, strict=True) if n not in keep]
            db.execute(
                f"UPDATE learning_records SET {', '.join(f'{n} = ?' for n, _ in sets)} WHERE id = ?",
                [v for _, v in sets] + [record_id])
            stored = replace(record, id=record_id, tags=tags, rating=row["rating"],
                             note=row["note"], updated_at=now)
        db.executemany("INSERT INTO learning_params (record_id, param, value) VALUES (?, ?, ?)",
                       [(record_id, k, v) for k, v in record.parameter_values().items()])
        db.executemany("INSERT OR IGNORE INTO learning_tags (record_id, tag) VALUES (?, ?)",
                       [(record_id, t) for t in tags])
        return stored

    # --- finding records ----------------------------------------------------------------

    def find_id(self, ref: int | str | os.PathLike[str]) -> int:
        """The id of a record named by id, record_key or image path; RecordNotFound if none."""
        with self._lock:
            row = None
            if isinstance(ref, bool):
                # True is an int to Python: never look it up as record 1 (a caller's mistake).
                raise TypeError(f"a record is named by id, key or path, not by {ref!r}")
            if isinstance(ref, int):
                row = self._db.execute("SELECT id FROM learning_records WHERE id = ?",
                                       (ref,)).fetchone()
            else:
                text = os.fspath(ref)
                row = self._db.execute(
                    "SELECT id FROM learning_records WHERE path = ? OR record_key = ? "
                    "ORDER BY id DESC LIMIT 1", (text, text)).fetchone()
                if row is None and not isinstance(ref, str):
                    row = self._db.execute(
                        "SELECT id FROM learning_records WHERE path = ? ORDER BY id DESC LIMIT 1",
                        (str(Path(ref).resolve()),)).fetchone()
        if row is None:
            raise RecordNotFound(
                "StableNew has no learning record for this image (it may have been made while "
                "learning was off).", detail=f"ref={ref!r}")
        return int(row[0])

    def get(self, ref: int | str | os.PathLike[str]) -> LearningRecord:
        record_id = self.find_id(ref)
        with self._lock:
            row = self._db.execute(f"{_SELECT_RECORD} WHERE id = ?", (record_id,)).fetchone()
            return self._to_record(row)

    def records(self, *, pack: str | None = None, learning_run_id: str | None = None,
                rated_only: bool = False, limit: int | None = None) -> list[LearningRecord]:
        return list(self.iter_records(pack=pack, learning_run_id=learning_run_id,
                                      rated_only=rated_only, limit=limit))

    def iter_records(self, *, pack: str | None = None, learning_run_id: str | None = None,
                     rated_only: bool = False, limit: int | None = None,
                     batch: int = 500) -> Iterator[LearningRecord]:
        """Records oldest first, read in batches so an export of many does not hold the lock."""
        where, args = [], []
        if pack is not None:
            where.append("pack = ?")
            args.append(pack)
        if learning_run_id is not None:
            where.append("learning_run_id = ?")
            args.append(learning_run_id)
        if rated_only:
            where.append("rating IS NOT NULL")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        last_id, left = 0, limit
        while left is None or left > 0:
            size = batch if left is None else min(batch, left)
            with self._lock:
                rows = self._db.execute(
                    f"{_SELECT_RECORD}{clause}{' AND' if where else ' WHERE'} id > ? "
                    f"ORDER BY id LIMIT ?", [*args, last_id, size]).fetchall()
                found = [self._to_record(r) for r in rows]
            yield from found
            if len(rows) < size:
                return
            last_id = rows[-1]["id"]
            if left is not None:
                left -= len(rows)

    def _to_record(self, row: sqlite3.Row) -> LearningRecord:
        tags = tuple(r[0] for r in self._db.execute(
            "SELECT tag FROM learning_tags WHERE record_id = ? ORDER BY tag", (row["id"],)))
        warnings = tuple(json.loads(row["warnings_json"] or "[]"))
        try:
            config = config_from_settings(row["config_json"], seed=row["seed"],
                                          prompt=row["prompt"], negative=row["negative_prompt"])
        except (ValueError, ValidationError, TypeError, KeyError) as exc:
            # Kept rather than dropped: the rating and the image path are still worth having.
            config = PipelineConfig()
            warnings += (f"The stored settings of this image could not be read ({exc}).",)
        return LearningRecord(
            id=row["id"], record_key=row["record_key"], run_id=row["run_id"],
            image_index=row["image_index"], pack=row["pack"] or None, preset=row["preset"],
            config=config, config_hash=row["config_hash"], seed=row["seed"],
            stages=tuple(json.loads(row["stages"] or "[]")), node=row["node"],
            node_kind=row["node_kind"], path=row["path"], thumbnail=row["thumbnail"],
            timings=json.loads(row["timings_json"] or "{}"), warnings=warnings,
            rating=row["rating"], tags=tags, note=row["note"],
            learning_run_id=row["learning_run_id"], variant_id=row["variant_id"],
            variant_label=row["variant_label"], job_id=row["job_id"],
            created_at=row["created_at"], updated_at=row["updated_at"])

    # --- ratings, tags, notes -----------------------------------------------------------

    def rate(self, ref: int | str | os.PathLike[str], stars: int | None) -> LearningRecord:
        """Set (1–5) or clear (None or 0) the rating of one image."""
        stars = check_rating(stars)
        record_id = self.find_id(ref)
        with self._write():
            self._db.execute("UPDATE learning_records SET rating = ?, updated_at = ? WHERE id = ?",
                             (stars, time.time(), record_id))
        return self.get(record_id)

    def tag(self, ref: int | str | os.PathLike[str], tag: str, *, on: bool = True) -> LearningRecord:
        """Add (on) or remove one tag; tags are kept in lower case."""
        text = clean_tag(tag)
        record_id = self.find_id(ref)
        with self._write():
            if on:
                self._db.execute("INSERT OR IGNORE INTO learning_tags (record_id, tag) VALUES (?, ?)",
                                 (record_id, text))
            else:
                self._db.execute("DELETE FROM learning_tags WHERE record_id = ? AND tag = ?",
                                 (record_id, text))
            self._db.execute("UPDATE learning_records SET updated_at = ? WHERE id = ?",
                             (time.time(), record_id))
        return self.get(record_id)

    def set_note(self, ref: int | str | os.PathLike[str], note: str) -> LearningRecord:
        from stablenew.learning.records import MAX_NOTE_LENGTH

        if len(note) > MAX_NOTE_LENGTH:
            raise LearningStoreError(f"A note can be at most {MAX_NOTE_LENGTH} characters long.")
        record_id = self.find_id(ref)
        with self._write():
            self._db.execute("UPDATE learning_records SET note = ?, updated_at = ? WHERE id = ?",
                             (note, time.time(), record_id))
        return self.get(record_id)

    def delete(self, ref: int | str | os.PathLike[str]) -> None:
        record_id = self.find_id(ref)
        with self._write():
            self._db.execute("DELETE FROM learning_records WHERE id = ?", (record_id,))

    # --- aggregates ---------------------------------------------------------------------

    def stats(self, pack: str | None = None, param: str | None = None) -> list[ValueStats]:
        """Rating aggregates per parameter value, for one pack or (None) all packs together."""
        where, args = ["n > 0"], []
        if pack is not None:
            where.append("pack = ?")
            args.append(pack or "")
        if param is not None:
            where.append("param = ?")
            args.append(param)
        sql = (f"SELECT param, value, SUM(n), SUM(total), SUM(total_sq) FROM learning_stats "
               f"WHERE {' AND '.join(where)} GROUP BY param, value")
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [ValueStats(r[0], r[1], int(r[2]), float(r[3]), float(r[4])) for r in rows]

    def tag_counts(self, pack: str | None = None) -> dict[str, int]:
        sql = "SELECT tag, SUM(n) FROM learning_tag_stats WHERE n > 0"
        args: list[Any] = []
        if pack is not None:
            sql += " AND pack = ?"
            args.append(pack or "")
        with self._lock:
            rows = self._db.execute(sql + " GROUP BY tag ORDER BY SUM(n) DESC, tag", args).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def packs(self) -> list[str]:
        """Packs that have records ("" stands for images made without a pack)."""
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT DISTINCT pack FROM learning_records ORDER BY pack")]

    def summary(self) -> StoreSummary:
        with self._lock:
            total, rated = self._db.execute(
                "SELECT COUNT(*), COUNT(rating) FROM learning_records").fetchone()
        return StoreSummary(int(total), int(rated), tuple(self.packs()))

    def rebuild_stats(self) -> None:
        """Recompute the aggregate tables from the records (after a migration or a repair)."""
        with self._write():
            _rebuild_stats(self._db)

    def fair_stats(self, pack: str | None = None) -> list[ValueStats]:
        """Rating aggregates of learning-run images, for the setting each run varied only:
        the fair comparisons, in which nothing else differed between the images."""
        sql = ("SELECT p.param, p.value, COUNT(*), SUM(r.rating), SUM(r.rating * r.rating) "
               # CROSS JOIN fixes the order: the few runs first, then their images by index.
               "FROM learning_runs lr "
               "CROSS JOIN learning_records r ON r.learning_run_id = lr.id "
               "CROSS JOIN learning_params p ON p.record_id = r.id AND p.param = lr.parameter "
               "WHERE r.rating IS NOT NULL")
        args: list[Any] = []
        if pack is not None:
            sql += " AND r.pack = ?"
            args.append(pack or "")
        with self._lock:
            rows = self._db.execute(sql + " GROUP BY p.param, p.value", args).fetchall()
        return [ValueStats(r[0], r[1], int(r[2]), float(r[3]), float(r[4])) for r in rows]

    def stats_from_scratch(self, pack: str | None = None) -> list[ValueStats]:
        """The same numbers as `stats`, computed by a full GROUP BY (for checks and benchmarks)."""
        sql = ("SELECT p.param, p.value, COUNT(*), SUM(r.rating), SUM(r.rating * r.rating) "
               "FROM learning_params p JOIN learning_records r ON r.id = p.record_id "
               "WHERE r.rating IS NOT NULL")
        args: list[Any] = []
        if pack is not None:
            sql += " AND r.pack = ?"
            args.append(pack or "")
        with self._lock:
            rows = self._db.execute(sql + " GROUP BY p.param, p.value", args).fetchall()
        return [ValueStats(r[0], r[1], int(r[2]), float(r[3]), float(r[4])) for r in rows]

    # --- learning runs ------------------------------------------------------------------

    def save_run(self, run_id: str, *, pack: str | None, parameter: str, status: str,
                 result: dict[str, Any]) -> None:
        now = time.time()
        with self._write():
            self._db.execute(
                "INSERT INTO learning_runs (id, pack, parameter, status, result_json, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "status = excluded.status, result_json = excluded.result_json, "
                "updated_at = excluded.updated_at",
                (run_id, pack or "", parameter, status, json.dumps(result), now, now))

    def load_run(self, run_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT result_json FROM learning_runs WHERE id = ?",
                                   (run_id,)).fetchone()
        if row is None:
            raise RecordNotFound("StableNew has no learning run with this id.", detail=run_id)
        return json.loads(row[0])

    def runs(self) -> list[tuple[str, str, str, str, float]]:
        """(id, pack, parameter, status, created_at) of every learning run, newest first."""
        with self._lock:
            return [tuple(r) for r in self._db.execute(
                "SELECT id, pack, parameter, status, created_at FROM learning_runs "
                "ORDER BY created_at DESC")]

    # Raw access for the benchmark's baseline query and for migrations tests.
    def execute(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT under the store's lock; rolls back on any error."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db, self._lock, self._outer = db, lock, False

    def __enter__(self) -> None:
        self._lock.acquire()
        self._outer = not self._db.in_transaction
        if self._outer:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._lock.release()
                raise _store_error(exc) from exc

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> None:
        try:
            if self._outer:
                if kind is None:
                    try:
                        self._db.execute("COMMIT")
                    except sqlite3.Error as err:
                        self._db.execute("ROLLBACK")
                        raise _store_error(err) from err
                else:
                    self._db.execute("ROLLBACK")
        finally:
            self._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise _store_error(exc) from exc


def _store_error(exc: sqlite3.Error) -> LearningStoreError:
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return LearningStoreError("The learning database is busy (another StableNew may be "
                                  "writing to it). Try again in a moment.", detail=repr(exc))
    if isinstance(exc, sqlite3.OperationalError) and "disk" in str(exc).lower():
        return LearningStoreError("The disk is full or unwritable, so the rating was not saved. "
                                  "Free some space and try again.", detail=repr(exc))
    return LearningStoreError("The learning database could not be written.", detail=repr(exc))


def _read_version(db: sqlite3.Connection) -> int:
    """-1: no learning tables; 0: the draft layout without a version table; else the version."""
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "learning_schema_version" in names:
        row = db.execute("SELECT MAX(version) FROM learning_schema_version").fetchone()
        if row and row[0] is not None:
            return int(row[0])
    if "learning_records" in names:
        return 0
    return -1


_PER_IMAGE = {"txt2img": {"seed", "prompt", "negative_prompt"}}


def settings_of(config: PipelineConfig) -> tuple[str, str]:
    """(hash, JSON) of a config without its seed and prompts: what a batch has in common."""
    # pydantic's own serializer: fields in model order, so equal settings give equal text.
    raw = config.model_dump_json(exclude=_PER_IMAGE)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32], raw


def config_from_settings(text: str | None, *, seed: int, prompt: str, negative: str) -> PipelineConfig:
    """The full config of one record from its shared settings and its own seed and prompts."""
    data = migrate_config(json.loads(text or "null"))
    t2i = data["txt2img"]
    t2i["seed"], t2i["prompt"], t2i["negative_prompt"] = seed, prompt, negative
    return PipelineConfig.model_validate(data)


def _record_values(record: LearningRecord, settings_hash: str, now: float) -> tuple[Any, ...]:
    return (
        record.record_key, record.run_id, record.image_index, record.pack or "", record.preset,
        record.prompt, record.negative_prompt, settings_hash,
        record.config_hash, record.seed, json.dumps(list(record.stages)), record.node,
        record.node_kind, record.path, record.thumbnail, json.dumps(record.timings),
        json.dumps(list(record.warnings)), check_rating(record.rating), record.note,
        record.learning_run_id, record.variant_id, record.variant_label, record.job_id,
        record.created_at or now, now,
    )


def _clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({clean_tag(t) for t in tags}))


def _rebuild_stats(db: sqlite3.Connection) -> None:
    # Settings no record points to any more (their images were deleted) go too.
    db.execute("DELETE FROM learning_settings WHERE hash NOT IN "
               "(SELECT settings_hash FROM learning_records)")
    db.execute("DELETE FROM learning_stats")
    db.execute(
        "INSERT INTO learning_stats (pack, param, value, n, total, total_sq) "
        "SELECT r.pack, p.param, p.value, COUNT(*), SUM(r.rating), SUM(r.rating * r.rating) "
        "FROM learning_params p JOIN learning_records r ON r.id = p.record_id "
        "WHERE r.rating IS NOT NULL GROUP BY r.pack, p.param, p.value")
    db.execute("DELETE FROM learning_tag_stats")
    db.execute(
        "INSERT INTO learning_tag_stats (pack, tag, n) SELECT r.pack, t.tag, COUNT(*) "
        "FROM learning_tags t JOIN learning_records r ON r.id = t.record_id GROUP BY r.pack, t.tag")


def _create_schema(db: sqlite3.Connection) -> None:
    # Statement by statement: executescript() would commit the migration's transaction.
    buffer = ""
    for line in _SCHEMA.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            db.execute(buffer)
            buffer = ""


def _migrate_v1_to_v2(db: sqlite3.Connection) -> None:
    """v1 kept the whole config in each record; v2 keeps a batch's shared settings once."""
    db.execute("CREATE TABLE IF NOT EXISTS learning_settings (hash TEXT PRIMARY KEY, "
               "config_json TEXT NOT NULL) WITHOUT ROWID")
    columns = {r[1] for r in db.execute("PRAGMA table_info(learning_records)")}
    if "config_json" in columns:
        if "settings_hash" not in columns:
            db.execute("ALTER TABLE learning_records ADD COLUMN settings_hash TEXT NOT NULL "
                       "DEFAULT ''")
        rows = db.execute("SELECT id, config_json FROM learning_records").fetchall()
        for record_id, raw in rows:
            try:
                digest, text = settings_of(
                    PipelineConfig.model_validate(migrate_config(json.loads(raw))))
            except (ValueError, ValidationError, TypeError, KeyError):
                digest, text = "raw-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:28], raw
            db.execute("INSERT OR IGNORE INTO learning_settings (hash, config_json) VALUES (?, ?)",
                       (digest, text))
            db.execute("UPDATE learning_records SET settings_hash = ? WHERE id = ?",
                       (digest, record_id))
        db.execute("ALTER TABLE learning_records DROP COLUMN config_json")
    db.execute("DROP INDEX IF EXISTS learning_records_run")
    db.execute("CREATE INDEX learning_records_run ON learning_records(learning_run_id, pack, rating) "
               "WHERE learning_run_id IS NOT NULL")


def _migrate_v0(db: sqlite3.Connection) -> None:
    """v0, the draft layout: one table with the image path as key and tags as a JSON list."""
    db.execute("ALTER TABLE learning_records RENAME TO learning_records_v0")
    _create_schema(db)
    rows = db.execute("SELECT * FROM learning_records_v0 ORDER BY id").fetchall()
    index_in_run: dict[str, int] = {}
    for row in rows:
        keys = row.keys()
        run_id = row["run_id"] or f"v0-{row['id']}"
        image_index = index_in_run.get(run_id, 0)
        index_in_run[run_id] = image_index + 1
        raw = row["config_json"] or "{}"
        seed = int(row["seed"] or 0)
        prompt, negative = row["prompt"] or "", ""
        try:
            config = PipelineConfig.model_validate(migrate_config(json.loads(raw)))
            if 0 <= seed <= MAX_SEED:
                config = config.with_changes({"txt2img.seed": seed})
            if not config.txt2img.prompt and prompt:
                config = config.with_changes({"txt2img.prompt": prompt})
            prompt, negative = config.txt2img.prompt, config.txt2img.negative_prompt
            params = parameter_values(config)
            stages = [s.value for s in config.enabled_stages()]
            digest = config_hash(config)
            settings_hash, stored = settings_of(config)
        except (ValueError, ValidationError, TypeError, KeyError):
            # Keep the row and its rating; its settings stay as they were for a later look.
            params, stages, digest, stored = {}, [], "", raw
            settings_hash = "raw-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:28]
        db.execute("INSERT OR IGNORE INTO learning_settings (hash, config_json) VALUES (?, ?)",
                   (settings_hash, stored))
        try:
            tags = _clean_tags(json.loads(row["tags_json"] or "[]"))
        except (ValueError, TypeError):
            tags = ()
        rating = row["rating"] if row["rating"] in (1, 2, 3, 4, 5) else None
        created = float(row["created_at"] or 0.0)
        cur = db.execute(
            f"INSERT INTO learning_records ({_RECORD_COLUMNS}) VALUES "
            f"({', '.join('?' * len(_RECORD_COLUMNS.split(',')))})",
            (f"{run_id}:{image_index}", run_id, image_index, row["pack"] or "", None,
             prompt, negative, settings_hash, digest, seed, json.dumps(stages),
             row["node"] or "", "", row["image_path"], None, "{}", "[]", rating,
             row["note"] if "note" in keys and row["note"] else "", None, None, None, None,
             created, created))
        record_id = cur.lastrowid
        db.executemany("INSERT INTO learning_params (record_id, param, value) VALUES (?, ?, ?)",
                       [(record_id, k, v) for k, v in params.items()])
        db.executemany("INSERT INTO learning_tags (record_id, tag) VALUES (?, ?)",
                       [(record_id, t) for t in tags])
    db.execute("DROP TABLE learning_records_v0")
    _rebuild_stats(db)


class StoreWorker:
    """Runs store calls on one background thread, so the GUI thread never waits on SQLite.

    The store itself is opened on that thread at the first call (opening may migrate), and
    every call receives it as its first argument: `await worker.call(LearningStore.rate, id, 4)`.
    """

    def __init__(self, opener: Callable[[], LearningStore] | LearningStore) -> None:
        self._opener = opener if callable(opener) else (lambda: opener)
        self._store: LearningStore | None = opener if isinstance(opener, LearningStore) else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="learning-store")

    def _invoke(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        if self._store is None:
            self._store = self._opener()
        return fn(self._store, *args, **kwargs)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue a call from any thread; the result (or error) arrives in the Future."""
        return self._executor.submit(self._invoke, fn, args, kwargs)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._invoke, fn, args, kwargs))

    def close(self) -> None:
        """Finish queued writes, then close the database."""
        self._executor.shutdown(wait=True)
        if self._store is not None:
            self._store.close()
            self._store = None
