"""QueueStore: the persistent queue's state moves in SQLite (WAL), one transaction per move.

Adding jobs, claiming items, their moves under a lease (running, done, failed, released), crash
recovery and the user's operations (cancel, retry, reorder, priority, pause, clear) live here;
every query is `QueueReads` (`store.reads`), and the schema, the connection and why this
survives crashes are `queue_db`. One store per database and process: it holds the process's
one connection, which its reads share.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

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
from stablenew.cluster.queue_db import (
    ITEM_COLUMNS,
    JOB_COLUMNS,
    SAME,
    QueueDatabase,
    QueueError,
    StoreBusy,
    UnknownId,
    item_from_row,
    job_from_row,
)
from stablenew.cluster.queue_reads import QueueReads, QueueReport
from stablenew.cluster.tiers import NodeTier
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.paths import AppPaths

T = TypeVar("T")
P = ParamSpec("P")

#: Retries after the first attempt for transient errors (unreachable, 500, timeout).
MAX_RETRIES = 3

#: The job's columns in `_NEXT_ITEM_SQL`, named apart from the item's (both have an `id`).
_JOB_KEYS = {c: f"job_{c}" for c in SAME}
#: The next claimable item in run order with its job: for each job an index probe for its
#: first queued item past any retry backoff, then the first job (priority, drag and drop
#: order) that has one. Nothing for jobs pinned elsewhere; while the queue is paused, only
#: interactive Runs (a pause holds batches back, not the image the user is waiting for).
_NOT_PAUSED = (f"((SELECT value FROM queue_meta WHERE key = 'paused') <> '1' OR "
               f"j.priority >= {INTERACTIVE_PRIORITY})")
_NEXT_ITEM_SQL = (
    "SELECT " + ", ".join(f"i.{c.strip()}" for c in ITEM_COLUMNS.split(",")) + ", i.config, "
    + ", ".join(f"j.{c} AS job_{c}" for c in SAME) + ", j.base_config FROM queue_jobs j "
    "JOIN queue_items i ON i.id = (SELECT q.id FROM queue_items q WHERE q.job_id = j.id AND "
    "q.state = 'queued' AND q.not_before <= ? ORDER BY q.idx LIMIT 1) "
    f"WHERE {_NOT_PAUSED} AND "
    "(j.node_pin IS NULL OR j.node_pin = ?) ORDER BY j.priority DESC, j.position ASC LIMIT 1")


def backoff_delay(attempt: int, base: float) -> float:
    """Seconds to wait before retry number *attempt* (1-based): base, 2·base, 4·base, ..."""
    return base * (2 ** max(0, attempt - 1))


class QueueStore:
    """The queue's jobs and work items and every move between their states; safe to share
    between threads. `reads` answers the queries over the same connection."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else AppPaths.default().database_file
        self._db = QueueDatabase(self.path)
        #: Every query of the queue (jobs, items, report), over this store's connection.
        self.reads = QueueReads(self._db)

    # --- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> QueueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call_nowait(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run *fn* — a call of this store or of its `reads` making at most ONE transaction —
        on the calling thread, but only if it needs no waiting; raises `StoreBusy`, having
        done nothing, otherwise (see `QueueDatabase.call_nowait`)."""
        return self._db.call_nowait(fn, *args, **kwargs)

    def checkpoint(self) -> None:
        """Copy the WAL into the database now (PASSIVE: never waits for readers). Called from
        a worker thread, so the fsync this takes does not fall on an event loop's commit."""
        self._db.checkpoint()

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
        tier: NodeTier | None = None,
    ) -> Job:
        """Add a job with one work item per image; *configs* may be a lazy plan (streamed).

        With a single config, items share the job's config and differ only by seed; a plan
        stores each item's own config. Images go to *output_dir*, or to a new folder named
        for the job under *output_root* (default: the outputs folder). *count* asks for that
        many images of a single config instead of its batch count × batch size. *job_id* lets
        a caller that follows the job's events know its id before the first one can arrive.
        *tier*: the node tier its images prefer (a funnel step's), see `tiers`.
        """
        job_id = job_id or uuid.uuid4().hex[:8]
        origin = origin or JobOrigin()
        now = time.time()
        base = configs if isinstance(configs, PipelineConfig) else None
        images: Iterable[tuple[PipelineConfig, Variant]]
        if expand_batches:
            images = expand(configs, count=count)
        else:
            images = _as_given([base] if base is not None else configs)
        if output_dir is None:
            stamp = time.strftime("%Y-%m-%d", time.localtime(now))
            root = Path(output_root) if output_root else AppPaths.default().default_output_dir
            output_dir = root / f"queue-{stamp}-{job_id}"
        base_json = None
        if base is not None:
            base_json = base.model_dump_json()
        name = name or _default_name(base)
        with self._db.write() as db:
            position = db.execute(
                "SELECT COALESCE(MAX(position), 0) + 1 FROM queue_jobs").fetchone()[0]
            db.execute(
                "INSERT INTO queue_jobs (id, name, kind, priority, position, created_at, output_dir,"
                " base_config, origin, node_pin, total, tier) VALUES (?,?,?,?,?,?,?,?,?,?,0,?)",
                (job_id, name, str(kind), priority, position, now, str(output_dir), base_json,
                 json.dumps(_origin_dict(origin)), node_pin, tier.value if tier else None))
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
        return self.reads.get_job(job_id)

    # --- pause --------------------------------------------------------------------------------

    def set_paused(self, paused: bool) -> None:
        """Pause or resume the whole queue; items already running finish."""
        with self._db.write() as db:
            db.execute("UPDATE queue_meta SET value = ? WHERE key = 'paused'",
                       ("1" if paused else "0",))

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
        with self._db.write() as db:
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
        with self._db.write() as db:
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
            job = job_from_row(row, JobCounts(), (), None, key=_JOB_KEYS)
            return self._take(db, item_from_row(row), job, row["config"],
                              row["base_config"], node, now, start)
        # Nothing while paused: the pause flag is part of the query (one statement less).
        jobs = db.execute(
            f"SELECT {JOB_COLUMNS}, base_config FROM queue_jobs j WHERE {_NOT_PAUSED} AND "
            "(node_pin IS NULL OR node_pin = ?) AND "
            "EXISTS (SELECT 1 FROM queue_items i WHERE i.job_id = j.id AND"
            " i.state = 'queued') ORDER BY priority DESC, position ASC", (node,)).fetchall()
        for job_row in jobs:
            job = job_from_row(job_row, JobCounts(), (), None)
            # Read lazily: without a filter the first row is taken and the rest never built.
            rows = db.execute(
                f"SELECT {ITEM_COLUMNS}, config FROM queue_items WHERE job_id = ? AND "
                "state = 'queued' AND not_before <= ? ORDER BY idx LIMIT ?",
                (job.id, now, scan))
            for row in rows:
                item = item_from_row(row)
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
        return Claim(item=claimed, job=job, config=self._db.config(claimed, own, base), lease=lease)

    def demote_interactive(self, keep: str | Iterable[str] | None = None) -> list[str]:
        """Interactive jobs (Runs, learning runs) other than *keep* — one id, or the ids of
        every job someone still waits for — with images left (a crash or a closed window cut
        them short) become ordinary queued batches, so they never hold up a new Run."""
        kept = {keep} if isinstance(keep, str) else set(keep or ())
        with self._db.write() as db:
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

    # --- moves of one claimed item (guarded by its lease) --------------------------------------

    def _move_leased(self, db: sqlite3.Connection, item_id: int, lease: str, src: set[str],
                     sets: str, params: Sequence[Any]) -> bool:
        marks = ",".join("?" * len(src))
        cur = db.execute(f"UPDATE queue_items SET {sets} WHERE id = ? AND lease = ? AND state IN "
                         f"({marks})", (*params, item_id, lease, *src))
        return cur.rowcount == 1

    def mark_running(self, item_id: int, lease: str, *, now: float | None = None) -> bool:
        """assigned → running, when the request is sent. False if the item was taken away."""
        with self._db.write() as db:
            return self._move_leased(db, item_id, lease, {"assigned"},
                                     "state = 'running', started_at = ?",
                                     (time.time() if now is None else now,))

    def complete(self, item_id: int, lease: str, outputs: Sequence[str | Path], *,
                 now: float | None = None) -> bool:
        """running → done with the item's output files; also an item cancelled while its image
        was being saved, if still under this lease (the image exists: the cancel came too late
        to stop it). False if it was taken away (its lease changed) or cleared meanwhile."""
        with self._db.write() as db:
            return self._complete(db, item_id, lease, outputs, now)

    def complete_and_check(self, item_id: int, lease: str, outputs: Sequence[str | Path], *,
                           now: float | None = None) -> tuple[bool, bool]:
        """`complete`, and in the same breath whether the job still has unfinished images:
        (done, job_unfinished) — one round trip per finished image for the runner."""
        with self._db.write() as db:
            done = self._complete(db, item_id, lease, outputs, now)
            left = db.execute(
                "SELECT EXISTS (SELECT 1 FROM queue_items WHERE state IN "
                "('queued','assigned','running') AND job_id = "
                "(SELECT job_id FROM queue_items WHERE id = ?))", (item_id,)).fetchone()[0]
            return done, bool(left)

    def _complete(self, db: sqlite3.Connection, item_id: int, lease: str,
                  outputs: Sequence[str | Path], now: float | None) -> bool:
        return self._move_leased(
            db, item_id, lease, {"running", "cancelled"},
            "state = 'done', finished_at = ?, outputs = ?, lease = NULL, error = NULL, "
            "error_detail = NULL",
            (time.time() if now is None else now, json.dumps([str(p) for p in outputs])))

    def fail(self, item_id: int, lease: str, message: str, *, detail: str = "",
             transient: bool = False, max_retries: int = MAX_RETRIES, backoff_base: float = 2.0,
             now: float | None = None) -> ItemState | None:
        """An attempt failed. Transient errors go back to the queue after a backoff until the
        retries run out; anything else fails at once. Returns the new state (None: not ours)."""
        now = time.time() if now is None else now
        with self._db.write() as db:
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
        with self._db.write() as db:
            return self._move_leased(db, item_id, lease, {"assigned", "running"},
                                     "state = 'queued', lease = NULL, node = NULL, "
                                     "started_at = NULL", ())

    def recover(self) -> list[WorkItem]:
        """At start-up: items a crash left assigned/running go back to the queue.

        Returns them (with the job's output folder reachable through `get_job`) so the caller
        cleans their partial outputs before they run again. Done items stay done. A Run the
        crash cut short finishes as an ordinary batch (see `demote_interactive`).
        """
        with self._db.write() as db:
            rows = db.execute(f"SELECT {ITEM_COLUMNS} FROM queue_items WHERE state IN "
                              "('assigned','running')").fetchall()
            db.execute("UPDATE queue_items SET state = 'queued', lease = NULL, node = NULL, "
                       "started_at = NULL WHERE state IN ('assigned','running')")
            self._demote(db, {r["job_id"] for r in rows})
        return [item_from_row(r) for r in rows]

    # --- user operations -----------------------------------------------------------------------

    def cancel_item(self, item_id: int) -> bool:
        """Cancel one item; False if it had already finished. In flight, its runner stops it."""
        with self._db.write() as db:
            cur = db.execute("UPDATE queue_items SET state = 'cancelled', finished_at = ? WHERE "
                             "id = ? AND state IN ('queued','assigned','running')",
                             (time.time(), item_id))
            if cur.rowcount == 0:
                self._require_item(db, item_id)
            return cur.rowcount == 1

    def cancel_job(self, job_id: str) -> int:
        """Cancel every unfinished item of a job; returns how many were cancelled."""
        with self._db.write() as db:
            self._require_job(db, job_id)
            cur = db.execute("UPDATE queue_items SET state = 'cancelled', finished_at = ? WHERE "
                             "job_id = ? AND state IN ('queued','assigned','running')",
                             (time.time(), job_id))
            return cur.rowcount

    def retry(self, item_id: int) -> bool:
        """Put a failed or cancelled item back in the queue with fresh attempts."""
        with self._db.write() as db:
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
        with self._db.write() as db:
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
        with self._db.write() as db:
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
        with self._db.write() as db:
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
        with self._db.write() as db:
            self._require_job(db, job_id)
            db.execute("UPDATE queue_jobs SET priority = ? WHERE id = ?", (priority, job_id))

    def bump_priority(self, job_id: str, by: int = 1) -> int:
        """Raise (or with a negative *by*, lower) a job's priority; returns the new priority."""
        with self._db.write() as db:
            self._require_job(db, job_id)
            db.execute("UPDATE queue_jobs SET priority = priority + ? WHERE id = ?", (by, job_id))
            return db.execute("SELECT priority FROM queue_jobs WHERE id = ?", (job_id,)).fetchone()[0]

    def clear_finished(self, *, include_failed: bool = False) -> int:
        """Remove jobs whose every item is done or cancelled (or failed, if asked).

        Failed jobs stay by default so they can be retried. Returns how many jobs went.
        """
        keep = ("queued", "assigned", "running") + (() if include_failed else ("failed",))
        with self._db.write() as db:
            cur = db.execute(
                "DELETE FROM queue_jobs WHERE NOT EXISTS (SELECT 1 FROM queue_items i WHERE "
                f"i.job_id = queue_jobs.id AND i.state IN ({','.join('?' * len(keep))}))", keep)
            return cur.rowcount

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _require_job(db: sqlite3.Connection, job_id: str) -> None:
        if db.execute("SELECT 1 FROM queue_jobs WHERE id = ?", (job_id,)).fetchone() is None:
            raise UnknownId(f"There is no job {job_id} in the queue.", detail=f"job {job_id}")

    @staticmethod
    def _require_item(db: sqlite3.Connection, item_id: int) -> None:
        if db.execute("SELECT 1 FROM queue_items WHERE id = ?", (item_id,)).fetchone() is None:
            raise UnknownId(f"There is no item {item_id} in the queue.", detail=f"item {item_id}")


def _as_given(configs: Iterable[Any]) -> Iterator[tuple[PipelineConfig, Variant]]:
    """One image per config, as given (no batch expansion)."""
    for config in configs:
        yield config, Variant()


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
    "QueueReads",
    "QueueReport",
    "QueueStore",
    "StoreBusy",
    "TERMINAL",
    "UnknownId",
    "backoff_delay",
    "can_move",
]
