"""LearningStore: learning records, ratings, tags, pairwise choices and learning runs in
SQLite (WAL). The tables and their upgrades are in `schema.py`.

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

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stablenew.learning.choices import Choice
from stablenew.learning.errors import LearningStoreError, RecordNotFound
from stablenew.learning.records import LearningRecord, check_rating, clean_tag
from stablenew.learning.schema import (
    RECORD_COLUMNS,
    SCHEMA_VERSION,
    clean_tags,
    config_from_settings,
    migrate,
    read_version,
    rebuild_aggregates,
    record_values,
    settings_of,
)
from stablenew.learning.worker import StoreWorker
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.paths import AppPaths
from stablenew.storage.sqlite import DatabaseUnusable, open_database

# Kept importable from here, where they lived before the schema and the worker moved out.
__all__ = ["SCHEMA_VERSION", "LearningStore", "StoreSummary", "StoreWorker", "ValueStats",
           "config_from_settings", "default_database", "settings_of"]

_SELECT_RECORD = (f"SELECT id, {RECORD_COLUMNS}, config_json FROM learning_records "
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
class TasteImage:
    """One rated or chosen image as the taste model sees it: its rating, values and tags."""

    id: int
    rating: int | None
    params: dict[str, str]
    tags: list[str]


@dataclass(frozen=True)
class TasteInputs:
    """Images and the choices between them: (winner id, loser id, same)."""

    images: list[TasteImage]
    choices: list[tuple[int, int, bool]]


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
            return read_version(self._db)

    def _migrate(self) -> None:
        with self._write():
            migrate(self._db, self.path)

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
        insert = (f"INSERT INTO learning_records ({RECORD_COLUMNS}) VALUES "
                  f"({', '.join('?' * len(RECORD_COLUMNS.split(',')))}) "
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
                    tags += [(record_id, t) for t in clean_tags(record.tags)]
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
        return record_values(record, digest, now)

    def _upsert(self, record: LearningRecord) -> LearningRecord:
        db = self._db
        now = record.updated_at or time.time()
        row = db.execute("SELECT id, rating, note FROM learning_records WHERE record_key = ?",
                         (record.record_key,)).fetchone()
        values = self._values(record, now)
        if row is None:
            cur = db.execute(
                f"INSERT INTO learning_records ({RECORD_COLUMNS}) VALUES "
                f"({', '.join('?' * len(values))})", values)
            assert cur.lastrowid is not None  # an INSERT into a rowid table always sets it
            record_id = cur.lastrowid
            tags = clean_tags(record.tags)
            stored = replace(record, id=record_id, tags=tags, updated_at=now)
        else:
            record_id = int(row["id"])
            tags = tuple(r[0] for r in db.execute(
                "SELECT tag FROM learning_tags WHERE record_id = ? ORDER BY tag", (record_id,)))
            # Remove derived rows first so the triggers subtract them from the old pack.
            db.execute("DELETE FROM learning_params WHERE record_id = ?", (record_id,))
            db.execute("DELETE FROM learning_tags WHERE record_id = ?", (record_id,))
            keep = ("rating", "note", "created_at")
            names = [c.strip() for c in RECORD_COLUMNS.split(",")]
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
            created_at=row["created_at"], updated_at=row["updated_at"],
            original_prompt=row["original_prompt"], enhance_template=row["enhance_template"],
            auto_loras=tuple(json.loads(row["auto_loras"] or "[]")))

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

    # --- pairwise choices ---------------------------------------------------------------

    def record_choice(self, winner: int | str | os.PathLike[str], loser: int | str | os.PathLike[str],
                      *, same: bool = False, source: str = "") -> Choice:
        """Keep one side-by-side choice: *winner* is better than *loser*, or with *same* the two
        are equally good. Images are named by record id, record key or path (RecordNotFound
        when the store does not know one); *source* says where it was made ("which is better",
        "gallery compare")."""
        winner_id, loser_id = self.find_id(winner), self.find_id(loser)
        if winner_id == loser_id:
            raise LearningStoreError("An image cannot be compared with itself.",
                                     detail=f"record {winner_id}")
        with self._write():
            cur = self._db.execute(
                "INSERT INTO learning_choices (winner_id, loser_id, same, source, created_at) "
                "VALUES (?, ?, ?, ?, ?)", (winner_id, loser_id, int(same), source, time.time()))
            choice_id = cur.lastrowid
        return next(c for c in self.choices(ids=[int(choice_id or 0)]))

    def choices(self, pack: str | None = None, *, ids: Iterable[int] | None = None) -> list[Choice]:
        """Stored choices, oldest first: of one pack (both images in it; "" for images without a
        pack), or all with None."""
        sql = ("SELECT c.id, c.winner_id, c.loser_id, c.same, w.record_key, l.record_key, w.path, "
               "l.path, w.pack, l.pack, c.source, c.created_at FROM learning_choices c "
               "JOIN learning_records w ON w.id = c.winner_id "
               "JOIN learning_records l ON l.id = c.loser_id")
        where: list[str] = []
        args: list[Any] = []
        if pack is not None:
            where.append("w.pack = ? AND l.pack = ?")
            args += [pack, pack]
        if ids is not None:
            wanted = list(ids)
            where.append(f"c.id IN ({', '.join('?' * len(wanted))})")
            args += wanted
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY c.id", args).fetchall()
        return [Choice(id=r[0], winner_id=r[1], loser_id=r[2], same=bool(r[3]), winner_key=r[4],
                       loser_key=r[5], winner_path=r[6], loser_path=r[7],
                       pack=(r[8] or None) if r[8] == r[9] else None, source=r[10],
                       created_at=r[11]) for r in rows]

    def taste_inputs(self, pack: str | None = None) -> TasteInputs:
        """What the taste model learns from, for one pack or (None) all: every image that was
        rated or chosen, with its parameter values and tags, and the choices between them."""
        where, args = "", []
        if pack is not None:
            where, args = " AND r.pack = ?", [pack]
        chosen = ("r.rating IS NOT NULL OR r.id IN (SELECT winner_id FROM learning_choices) "
                  "OR r.id IN (SELECT loser_id FROM learning_choices)")
        images: dict[int, TasteImage] = {}
        with self._lock:
            cur = self._db.cursor()
            cur.row_factory = None  # plain tuples: several times faster over 100,000 rows
            rows = cur.execute(
                "SELECT r.id, r.rating, p.param, p.value FROM learning_records r "
                f"LEFT JOIN learning_params p ON p.record_id = r.id WHERE ({chosen}){where}",
                args).fetchall()
            tags = cur.execute(
                "SELECT t.record_id, t.tag FROM learning_tags t "
                f"JOIN learning_records r ON r.id = t.record_id WHERE ({chosen}){where}",
                args).fetchall()
        for record_id, rating, param, value in rows:
            image = images.get(record_id)
            if image is None:
                image = images[record_id] = TasteImage(record_id, rating, {}, [])
            if param is not None:
                image.params[param] = value
        for record_id, tag in tags:
            images[record_id].tags.append(tag)
        pairs = [(c.winner_id, c.loser_id, c.same) for c in self.choices(pack)]
        return TasteInputs(list(images.values()), pairs)

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
            rebuild_aggregates(self._db)

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
