"""QueueStore: the persistent queue in SQLite (WAL), one transaction per state change.

The database file is shared with other rooms (learning records, ...); the queue's tables are
all named `queue_*` and carry their own schema version in `queue_meta`.

Why this survives crashes: every move of a work item is a single `BEGIN IMMEDIATE`
transaction guarded by the item's current state and the lease its claimer holds, so a crash
leaves every item in exactly one state; `recover()` puts items that were in flight back in
the queue. WAL with `synchronous=NORMAL` never tears the database; a power cut may lose the
last few commits, which only means an item that had finished is rendered again — into the
same deterministic file names, so there is still exactly one copy of each output.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from stablenew.cluster.jobs import (
    ACTIVE,
    INTERACTIVE_PRIORITY,
    TERMINAL,
    Claim,
    ItemState,
    Job,
    JobCounts,
    JobKind,
    JobOrigin,
    Variant,
    WorkItem,
    can_move,
    expand,
)
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.paths import AppPaths
from stablenew.storage.sqlite import BUSY_MS, DatabaseUnusable, open_database

T = TypeVar("T")
_WAIT_MS = BUSY_MS  # how long a waiting call waits for another connection's write lock

SCHEMA_VERSION = 2
#: Retries after the first attempt for transient errors (unreachable, 500, timeout).
MAX_RETRIES = 3

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
    total INTEGER NOT NULL DEFAULT 0
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

_ITEM_COLUMNS = ("id, job_id, idx, state, attempts, seed, node, error, error_detail, outputs, "
                 "not_before, started_at, finished_at, lease, variant_id, variant_label")
_JOB_COLUMNS = "id, name, kind, priority, position, created_at, output_dir, origin, node_pin"
_SAME = {c.strip(): c.strip() for c in _JOB_COLUMNS.split(",")}
#: The job's columns in `_NEXT_ITEM_SQL`, named apart from the item's (both have an `id`).
_JOB_KEYS = {c: f"job_{c}" for c in _SAME}
#: The next claimable item in run order with its job: for each job an index probe for its
#: first queued item past any retry backoff, then the first job (priority, drag and drop
#: order) that has one. Nothing for jobs pinned elsewhere; while the queue is paused, only
#: interactive Runs (a pause holds batches back, not the image the user is waiting for).
_NOT_PAUSED = (f"((SELECT value FROM queue_meta WHERE key = 'paused') <> '1' OR "
               f"j.priority >= {INTERACTIVE_PRIORITY})")
_NEXT_ITEM_SQL = (
    "SELECT " + ", ".join(f"i.{c.strip()}" for c in _ITEM_COLUMNS.split(",")) + ", i.config, "
    + ", ".join(f"j.{c} AS job_{c}" for c in _SAME) + ", j.base_config FROM queue_jobs j "
    "JOIN queue_items i ON i.id = (SELECT q.id FROM queue_items q WHERE q.job_id = j.id AND "
    "q.state = 'queued' AND q.not_before <= ? ORDER BY q.idx LIMIT 1) "
    f"WHERE {_NOT_PAUSED} AND "
    "(j.node_pin IS NULL OR j.node_pin = ?) ORDER BY j.priority DESC, j.position ASC LIMIT 1")


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


@dataclass(frozen=True)
class QueueReport:
    """Totals over the whole queue, for `stablenew queue report` and the status bar."""

    jobs: int
    counts: JobCounts
    paused: bool
    failures: tuple[tuple[str, str], ...]  # (item label, reason) of failed items
    seconds_per_item: float | None


def backoff_delay(attempt: int, base: float) -> float:
    """Seconds to wait before retry number *attempt* (1-based): base, 2·base, 4·base, ..."""
    return base * (2 ** max(0, attempt - 1))


class QueueStore:
    """The queue's jobs and work items in SQLite; safe to share between threads."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else AppPaths.default().database_file
        self._lock = threading.RLock()
        self._configs: dict[tuple[str, int | None], PipelineConfig] = {}
        self._nowait = False  # set (under the lock) while `call_nowait` runs its call
        self._busy_ms = _WAIT_MS  # the connection's busy timeout now (0 while not waiting)
        # One connection guarded by a lock: SQLite serialises writers anyway, and the queue's
        # transactions are tiny.
        try:
            self._db = open_database(self.path, self._set_up, what="queue database",
                                     pragmas=("foreign_keys=ON",))
        except DatabaseUnusable as exc:
            raise QueueError(exc.message, detail=exc.detail) from exc

    def _set_up(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._migrate()

    # --- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> QueueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call_nowait(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run *fn* (a call of this store making at most ONE transaction) on the calling
        thread, but only if it needs no waiting: raises `StoreBusy`, having done nothing,
        when another thread holds the store or another connection holds the write lock.

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
    def _write(self) -> Iterator[sqlite3.Connection]:
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

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
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

    def revision(self) -> int:
        """A number that grows with every change (from any process): cheap change detection."""
        return int(self._read("SELECT value FROM queue_meta WHERE key = 'revision'")[0][0])

    def integrity_ok(self) -> bool:
        return self._read("PRAGMA integrity_check")[0][0] == "ok"

    # --- adding -------------------------------------------------------------------------------

    def add_job(
        self,
        configs: PipelineConfig | Iterable[Any],
        *,
        name: str = "",
        kind: JobKind = JobKind.config,
        origin: JobOrigin | None = None,
        priority: int = 0,
        output_dir: str | Path | None = None,
        output_root: str | Path | None = None,
        node_pin: str | None = None,
        expand_batches: bool = True,
        count: int | None = None,
        job_id: str | None = None,
    ) -> Job:
        """Add a job with one work item per image; *configs* may be a lazy plan (streamed).

        With a single config, items share the job's config and differ only by seed; a plan
        stores each item's own config. Images go to *output_dir*, or to a new folder named
        for the job under *output_root* (default: the outputs folder). *count* asks for that
        many images of a single config instead of its batch count × batch size. *job_id* lets
        a caller that follows the job's events know its id before the first one can arrive.
        """
        job_id = job_id or uuid.uuid4().hex[:8]
        origin = origin or JobOrigin()
        now = time.time()
        base = configs if isinstance(configs, PipelineConfig) else None
        images: Iterable[tuple[PipelineConfig, Variant]]
        if expand_batches:
            images = expand(configs, count=count)
        else:
            each: Iterable[Any] = [base] if base is not None else configs
            images = ((c, Variant()) for c in each)
        if output_dir is None:
            stamp = time.strftime("%Y-%m-%d", time.localtime(now))
            root = Path(output_root) if output_root else AppPaths.default().default_output_dir
            output_dir = root / f"queue-{stamp}-{job_id}"
        base_json = None
        if base is not None:
            base_json = base.model_dump_json()
        name = name or _default_name(base)
        with self._write() as db:
            position = db.execute(
                "SELECT COALESCE(MAX(position), 0) + 1 FROM queue_jobs").fetchone()[0]
            db.execute(
                "INSERT INTO queue_jobs (id, name, kind, priority, position, created_at, output_dir,"
                " base_config, origin, node_pin, total) VALUES (?,?,?,?,?,?,?,?,?,?,0)",
                (job_id, name, str(kind), priority, position, now, str(output_dir), base_json,
                 json.dumps(_origin_dict(origin)), node_pin))
            total = 0
            for index, (config, variant) in enumerate(images):
                seed = config.txt2img.seed
                item_json = None if base is not None else config.model_dump_json()
                db.execute(
                    "INSERT INTO queue_items (job_id, idx, state, seed, config, variant_id, "
                    "variant_label) VALUES (?,?,?,?,?,?,?)",
                    (job_id, index, ItemState.queued.value, seed, item_json, variant.id,
                     variant.label))
                total += 1
            if total == 0:
                raise QueueError("Nothing to add: the job has no images.",
                                 detail=f"job {name!r} expanded to zero configs")
            db.execute("UPDATE queue_jobs SET total = ? WHERE id = ?", (total, job_id))
        return self.get_job(job_id)

    # --- reading ------------------------------------------------------------------------------

    def _job_from_row(self, row: sqlite3.Row, counts: JobCounts, nodes: tuple[str, ...],
                      eta: float | None, *, key: dict[str, str] | None = None) -> Job:
        k = key or _SAME
        origin = JobOrigin(**json.loads(row[k["origin"]] or "{}"))
        return Job(id=row[k["id"]], name=row[k["name"]], kind=JobKind(row[k["kind"]]),
                   priority=row[k["priority"]], position=row[k["position"]],
                   created_at=row[k["created_at"]], output_dir=row[k["output_dir"]],
                   origin=origin, node_pin=row[k["node_pin"]], counts=counts, nodes=nodes,
                   eta_seconds=eta)

    def _counts(self, job_id: str | None = None) -> dict[str, JobCounts]:
        where, params = ("WHERE job_id = ?", (job_id,)) if job_id else ("", ())
        raw: dict[str, dict[str, int]] = {}
        for row in self._read(
                f"SELECT job_id, state, COUNT(*) FROM queue_items {where} GROUP BY job_id, state",
                params):
            raw.setdefault(row[0], {})[row[1]] = row[2]
        return {jid: JobCounts(total=sum(c.values()), **c) for jid, c in raw.items()}

    def _nodes(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for row in self._read(
                "SELECT DISTINCT job_id, node FROM queue_items WHERE state IN ('assigned','running')"
                " AND node IS NOT NULL ORDER BY node"):
            out.setdefault(row[0], []).append(row[1])
        return {k: tuple(v) for k, v in out.items()}

    def seconds_per_item(self, *, recent: int = 20) -> float | None:
        """Recent seconds per finished image, as throughput (None before the first).

        Measured as the spacing of the last finishes rather than each image's own duration:
        with several images in flight at once (lanes, nodes) durations overlap, and their
        average would overstate the time left several times over. Only the latest unbroken
        stretch of work counts: a gap longer than the image after it took means the queue
        sat idle (overnight, between sessions), which is no image's time.
        """
        rows = self._read(
            "SELECT started_at, finished_at FROM queue_items WHERE state = 'done' AND "
            "started_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?", (recent,))
        if not rows:
            return None
        streak = [rows[0]]
        for row in rows[1:]:
            later = streak[-1]
            if later[1] - row[1] > max(0.0, later[1] - later[0]) + 1.0:
                break  # idle between these two finishes
            streak.append(row)
        span = streak[0][1] - streak[-1][1]
        if len(streak) >= 3 and span > 0:
            return span / (len(streak) - 1)
        return sum(max(0.0, r[1] - r[0]) for r in streak) / len(streak)

    def list_jobs(self) -> list[Job]:
        """Every job in the order the queue will run them."""
        counts = self._counts()
        nodes = self._nodes()
        per_item = self.seconds_per_item()  # already the whole queue's pace, all nodes
        jobs = []
        ahead = 0.0
        for row in self._read(f"SELECT {_JOB_COLUMNS} FROM queue_jobs "
                              "ORDER BY priority DESC, position ASC"):
            c = counts.get(row["id"], JobCounts())
            remaining = c.queued + c.assigned + c.running
            eta = None
            if per_item is not None and remaining:
                # Jobs run in order, so a job's ETA includes the work queued ahead of it.
                ahead += remaining * per_item
                eta = ahead
            jobs.append(self._job_from_row(row, c, nodes.get(row["id"], ()), eta))
        return jobs

    def get_job(self, job_id: str) -> Job:
        rows = self._read(f"SELECT {_JOB_COLUMNS} FROM queue_jobs WHERE id = ?", (job_id,))
        if not rows:
            raise UnknownId(f"There is no job {job_id} in the queue.", detail=f"job {job_id}")
        counts = self._counts(job_id).get(job_id, JobCounts())
        return self._job_from_row(rows[0], counts, self._nodes().get(job_id, ()), None)

    @staticmethod
    def _item_from_row(row: sqlite3.Row) -> WorkItem:
        return WorkItem(id=row["id"], job_id=row["job_id"], index=row["idx"],
                        state=ItemState(row["state"]), attempts=row["attempts"], seed=row["seed"],
                        node=row["node"], error=row["error"], error_detail=row["error_detail"],
                        outputs=tuple(json.loads(row["outputs"] or "[]")),
                        not_before=row["not_before"], started_at=row["started_at"],
                        finished_at=row["finished_at"], lease=row["lease"],
                        variant=Variant(row["variant_id"], row["variant_label"]))

    def items(self, job_id: str | None = None, *, states: Iterable[ItemState] | None = None
              ) -> list[WorkItem]:
        clauses, params = [], []
        if job_id is not None:
            clauses.append("job_id = ?")
            params.append(job_id)
        if states is not None:
            wanted = [str(s) for s in states]
            clauses.append(f"state IN ({','.join('?' * len(wanted))})")
            params += wanted
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(f"SELECT {_ITEM_COLUMNS} FROM queue_items {where} ORDER BY job_id, idx",
                          params)
        return [self._item_from_row(r) for r in rows]

    def get_item(self, item_id: int) -> WorkItem:
        rows = self._read(f"SELECT {_ITEM_COLUMNS} FROM queue_items WHERE id = ?", (item_id,))
        if not rows:
            raise UnknownId(f"There is no item {item_id} in the queue.", detail=f"item {item_id}")
        return self._item_from_row(rows[0])

    def item_states(self, item_ids: Iterable[int]) -> dict[int, tuple[ItemState, str | None]]:
        """Current state and lease of some items (the runner watches its in-flight ones)."""
        ids = list(item_ids)
        if not ids:
            return {}
        rows = self._read(f"SELECT id, state, lease FROM queue_items WHERE id IN "
                          f"({','.join('?' * len(ids))})", ids)
        return {r[0]: (ItemState(r[1]), r[2]) for r in rows}

    def config_for(self, item: WorkItem) -> PipelineConfig:
        """The exact config an item renders (its job's config with its seed, or its own)."""
        row = self._read("SELECT i.config, j.base_config FROM queue_items i JOIN queue_jobs j "
                         "ON j.id = i.job_id WHERE i.id = ?", (item.id,))
        if not row:
            raise UnknownId(f"There is no item {item.label} in the queue.")
        own, base = row[0]
        return self._config(item, own, base)

    def _config(self, item: WorkItem, own: str | None, base: str | None) -> PipelineConfig:
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

    def resolve(self, text: str) -> tuple[str, str | int]:
        """Turn what a user typed into ("job", job_id) or ("item", item_id).

        Accepts a job id or any unique start of one, and `JOB/N` for the N-th image of a job.
        """
        text = text.strip()
        job_part, _, number = text.partition("/")
        rows = self._read("SELECT id FROM queue_jobs WHERE id LIKE ? ESCAPE '\\'",
                          (job_part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                           + "%",))
        if not job_part or not rows:
            raise UnknownId(f"There is no job '{text}' in the queue. Run `stablenew queue list` "
                            "to see the ids.")
        if len(rows) > 1:
            raise UnknownId(f"'{job_part}' matches {len(rows)} jobs; type more of the id.")
        job_id = rows[0][0]
        if not number:
            return ("job", job_id)
        if not number.isdigit() or int(number) < 1:
            raise UnknownId(f"'{text}': after the slash comes the image number (1, 2, ...).")
        row = self._read("SELECT id FROM queue_items WHERE job_id = ? AND idx = ?",
                         (job_id, int(number) - 1))
        if not row:
            raise UnknownId(f"Job {job_id} has no image {number}.")
        return ("item", row[0][0])

    # --- pause --------------------------------------------------------------------------------

    def set_paused(self, paused: bool) -> None:
        """Pause or resume the whole queue; items already running finish."""
        with self._write() as db:
            db.execute("UPDATE queue_meta SET value = ? WHERE key = 'paused'",
                       ("1" if paused else "0",))

    def is_paused(self) -> bool:
        return self._read("SELECT value FROM queue_meta WHERE key = 'paused'")[0][0] == "1"

    # --- the claim API (one node asks for its next item) --------------------------------------

    def claim_next(
        self,
        node: str,
        *,
        can_take: Callable[[WorkItem, Job], bool] | None = None,
        now: float | None = None,
        scan: int = 200,
        start: bool = False,
    ) -> Claim | None:
        """Give *node* the next item it may take, moving it queued → assigned; None if none.

        Order: higher priority first, then the job order (drag and drop), then image order.
        Items waiting for a retry's backoff and jobs pinned to another node are skipped;
        *can_take* lets a scheduler skip items this node cannot run (model, VRAM, ...).
        With *start*, the item goes on to running in the same transaction (a node that sends
        the request right away saves a commit).
        """
        with self._write() as db:
            return self._claim_in(db, node, can_take, time.time() if now is None else now,
                                  scan, start)

    def complete_and_claim(self, item_id: int, lease: str, outputs: Sequence[str | Path],
                           node: str, *, job_id: str | None = None, start: bool = True,
                           now: float | None = None) -> tuple[bool, bool, Claim | None]:
        """`complete_and_check` and `claim_next` in ONE transaction: (done, job_unfinished,
        the node's next claim or None). A lane that finished an image has its next one
        ready after a single commit; a crash before it leaves both moves undone together.
        *job_id* (the finished item's job, if the caller knows it) saves a query."""
        now = time.time() if now is None else now
        with self._write() as db:
            # Claimed first (the finished item is not queued, so the choice is the same): a
            # next image of the same job already answers whether the job has work left.
            claim = self._claim_in(db, node, None, now, 1, start)
            done = self._complete(db, item_id, lease, outputs, now)
            if claim is not None and claim.job.id == job_id:
                left = True
            else:
                left = bool(db.execute(
                    "SELECT EXISTS (SELECT 1 FROM queue_items WHERE state IN "
                    "('queued','assigned','running') AND job_id = "
                    "(SELECT job_id FROM queue_items WHERE id = ?))", (item_id,)).fetchone()[0])
            return done, left, claim

    def _claim_in(self, db: sqlite3.Connection, node: str,
                  can_take: Callable[[WorkItem, Job], bool] | None, now: float, scan: int,
                  start: bool) -> Claim | None:
        if can_take is None:
            # The common case in one statement: each job's first claimable item (an index
            # probe per job), the first job in run order that has one.
            row = db.execute(_NEXT_ITEM_SQL, (now, node)).fetchone()
            if row is None:
                return None
            job = self._job_from_row(row, JobCounts(), (), None, key=_JOB_KEYS)
            return self._take(db, self._item_from_row(row), job, row["config"],
                              row["base_config"], node, now, start)
        # Nothing while paused: the pause flag is part of the query (one statement less).
        jobs = db.execute(
            f"SELECT {_JOB_COLUMNS}, base_config FROM queue_jobs j WHERE {_NOT_PAUSED} AND "
            "(node_pin IS NULL OR node_pin = ?) AND "
            "EXISTS (SELECT 1 FROM queue_items i WHERE i.job_id = j.id AND"
            " i.state = 'queued') ORDER BY priority DESC, position ASC", (node,)).fetchall()
        for job_row in jobs:
            job = self._job_from_row(job_row, JobCounts(), (), None)
            # Read lazily: without a filter the first row is taken and the rest never built.
            rows = db.execute(
                f"SELECT {_ITEM_COLUMNS}, config FROM queue_items WHERE job_id = ? AND "
                "state = 'queued' AND not_before <= ? ORDER BY idx LIMIT ?",
                (job.id, now, scan))
            for row in rows:
                item = self._item_from_row(row)
                if not can_take(item, job):
                    continue
                return self._take(db, item, job, row["config"], job_row["base_config"], node,
                                  now, start)
        return None

    def _take(self, db: sqlite3.Connection, item: WorkItem, job: Job, own: str | None,
              base: str | None, node: str, now: float, start: bool) -> Claim:
        lease = uuid.uuid4().hex
        state = ItemState.running if start else ItemState.assigned
        started = now if start else None
        db.execute("UPDATE queue_items SET state = ?, node = ?, lease = ?, "
                   "started_at = ?, error = NULL, error_detail = NULL WHERE id = ?",
                   (state.value, node, lease, started, item.id))
        claimed = replace(item, state=state, node=node, lease=lease, started_at=started)
        return Claim(item=claimed, job=job, config=self._config(claimed, own, base), lease=lease)

    def queued_in_order(self, limit: int, *, now: float | None = None
                        ) -> list[tuple[WorkItem, Job]]:
        """The first *limit* claimable queued items in run order (priority, job order, image
        order) with their jobs: what a scheduler plans over. Items waiting for a retry's
        backoff are left out."""
        now = time.time() if now is None else now
        columns = ", ".join(f"i.{c.strip()}" for c in _ITEM_COLUMNS.split(","))
        rows = self._read(
            f"SELECT {columns} FROM queue_items i JOIN queue_jobs j ON j.id = i.job_id "
            "WHERE i.state = 'queued' AND i.not_before <= ? "
            "ORDER BY j.priority DESC, j.position ASC, i.idx ASC LIMIT ?", (now, limit))
        items = [self._item_from_row(r) for r in rows]
        ids = sorted({i.job_id for i in items})
        jobs: dict[str, Job] = {}
        if ids:
            for row in self._read(f"SELECT {_JOB_COLUMNS} FROM queue_jobs WHERE id IN "
                                  f"({','.join('?' * len(ids))})", ids):
                jobs[row["id"]] = self._job_from_row(row, JobCounts(), (), None)
        return [(i, jobs[i.job_id]) for i in items if i.job_id in jobs]

    def top_queued_priority(self, node: str) -> int | None:
        """The highest priority among jobs with images waiting that *node* may take (None if
        none): a runner holding lower-priority images not yet sent gives them back for it."""
        row = self._read(
            "SELECT MAX(j.priority) FROM queue_jobs j WHERE (j.node_pin IS NULL OR j.node_pin = ?)"
            " AND EXISTS (SELECT 1 FROM queue_items i WHERE i.job_id = j.id AND "
            "i.state = 'queued')", (node,))
        return row[0][0] if row else None

    def demote_interactive(self, keep: str | Iterable[str] | None = None) -> list[str]:
        """Interactive jobs (Runs, learning runs) other than *keep* — one id, or the ids of
        every job someone still waits for — with images left (a crash or a closed window cut
        them short) become ordinary queued batches, so they never hold up a new Run."""
        kept = {keep} if isinstance(keep, str) else set(keep or ())
        with self._write() as db:
            rows = db.execute(
                "SELECT id FROM queue_jobs j WHERE priority >= ? AND EXISTS "
                "(SELECT 1 FROM queue_items i WHERE i.job_id = j.id AND i.state IN "
                "('queued','assigned','running'))", (INTERACTIVE_PRIORITY,)).fetchall()
            ids = [r[0] for r in rows if r[0] not in kept]
            self._demote(db, ids)
        return ids

    @staticmethod
    def _demote(db: sqlite3.Connection, job_ids: Iterable[str]) -> None:
        # Unpinned too: nobody waits at that node for it any more, any node may finish it.
        for job_id in job_ids:
            db.execute("UPDATE queue_jobs SET priority = 0, node_pin = NULL WHERE id = ? AND "
                       "priority >= ?", (job_id, INTERACTIVE_PRIORITY))

    def next_retry_at(self) -> float | None:
        """When the earliest item waiting for a retry's backoff becomes claimable."""
        row = self._read("SELECT MIN(not_before) FROM queue_items WHERE state = 'queued'")
        return row[0][0] if row and row[0][0] is not None else None

    def job_unfinished(self, job_id: str) -> bool:
        """Does the job still have images waiting or in flight? (cheap: one index probe)"""
        return bool(self._read(
            "SELECT EXISTS (SELECT 1 FROM queue_items WHERE job_id = ? AND state IN "
            "('queued','assigned','running'))", (job_id,))[0][0])

    def has_pending(self) -> bool:
        """Anything left to do (queued, or in flight somewhere)?"""
        return bool(self._read("SELECT EXISTS (SELECT 1 FROM queue_items WHERE state IN "
                               "('queued','assigned','running'))")[0][0])

    # --- moves of one claimed item (guarded by its lease) --------------------------------------

    def _move_leased(self, db: sqlite3.Connection, item_id: int, lease: str, src: set[str],
                     sets: str, params: Sequence[Any]) -> bool:
        marks = ",".join("?" * len(src))
        cur = db.execute(f"UPDATE queue_items SET {sets} WHERE id = ? AND lease = ? AND state IN "
                         f"({marks})", (*params, item_id, lease, *src))
        return cur.rowcount == 1

    def mark_running(self, item_id: int, lease: str, *, now: float | None = None) -> bool:
        """assigned → running, when the request is sent. False if the item was taken away."""
        with self._write() as db:
            return self._move_leased(db, item_id, lease, {"assigned"},
                                     "state = 'running', started_at = ?",
                                     (time.time() if now is None else now,))

    def complete(self, item_id: int, lease: str, outputs: Sequence[str | Path], *,
                 now: float | None = None) -> bool:
        """running → done with the item's output files. False if cancelled meanwhile."""
        with self._write() as db:
            return self._complete(db, item_id, lease, outputs, now)

    def complete_and_check(self, item_id: int, lease: str, outputs: Sequence[str | Path], *,
                           now: float | None = None) -> tuple[bool, bool]:
        """`complete`, and in the same breath whether the job still has unfinished images:
        (done, job_unfinished) — one round trip per finished image for the runner."""
        with self._write() as db:
            done = self._complete(db, item_id, lease, outputs, now)
            left = db.execute(
                "SELECT EXISTS (SELECT 1 FROM queue_items WHERE state IN "
                "('queued','assigned','running') AND job_id = "
                "(SELECT job_id FROM queue_items WHERE id = ?))", (item_id,)).fetchone()[0]
            return done, bool(left)

    def _complete(self, db: sqlite3.Connection, item_id: int, lease: str,
                  outputs: Sequence[str | Path], now: float | None) -> bool:
        return self._move_leased(
            db, item_id, lease, {"running"},
            "state = 'done', finished_at = ?, outputs = ?, lease = NULL, error = NULL, "
            "error_detail = NULL",
            (time.time() if now is None else now, json.dumps([str(p) for p in outputs])))

    def fail(self, item_id: int, lease: str, message: str, *, detail: str = "",
             transient: bool = False, max_retries: int = MAX_RETRIES, backoff_base: float = 2.0,
             now: float | None = None) -> ItemState | None:
        """An attempt failed. Transient errors go back to the queue after a backoff until the
        retries run out; anything else fails at once. Returns the new state (None: not ours)."""
        now = time.time() if now is None else now
        with self._write() as db:
            row = db.execute("SELECT attempts FROM queue_items WHERE id = ? AND lease = ? AND "
                             "state IN ('assigned','running')", (item_id, lease)).fetchone()
            if row is None:
                return None
            attempts = row[0] + 1
            if transient and attempts <= max_retries:
                db.execute("UPDATE queue_items SET state = 'queued', attempts = ?, not_before = ?,"
                           " lease = NULL, node = NULL, error = ?, error_detail = ? WHERE id = ?",
                           (attempts, now + backoff_delay(attempts, backoff_base), message,
                            detail, item_id))
                return ItemState.queued
            db.execute("UPDATE queue_items SET state = 'failed', attempts = ?, finished_at = ?, "
                       "lease = NULL, error = ?, error_detail = ? WHERE id = ?",
                       (attempts, now, message, detail, item_id))
            return ItemState.failed

    def release(self, item_id: int, lease: str) -> bool:
        """The node gives an item back untried (shutting down, unhealthy): no attempt counted."""
        with self._write() as db:
            return self._move_leased(db, item_id, lease, {"assigned", "running"},
                                     "state = 'queued', lease = NULL, node = NULL, "
                                     "started_at = NULL", ())

    def recover(self) -> list[WorkItem]:
        """At start-up: items a crash left assigned/running go back to the queue.

        Returns them (with the job's output folder reachable through `get_job`) so the caller
        cleans their partial outputs before they run again. Done items stay done. A Run the
        crash cut short finishes as an ordinary batch (see `demote_interactive`).
        """
        with self._write() as db:
            rows = db.execute(f"SELECT {_ITEM_COLUMNS} FROM queue_items WHERE state IN "
                              "('assigned','running')").fetchall()
            db.execute("UPDATE queue_items SET state = 'queued', lease = NULL, node = NULL, "
                       "started_at = NULL WHERE state IN ('assigned','running')")
            self._demote(db, {r["job_id"] for r in rows})
        return [self._item_from_row(r) for r in rows]

    # --- user operations -----------------------------------------------------------------------

    def cancel_item(self, item_id: int) -> bool:
        """Cancel one item; False if it had already finished. In flight, its runner stops it."""
        with self._write() as db:
            cur = db.execute("UPDATE queue_items SET state = 'cancelled', finished_at = ? WHERE "
                             "id = ? AND state IN ('queued','assigned','running')",
                             (time.time(), item_id))
            if cur.rowcount == 0:
                self._require_item(db, item_id)
            return cur.rowcount == 1

    def cancel_job(self, job_id: str) -> int:
        """Cancel every unfinished item of a job; returns how many were cancelled."""
        with self._write() as db:
            self._require_job(db, job_id)
            cur = db.execute("UPDATE queue_items SET state = 'cancelled', finished_at = ? WHERE "
                             "job_id = ? AND state IN ('queued','assigned','running')",
                             (time.time(), job_id))
            return cur.rowcount

    def retry(self, item_id: int) -> bool:
        """Put a failed or cancelled item back in the queue with fresh attempts."""
        with self._write() as db:
            cur = db.execute("UPDATE queue_items SET state = 'queued', attempts = 0, "
                             "not_before = 0, lease = NULL, node = NULL, error = NULL, "
                             "error_detail = NULL, started_at = NULL, finished_at = NULL "
                             "WHERE id = ? AND state IN ('failed','cancelled')", (item_id,))
            if cur.rowcount == 0:
                self._require_item(db, item_id)
            return cur.rowcount == 1

    def retry_failed(self, job_id: str | None = None, *, include_cancelled: bool = False) -> int:
        """Retry every failed item (of one job, or of the whole queue)."""
        states = ("failed", "cancelled") if include_cancelled else ("failed",)
        with self._write() as db:
            params: list[Any] = list(states)
            where = f"state IN ({','.join('?' * len(states))})"
            if job_id is not None:
                self._require_job(db, job_id)
                where += " AND job_id = ?"
                params.append(job_id)
            cur = db.execute("UPDATE queue_items SET state = 'queued', attempts = 0, "
                             "not_before = 0, lease = NULL, node = NULL, error = NULL, "
                             f"error_detail = NULL, started_at = NULL, finished_at = NULL WHERE "
                             f"{where}", params)
            return cur.rowcount

    def reorder(self, job_ids: Sequence[str]) -> None:
        """Drag and drop: the given jobs take the given order, in the slots they occupied.

        Jobs not listed keep their places, so a view showing part of the queue can reorder
        what it shows. Priority still comes first.
        """
        with self._write() as db:
            rows = db.execute(
                f"SELECT id, position FROM queue_jobs WHERE id IN ({','.join('?' * len(job_ids))})",
                list(job_ids)).fetchall()
            if len(rows) != len(set(job_ids)):
                missing = set(job_ids) - {r[0] for r in rows}
                raise UnknownId(f"There is no job {', '.join(sorted(missing))} in the queue.")
            slots = sorted(r[1] for r in rows)
            for job_id, position in zip(job_ids, slots, strict=True):
                db.execute("UPDATE queue_jobs SET position = ? WHERE id = ?", (position, job_id))

    def move_job(self, job_id: str, to_index: int) -> None:
        """Move a job to *to_index* in the run order (among jobs of the same priority)."""
        with self._write() as db:
            # Read inside the transaction: an order read before it could undo another
            # connection's move (or miss its new job) made in between.
            order = [r[0] for r in db.execute(
                "SELECT id FROM queue_jobs ORDER BY priority DESC, position ASC")]
            if job_id not in order:
                raise UnknownId(f"There is no job {job_id} in the queue.")
            order.remove(job_id)
            order.insert(max(0, min(to_index, len(order))), job_id)
            for position, jid in enumerate(order, start=1):
                db.execute("UPDATE queue_jobs SET position = ? WHERE id = ?", (position, jid))

    def set_priority(self, job_id: str, priority: int) -> None:
        with self._write() as db:
            self._require_job(db, job_id)
            db.execute("UPDATE queue_jobs SET priority = ? WHERE id = ?", (priority, job_id))

    def bump_priority(self, job_id: str, by: int = 1) -> int:
        """Raise (or with a negative *by*, lower) a job's priority; returns the new priority."""
        with self._write() as db:
            self._require_job(db, job_id)
            db.execute("UPDATE queue_jobs SET priority = priority + ? WHERE id = ?", (by, job_id))
            return db.execute("SELECT priority FROM queue_jobs WHERE id = ?", (job_id,)).fetchone()[0]

    def clear_finished(self, *, include_failed: bool = False) -> int:
        """Remove jobs whose every item is done or cancelled (or failed, if asked).

        Failed jobs stay by default so they can be retried. Returns how many jobs went.
        """
        keep = ("queued", "assigned", "running") + (() if include_failed else ("failed",))
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM queue_jobs WHERE NOT EXISTS (SELECT 1 FROM queue_items i WHERE "
                f"i.job_id = queue_jobs.id AND i.state IN ({','.join('?' * len(keep))}))", keep)
            return cur.rowcount

    def report(self) -> QueueReport:
        counts = self._counts()
        total = JobCounts(**{name: sum(getattr(c, name) for c in counts.values())
                             for name in JobCounts.__dataclass_fields__})
        failures = tuple(
            (f"{r[0]}/{r[1] + 1}", r[2] or "") for r in self._read(
                "SELECT job_id, idx, error FROM queue_items WHERE state = 'failed' "
                "ORDER BY job_id, idx LIMIT 100"))
        jobs = self._read("SELECT COUNT(*) FROM queue_jobs")[0][0]
        return QueueReport(jobs=jobs, counts=total, paused=self.is_paused(), failures=failures,
                           seconds_per_item=self.seconds_per_item())

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _require_job(db: sqlite3.Connection, job_id: str) -> None:
        if db.execute("SELECT 1 FROM queue_jobs WHERE id = ?", (job_id,)).fetchone() is None:
            raise UnknownId(f"There is no job {job_id} in the queue.", detail=f"job {job_id}")

    @staticmethod
    def _require_item(db: sqlite3.Connection, item_id: int) -> None:
        if db.execute("SELECT 1 FROM queue_items WHERE id = ?", (item_id,)).fetchone() is None:
            raise UnknownId(f"There is no item {item_id} in the queue.", detail=f"item {item_id}")


def _origin_dict(origin: JobOrigin) -> dict[str, str]:
    return {k: v for k, v in origin.__dict__.items() if v is not None}


def _default_name(config: PipelineConfig | None) -> str:
    if config is None:
        return "Batch"
    prompt = " ".join(config.txt2img.prompt.split())
    return (prompt[:48] + "…") if len(prompt) > 49 else (prompt or "Untitled")


__all__ = [
    "ACTIVE",
    "MAX_RETRIES",
    "QueueError",
    "QueueReport",
    "QueueStore",
    "StoreBusy",
    "TERMINAL",
    "UnknownId",
    "backoff_delay",
    "can_move",
]
