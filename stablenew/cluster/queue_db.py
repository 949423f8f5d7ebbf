"""The queue's SQLite database: schema, its one connection per process, and row decoding.

The database file is shared with other rooms (learning records, ...); the queue's tables are
all named `queue_*` and carry their own schema version in `queue_meta`.

Why this survives crashes: every move of a work item is a single `BEGIN IMMEDIATE`
transaction guarded by the item's current state and the lease its claimer holds, so a crash
leaves every item in exactly one state; `QueueStore.recover()` puts items that were in flight
back in the queue. WAL with `synchronous=NORMAL` never tears the database; a power cut may lose
the last few commits, which only means an item that had finished is rendered again — into the
same deterministic file names, so there is still exactly one copy of each output.

`QueueStore` (the state moves) and `QueueReads` (the queries) share one `QueueDatabase`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from stablenew.cluster.jobs import (
    ItemState,
    Job,
    JobCounts,
    JobKind,
    JobOrigin,
    Variant,
    WorkItem,
)
from stablenew.cluster.tiers import NodeTier
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.sqlite import BUSY_MS, DatabaseUnusable, open_database

T = TypeVar("T")
P = ParamSpec("P")
_WAIT_MS = BUSY_MS  # how long a waiting call waits for another connection's write lock

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    position REAL NOT NULL,
    created_at REAL NOT NULL,
    output_dir TEXT NOT NULL,
    base_config TEXT,
    origin TEXT NOT NULL DEFAULT '{}',
    node_pin TEXT,
    total INTEGER NOT NULL DEFAULT 0,
    tier TEXT
);
CREATE TABLE IF NOT EXISTS queue_items (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES queue_jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    node TEXT,
    lease TEXT,
    error TEXT,
    error_detail TEXT,
    outputs TEXT NOT NULL DEFAULT '[]',
    started_at REAL,
    finished_at REAL,
    variant_id TEXT,
    variant_label TEXT,
    UNIQUE (job_id, idx)
);
CREATE INDEX IF NOT EXISTS queue_items_by_job_state ON queue_items (job_id, state, idx);
CREATE INDEX IF NOT EXISTS queue_items_by_state ON queue_items (state);
"""

ITEM_COLUMNS = ("id, job_id, idx, state, attempts, seed, node, error, error_detail, outputs, "
                "not_before, started_at, finished_at, lease, variant_id, variant_label")
JOB_COLUMNS = ("id, name, kind, priority, position, created_at, output_dir, origin, node_pin, "
               "tier")
#: Row keys of a job read by itself: each column under its own name.
SAME = {c.strip(): c.strip() for c in JOB_COLUMNS.split(",")}


