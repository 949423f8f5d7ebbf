"""QueueReads: every query of the persistent queue — what the views, the CLI, the scheduler
and a node's worker read. Nothing here changes the queue; the moves are `QueueStore`'s."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from stablenew.cluster.jobs import ItemState, Job, JobCounts, WorkItem
from stablenew.cluster.queue_db import (
    ITEM_COLUMNS,
    JOB_COLUMNS,
    QueueDatabase,
    UnknownId,
    item_from_row,
    job_from_row,
)
from stablenew.pipeline.config import PipelineConfig


@dataclass(frozen=True)
class QueueReport:
    """Totals over the whole queue, for `stablenew queue report` and the status bar."""

    jobs: int
    counts: JobCounts
    paused: bool
    failures: tuple[tuple[str, str], ...]  # (item label, reason) of failed items
    seconds_per_item: float | None


class QueueReads:
    """Reads the queue's jobs and items (over the store's one connection)."""

    def __init__(self, db: QueueDatabase) -> None:
        self._db = db

    # --- the queue as a whole -----------------------------------------------------------------

    def revision(self) -> int:
        """A number that grows with every change (from any process): cheap change detection."""
        return int(self._db.read("SELECT value FROM queue_meta WHERE key = 'revision'")[0][0])

    def integrity_ok(self) -> bool:
        return self._db.read("PRAGMA integrity_check")[0][0] == "ok"

    def is_paused(self) -> bool:
        return self._db.read("SELECT value FROM queue_meta WHERE key = 'paused'")[0][0] == "1"

    def has_pending(self) -> bool:
        """Anything left to do (queued, or in flight somewhere)?"""
        return bool(self._db.read("SELECT EXISTS (SELECT 1 FROM queue_items WHERE state IN "
                                  "('queued','assigned','running'))")[0][0])

    def next_retry_at(self) -> float | None:
        """When the earliest item waiting for a retry's backoff becomes claimable."""
        row = self._db.read("SELECT MIN(not_before) FROM queue_items WHERE state = 'queued'")
        return row[0][0] if row and row[0][0] is not None else None

    def seconds_per_item(self, *, recent: int = 20) -> float | None:
        """Recent seconds per finished image, as throughput (None before the first).

        Measured as the spacing of the last finishes rather than each image's own duration:
        with several images in flight at once (lanes, nodes) durations overlap, and their
        average would overstate the time left several times over. Only the latest unbroken
        stretch of work counts: a gap longer than the image after it took means the queue
        sat idle (overnight, between sessions), which is no image's time.
        """
        rows = self._db.read(
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

    def report(self) -> QueueReport:
        counts = self._counts()
        total = JobCounts(**{name: sum(getattr(c, name) for c in counts.values())
                             for name in JobCounts.__dataclass_fields__})
        failures = tuple(
            (f"{r[0]}/{r[1] + 1}", r[2] or "") for r in self._db.read(
                "SELECT job_id, idx, error FROM queue_items WHERE state = 'failed' "
                "ORDER BY job_id, idx LIMIT 100"))
        jobs = self._db.read("SELECT COUNT(*) FROM queue_jobs")[0][0]
        return QueueReport(jobs=jobs, counts=total, paused=self.is_paused(), failures=failures,
                           seconds_per_item=self.seconds_per_item())

    # --- jobs ---------------------------------------------------------------------------------

    def _counts(self, job_id: str | None = None) -> dict[str, JobCounts]:
        where, params = ("WHERE job_id = ?", (job_id,)) if job_id else ("", ())
        raw: dict[str, dict[str, int]] = {}
        for row in self._db.read(
                f"SELECT job_id, state, COUNT(*) FROM queue_items {where} GROUP BY job_id, state",
                params):
            raw.setdefault(row[0], {})[row[1]] = row[2]
        return {jid: JobCounts(total=sum(c.values()), **c) for jid, c in raw.items()}

    def _nodes(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for row in self._db.read(
                "SELECT DISTINCT job_id, node FROM queue_items WHERE state IN ('assigned','running')"
                " AND node IS NOT NULL ORDER BY node"):
            out.setdefault(row[0], []).append(row[1])
        return {k: tuple(v) for k, v in out.items()}

    def list_jobs(self) -> list[Job]:
        """Every job in the order the queue will run them."""
        counts = self._counts()
        nodes = self._nodes()
        per_item = self.seconds_per_item()  # already the whole queue's pace, all nodes
        jobs = []
        ahead = 0.0
        for row in self._db.read(f"SELECT {JOB_COLUMNS} FROM queue_jobs "
                                 "ORDER BY priority DESC, position ASC"):
            c = counts.get(row["id"], JobCounts())
            remaining = c.queued + c.assigned + c.running
            eta = None
            if per_item is not None and remaining:
                # Jobs run in order, so a job's ETA includes the work queued ahead of it.
                ahead += remaining * per_item
                eta = ahead
            jobs.append(job_from_row(row, c, nodes.get(row["id"], ()), eta))
        return jobs

    def get_job(self, job_id: str) -> Job:
        rows = self._db.read(f"SELECT {JOB_COLUMNS} FROM queue_jobs WHERE id = ?", (job_id,))
        if not rows:
            raise UnknownId(f"There is no job {job_id} in the queue.", detail=f"job {job_id}")
        counts = self._counts(job_id).get(job_id, JobCounts())
        return job_from_row(rows[0], counts, self._nodes().get(job_id, ()), None)

    def job_unfinished(self, job_id: str) -> bool:
        """Does the job still have images waiting or in flight? (cheap: one index probe)"""
        return bool(self._db.read(
            "SELECT EXISTS (SELECT 1 FROM queue_items WHERE job_id = ? AND state IN "
            "('queued','assigned','running'))", (job_id,))[0][0])

    def finished_job(self, job_id: str) -> Job | None:
        """The job once none of its images waits or runs (None before that, or once cleared)."""
        if self.job_unfinished(job_id):
            return None
        try:
            job = self.get_job(job_id)
        except UnknownId:
            return None
        return job if job.counts.total and job.counts.finished == job.counts.total else None

    def resolve(self, text: str) -> tuple[str, str | int]:
        """Turn what a user typed into ("job", job_id) or ("item", item_id).

        Accepts a job id or any unique start of one, and `JOB/N` for the N-th image of a job.
        """
        text = text.strip()
        job_part, _, number = text.partition("/")
        rows = self._db.read("SELECT id FROM queue_jobs WHERE id LIKE ? ESCAPE '\\'",
                             (job_part.replace("\\", "\\\\").replace("%", "\\%")
                              .replace("_", "\\_") + "%",))
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
        row = self._db.read("SELECT id FROM queue_items WHERE job_id = ? AND idx = ?",
                            (job_id, int(number) - 1))
        if not row:
            raise UnknownId(f"Job {job_id} has no image {number}.")
        return ("item", row[0][0])

    # --- items --------------------------------------------------------------------------------

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
        rows = self._db.read(
            f"SELECT {ITEM_COLUMNS} FROM queue_items {where} ORDER BY job_id, idx", params)
        return [item_from_row(r) for r in rows]

    def get_item(self, item_id: int) -> WorkItem:
        rows = self._db.read(f"SELECT {ITEM_COLUMNS} FROM queue_items WHERE id = ?", (item_id,))
        if not rows:
            raise UnknownId(f"There is no item {item_id} in the queue.", detail=f"item {item_id}")
        return item_from_row(rows[0])

    def item_states(self, item_ids: Iterable[int]) -> dict[int, tuple[ItemState, str | None]]:
        """Current state and lease of some items (the runner watches its in-flight ones)."""
        ids = list(item_ids)
        if not ids:
            return {}
        rows = self._db.read(f"SELECT id, state, lease FROM queue_items WHERE id IN "
                             f"({','.join('?' * len(ids))})", ids)
        return {r[0]: (ItemState(r[1]), r[2]) for r in rows}

    def config_for(self, item: WorkItem) -> PipelineConfig:
        """The exact config an item renders (its job's config with its seed, or its own)."""
        row = self._db.read("SELECT i.config, j.base_config FROM queue_items i JOIN queue_jobs j "
                            "ON j.id = i.job_id WHERE i.id = ?", (item.id,))
        if not row:
            raise UnknownId(f"There is no item {item.label} in the queue.")
        own, base = row[0]
        return self._db.config(item, own, base)

    # --- what a scheduler and a node's worker plan over ---------------------------------------

    def queued_in_order(self, limit: int, *, now: float | None = None
                        ) -> list[tuple[WorkItem, Job]]:
        """The first *limit* claimable queued items in run order (priority, job order, image
        order) with their jobs: what a scheduler plans over. Items waiting for a retry's
        backoff are left out."""
        now = time.time() if now is None else now
        columns = ", ".join(f"i.{c.strip()}" for c in ITEM_COLUMNS.split(","))
        rows = self._db.read(
            f"SELECT {columns} FROM queue_items i JOIN queue_jobs j ON j.id = i.job_id "
            "WHERE i.state = 'queued' AND i.not_before <= ? "
            "ORDER BY j.priority DESC, j.position ASC, i.idx ASC LIMIT ?", (now, limit))
        items = [item_from_row(r) for r in rows]
        ids = sorted({i.job_id for i in items})
        jobs: dict[str, Job] = {}
        if ids:
            for row in self._db.read(f"SELECT {JOB_COLUMNS} FROM queue_jobs WHERE id IN "
                                     f"({','.join('?' * len(ids))})", ids):
                jobs[row["id"]] = job_from_row(row, JobCounts(), (), None)
        return [(i, jobs[i.job_id]) for i in items if i.job_id in jobs]

    def top_queued_priority(self, node: str) -> int | None:
        """The highest priority among jobs with images waiting that *node* may take (None if
        none): a runner holding lower-priority images not yet sent gives them back for it."""
        row = self._db.read(
            "SELECT MAX(j.priority) FROM queue_jobs j WHERE (j.node_pin IS NULL OR j.node_pin = ?)"
            " AND EXISTS (SELECT 1 FROM queue_items i WHERE i.job_id = j.id AND "
            "i.state = 'queued')", (node,))
        return row[0][0] if row else None