class QueueError(Exception):
    """A queue operation that cannot be done; `message` is for users, `detail` for logs."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class UnknownId(QueueError):
    """No job or item matches the id the user gave."""


class StoreBusy(Exception):
    """`call_nowait` could not run its call without waiting (another thread or process was
    writing); nothing was done, so the caller runs it the ordinary, waiting way instead."""


class QueueDatabase:
    """The queue's one SQLite connection in this process, guarded by a lock; safe to share
    between threads. SQLite serialises writers anyway, and the queue's transactions are tiny."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._configs: dict[tuple[str, int | None], PipelineConfig] = {}
        self._nowait = False  # set (under the lock) while `call_nowait` runs its call
        self._busy_ms = _WAIT_MS  # the connection's busy timeout now (0 while not waiting)
        try:
            self._db = open_database(self.path, self._set_up, what="queue database",
                                     pragmas=("foreign_keys=ON",))
        except DatabaseUnusable as exc:
            raise QueueError(exc.message, detail=exc.detail) from exc

    def _set_up(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def call_nowait(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run *fn* (a call of the store or its reads making at most ONE transaction) on the
        calling thread, but only if it needs no waiting: raises `StoreBusy`, having done
        nothing, when another thread holds the store or another connection holds the write
        lock.

        An event loop uses this for the queue's hot moves: a WAL commit with
        synchronous=NORMAL writes no fsync, so it costs tens of microseconds here, while
        a hop to a database thread costs a wake-up and a GIL hand-over each way.
        """
        if not self._lock.acquire(blocking=False):
            raise StoreBusy("the queue store is in use by another thread")
        try:
            self._nowait = True
            try:
                return fn(*args, **kwargs)
            finally:
                self._nowait = False
        finally:
            self._lock.release()

    def _waiting(self) -> None:
        """Set the connection's busy timeout for this call: none under `call_nowait`, 30 s
        otherwise. Changed only when it differs, so a run of no-wait moves pays nothing."""
        ms = 0 if self._nowait else _WAIT_MS
        if self._busy_ms != ms:
            self._db.execute(f"PRAGMA busy_timeout={ms}")
            self._busy_ms = ms

    def _busy(self, exc: sqlite3.OperationalError) -> StoreBusy | None:
        if self._nowait and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
            return StoreBusy("another connection holds the queue database")
        return None

    def _begin(self) -> None:
        # Only BEGIN IMMEDIATE can wait (for another connection's write lock): in WAL mode a
        # transaction that holds the lock commits without waiting for anyone.
        self._waiting()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            busy = self._busy(exc)
            if busy is not None:
                raise busy from exc
            raise

    def checkpoint(self) -> None:
        """Copy the WAL into the database now (PASSIVE: never waits for readers). Called from
        a worker thread, so the fsync this takes does not fall on an event loop's commit."""
        with self._lock:
            self._waiting()
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; any change in it bumps the queue's revision."""
        with self._lock:
            self._begin()
            try:
                before = self._db.total_changes
                yield self._db
                if self._db.total_changes != before:
                    self._db.execute("UPDATE queue_meta SET value = CAST(value AS INTEGER) + 1 "
                                     "WHERE key = 'revision'")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            self._waiting()
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                busy = self._busy(exc)
                if busy is not None:
                    raise busy from exc
                raise

    def _migrate(self) -> None:
        with self._lock:
            # CREATE ... IF NOT EXISTS is idempotent, so a crash half-way through is harmless.
            self._db.executescript(_SCHEMA)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT value FROM queue_meta WHERE key = 'schema_version'").fetchone()
                version = int(row[0]) if row else 0
                if version > SCHEMA_VERSION:
                    raise QueueError(
                        "The queue database was written by a newer StableNew. Update StableNew "
                        "to open it.",
                        detail=f"{self.path}: queue schema {version} > {SCHEMA_VERSION}")
                columns = {r[1] for r in self._db.execute("PRAGMA table_info(queue_items)")}
                for column in ("variant_id", "variant_label"):  # version 1 -> 2
                    if column not in columns:
                        self._db.execute(f"ALTER TABLE queue_items ADD COLUMN {column} TEXT")
                if "tier" not in {r[1] for r in self._db.execute("PRAGMA table_info(queue_jobs)")}:
                    self._db.execute("ALTER TABLE queue_jobs ADD COLUMN tier TEXT")  # 2 -> 3
                for key, value in (("schema_version", str(SCHEMA_VERSION)), ("paused", "0"),
                                   ("revision", "0")):
                    self._db.execute(
                        "INSERT OR IGNORE INTO queue_meta (key, value) VALUES (?, ?)", (key, value))
                self._db.execute("UPDATE queue_meta SET value = ? WHERE key = 'schema_version'",
                                 (str(SCHEMA_VERSION),))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def config(self, item: WorkItem, own: str | None, base: str | None) -> PipelineConfig:
        """The config *item* renders: its *own*, or its job's *base* with the item's seed
        (the job's base is parsed once and kept for its next items)."""
        if own is not None:
            return PipelineConfig.model_validate_json(own)
        key = (item.job_id, None)
        config = self._configs.get(key)
        if config is None:
            config = PipelineConfig.model_validate_json(base or "{}")
            if len(self._configs) > 64:
                self._configs.clear()
            self._configs[key] = config
        # model_copy skips re-validation: the base was validated when added, and these three
        # values are in range by construction (seeds were resolved within 0..MAX_SEED).
        t2i = config.txt2img.model_copy(update={"batch_count": 1, "batch_size": 1,
                                                "seed": item.seed})
        return config.model_copy(update={"txt2img": t2i})


def job_from_row(row: sqlite3.Row, counts: JobCounts, nodes: tuple[str, ...], eta: float | None,
                 *, key: dict[str, str] | None = None) -> Job:
    """A job from its row; *key* maps column names to the row's keys when they differ."""
    k = key or SAME
    origin = JobOrigin(**json.loads(row[k["origin"]] or "{}"))
    return Job(id=row[k["id"]], name=row[k["name"]], kind=JobKind(row[k["kind"]]),
               priority=row[k["priority"]], position=row[k["position"]],
               created_at=row[k["created_at"]], output_dir=row[k["output_dir"]],
               origin=origin, node_pin=row[k["node_pin"]], counts=counts, nodes=nodes,
               eta_seconds=eta, tier=NodeTier(tier) if (tier := row[k["tier"]]) else None)


def item_from_row(row: sqlite3.Row) -> WorkItem:
    return WorkItem(id=row["id"], job_id=row["job_id"], index=row["idx"],
                    state=ItemState(row["state"]), attempts=row["attempts"], seed=row["seed"],
                    node=row["node"], error=row["error"], error_detail=row["error_detail"],
                    outputs=tuple(json.loads(row["outputs"] or "[]")),
                    not_before=row["not_before"], started_at=row["started_at"],
                    finished_at=row["finished_at"], lease=row["lease"],
                    variant=Variant(row["variant_id"], row["variant_label"]))
