"""QueueEstimates: when each queued job will be done, from every node's measured speed.

Fed with the queue's events (an image starts on a node, progresses, finishes) and with the
jobs as the store lists them, it learns each node's speed as its images finish (seconds per
work unit per resolution class, in a `SpeedBook`) and works out the time left per job: images
in flight finish at their node's pace, corrected by their own progress; waiting images go, in
queue order, to whichever node frees up first. The queue rows and the command bar read the
same numbers, and the speeds are saved for the dry-run plan (`node_speeds.json`).

A node's time per image is measured as the spacing of its finishes (from an image's start or
the node's previous finish, whichever is later): several images are in flight on a node at
once (one rendering, one waiting at the server, others being saved), so an image's own start
to finish would count the waiting too.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stablenew.cluster.jobs import ItemState, Job, JobState
from stablenew.cluster.queue_events import ItemFinished, ItemProgress, ItemStarted
from stablenew.cluster.work import requirements_for
from stablenew.pipeline.eta import SpeedBook
from stablenew.pipeline.events import ProgressUpdate

if TYPE_CHECKING:
    from stablenew.cluster.queue_store import QueueStore
    from stablenew.pipeline.config import PipelineConfig

log = logging.getLogger(__name__)

#: Items of one job read to learn how heavy its images are (a plan's images differ a little).
SAMPLE_ITEMS = 8
#: Up to this many waiting images of a job are placed one by one; beyond, as a steady flow.
EXACT_ITEMS = 64
#: A node that has not been seen working this long after the others is not counted on.
IDLE_AFTER = 60.0
#: Learnt speeds are written at most this often while the queue runs (and when it closes).
SAVE_EVERY = 10.0


# --- learned speeds between sessions ------------------------------------------------------------


def speeds_file(data_dir: Path) -> Path:
    return data_dir / "node_speeds.json"


def load_speeds(path: Path) -> dict[str, dict[str, float]]:
    """Speeds learned in earlier runs (work units per second, per node and size class); an
    unreadable file only means starting from the VRAM-based guesses again."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, dict[str, float]] = {}
    if isinstance(raw, dict):
        for node, classes in raw.items():
            if isinstance(classes, dict):
                good = {str(c): float(v) for c, v in classes.items()
                        if isinstance(v, int | float) and v > 0}
                if good:
                    out[str(node)] = good
    return out


#: Two savers in one process (the queue's estimates during a run, the nodes' dispatcher at its
#: stop) each read, merge and write the file: without this, one's nodes could be lost.
_SAVING = threading.Lock()


def save_speeds(path: Path, speeds: dict[str, dict[str, float]]) -> None:
    """Merge *speeds* into the file: nodes not measured this time keep what was learnt."""
    from stablenew.storage.atomic import atomic_write_text

    with _SAVING:
        merged = load_speeds(path)
        for node, classes in speeds.items():
            if classes:
                merged[node] = {**merged.get(node, {}), **classes}
        atomic_write_text(path, json.dumps(merged, indent=1, sort_keys=True))


@dataclass(frozen=True)
class JobWork:
    """How heavy one job's images are: work units per image and their resolution class."""

    units: float
    kind: str


@dataclass
class _Flight:
    job_id: str
    node: str
    started: float
    fraction: float = 0.0
    first_progress: float | None = None  # when the node was first seen working on it
    first_fraction: float = 0.0


@dataclass(frozen=True)
class _Waiting:
    job_id: str
    count: int
    pin: str | None


def work_of(config: PipelineConfig) -> JobWork:
    req = requirements_for(config)
    return JobWork(req.work_units, req.size_class)


class QueueEstimates:
    """Learns node speeds from queue events and says when each job will be done (see module)."""

    def __init__(self, speeds: SpeedBook | None = None, *, path: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.speeds = speeds if speeds is not None else SpeedBook()
        #: Where learnt speeds are kept between sessions (read at the first `read_jobs`).
        self.path = path
        self._loaded = path is None
        self._saved_at = 0.0
        self._learnt = False
        self._clock = clock
        self._lock = threading.RLock()
        self._flights: dict[int, _Flight] = {}
        self._last_finish: dict[str, float] = {}
        self._nodes: dict[str, float] = {}  # nodes that worked the queue -> when last seen
        self._work: dict[str, JobWork] = {}
        self._waiting: list[_Waiting] = []
        #: Images taken from a job's waiting ones since the jobs were last read (the rows are
        #: read a moment after the events; the bar asks in between).
        self._taken: dict[str, int] = {}
        #: Finished images whose job's weight was not known yet: (node, job, seconds).
        self._unlearnt: list[tuple[str, str, float]] = []

    # --- what the queue tells us ------------------------------------------------------------------

    def on_queue_event(self, event: Any) -> None:
        now = self._clock()
        with self._lock:
            if isinstance(event, ItemStarted):
                self._flights[event.item.id] = _Flight(event.item.job_id, event.node, now)
                self._nodes[event.node] = now
                self._taken[event.item.job_id] = self._taken.get(event.item.job_id, 0) + 1
            elif isinstance(event, ItemProgress):
                flight = self._flights.get(event.item.id)
                update = event.event
                if flight is not None and isinstance(update, ProgressUpdate):
                    fraction = min(max(update.overall_fraction, 0.0), 1.0)
                    if flight.first_progress is None and fraction > 0:
                        flight.first_progress, flight.first_fraction = now, fraction
                    flight.fraction = max(flight.fraction, fraction)
            elif isinstance(event, ItemFinished):
                flight = self._flights.pop(event.item.id, None)
                if flight is None:
                    return
                if event.state is ItemState.queued:  # back to waiting (a retry, given back)
                    self._taken[flight.job_id] = self._taken.get(flight.job_id, 0) - 1
                node = flight.node
                began = max(flight.started, self._last_finish.get(node, flight.started))
                self._last_finish[node] = now
                self._nodes[node] = now
                if event.state is ItemState.done:
                    self._learn(node, flight.job_id, now - began)

    def _learn(self, node: str, job_id: str, seconds: float) -> None:
        work = self._work.get(job_id)
        if work is None:
            self._unlearnt.append((node, job_id, seconds))
            del self._unlearnt[:-256]
            return
        self.speeds.observe(node, work.kind, work.units, seconds)
        self._learnt = True

    def set_jobs(self, jobs: Sequence[Job], work: dict[str, JobWork]) -> None:
        """The jobs in run order (as the store lists them) and the weight of their images."""
        with self._lock:
            self._work.update(work)
            self._waiting = [_Waiting(j.id, j.counts.queued, j.node_pin) for j in jobs
                             if j.counts.queued or j.counts.assigned or j.counts.running]
            self._taken.clear()
            unlearnt, self._unlearnt = self._unlearnt, []
            for node, job_id, seconds in unlearnt:
                self._learn(node, job_id, seconds)

    def read_jobs(self, store: QueueStore, jobs: list[Job] | None = None) -> list[Job]:
        """Read what the estimate needs from *store* (the jobs, once per job the weight of its
        images) and return the jobs with their time left; call it off the GUI thread."""
        if not self._loaded:
            self._loaded = True
            assert self.path is not None
            self.speeds.merge(load_speeds(self.path))
        jobs = store.reads.list_jobs() if jobs is None else jobs
        work: dict[str, JobWork] = {}
        for job in jobs:
            if job.id in self._work or job.state not in (JobState.queued, JobState.running):
                continue
            found = self._weigh(store, job)
            if found is not None:
                work[job.id] = found
        self.set_jobs(jobs, work)
        if self._learnt and self._clock() - self._saved_at > SAVE_EVERY:
            self.save()
        etas = self.etas()
        return [replace(j, eta_seconds=etas.get(j.id)) for j in jobs]

    def save(self) -> None:
        """Keep what was learnt for the next session and the dry-run plan (off the GUI thread)."""
        if self.path is None or not self._learnt:
            return
        self._learnt = False
        self._saved_at = self._clock()
        try:
            save_speeds(self.path, self.speeds.units_per_second())
        except OSError as exc:
            log.warning("queue: could not keep the measured node speeds in %s: %s", self.path, exc)

    @staticmethod
    def _weigh(store: QueueStore, job: Job) -> JobWork | None:
        items = store.reads.items(job.id, states=(ItemState.queued, ItemState.assigned,
                                            ItemState.running))
        if not items:
            return None
        step = max(1, len(items) // SAMPLE_ITEMS)
        sample = [work_of(store.reads.config_for(item)) for item in items[::step][:SAMPLE_ITEMS]]
        return JobWork(sum(w.units for w in sample) / len(sample), sample[0].kind)

    # --- what the views ask -----------------------------------------------------------------------

    def job_eta(self, job_id: str) -> float | None:
        """Seconds until every image of the job is done; None when it cannot be said yet."""
        return self.etas().get(job_id)

    def seconds_per_image(self, config: PipelineConfig, node: str | None = None) -> float | None:
        """How long one image of *config* takes on *node* (default: the nodes working the
        queue, together); None before any node has been measured."""
        work = work_of(config)
        with self._lock:
            nodes = [node] if node else self._working() or sorted(self.speeds.nodes())
            rates = [self._rate(n, work.kind, self._clock()) for n in nodes]
        per_second = sum(1.0 / (r * work.units) for r in rates if r)
        return 1.0 / per_second if per_second else None

    def etas(self) -> dict[str, float]:
        """Seconds left per job that still has images waiting or in flight (known ones)."""
        with self._lock:
            now = self._clock()
            nodes = self._working()
            if not nodes:
                return {}
            free: dict[str, float] = {}
            ends: dict[str, float] = {}
            unknown = False
            for node in nodes:
                t = 0.0
                flights = sorted((f for f in self._flights.values() if f.node == node),
                                 key=lambda f: f.started)
                for flight in flights:
                    left = self._flight_left(flight, now)
                    if left is None:
                        unknown = True
                        continue
                    t += left
                    ends[flight.job_id] = max(ends.get(flight.job_id, 0.0), t)
                free[node] = t
            etas: dict[str, float] = {}
            for listed in self._waiting:
                waiting = replace(listed, count=max(0, listed.count
                                                    - self._taken.get(listed.job_id, 0)))
                work = self._work.get(waiting.job_id)
                end = ends.get(waiting.job_id)
                if waiting.count and work is not None and not unknown:
                    team = [waiting.pin] if waiting.pin in free else nodes
                    times = {n: (r * work.units if (r := self._rate(n, work.kind, now)) else None)
                             for n in team}
                    if any(t is None for t in times.values()):
                        unknown = True  # a node nobody can say the speed of yet
                    else:
                        done = _place(waiting.count, {n: free[n] for n in team},
                                      {n: t for n, t in times.items() if t is not None})
                        free.update(done.free)
                        end = max(end or 0.0, done.end)
                elif waiting.count:
                    unknown = True  # later jobs wait behind this one: no honest figure for them
                if end is not None and not (unknown and waiting.count):
                    etas[waiting.job_id] = end
            return etas

    # --- internals -----------------------------------------------------------------------------------

    def _working(self) -> list[str]:
        """Nodes counted on: those with images in flight or seen lately (a node that went away
        while the others carried on is not)."""
        if not self._nodes:
            return []
        latest = max(self._nodes.values())
        busy = {f.node for f in self._flights.values()}
        return [n for n, seen in self._nodes.items() if n in busy or latest - seen < IDLE_AFTER]

    def _rate(self, node: str, kind: str, now: float) -> float | None:
        """Seconds per work unit: the node's measured speed; unmeasured, the live pace of its
        image in flight, else the others' median (a prior the first finished image replaces)."""
        rate = self.speeds.seconds_per_unit(node, kind)
        if rate is not None:
            return rate
        for flight in self._flights.values():
            if flight.node == node and (live := self._live_rate(flight, now)) is not None:
                return live
        others = sorted(r for n in self._nodes if n != node
                        and (r := self.speeds.seconds_per_unit(n, kind)) is not None)
        return others[len(others) // 2] if others else None

    def _live_rate(self, flight: _Flight, now: float) -> float | None:
        work = self._work.get(flight.job_id)
        if work is None or flight.first_progress is None:
            return None
        seen = flight.fraction - flight.first_fraction
        if seen < 0.1 or flight.fraction >= 1.0:
            return None
        return (now - flight.first_progress) / (seen * work.units)

    def _flight_left(self, flight: _Flight, now: float) -> float | None:
        work = self._work.get(flight.job_id)
        if work is None:
            return None
        if flight.fraction >= 1.0:
            return 0.0  # rendered; its image is being saved
        measured = self.speeds.seconds_per_unit(flight.node, work.kind)
        live = self._live_rate(flight, now)
        if measured is None and live is None:
            measured = self._rate(flight.node, work.kind, now)
            if measured is None:
                return None
        if live is not None:
            # The image's own pace says most about its rest, the more of it has been seen.
            rate = live if measured is None else measured + flight.fraction * (live - measured)
            return work.units * (1.0 - flight.fraction) * rate
        assert measured is not None
        expected = work.units * measured
        if flight.fraction > 0:
            return expected * (1.0 - flight.fraction)
        # No progress (waiting at the node, or a server that reports none): the time it has
        # been the node's turn counts off, never below a little.
        turn = max(flight.started, self._last_finish.get(flight.node, flight.started))
        if any(f.node == flight.node and f.started < flight.started and f.fraction < 1.0
               for f in self._flights.values()):
            return expected  # an earlier image is still rendering there
        return max(expected - (now - turn), 0.1 * expected)


@dataclass
class _Placed:
    free: dict[str, float]
    end: float


def _place(count: int, free: dict[str, float], per_image: dict[str, float]) -> _Placed:
    """*count* images over nodes free at *free*, each taking *per_image* there: every image to
    the node that finishes it first (a steady flow beyond EXACT_ITEMS)."""
    free = dict(free)
    if len(free) == 1:
        (node, start), = free.items()
        free[node] = start + count * per_image[node]
        return _Placed(free, free[node])
    exact = min(count, EXACT_ITEMS)
    flow = count - exact
    if flow:
        # Nodes share the flow at their speeds: it ends at T with sum((T - free) / t) = flow.
        order = sorted(free, key=free.__getitem__)
        end = 0.0
        for k in range(len(order)):
            team = order[:k + 1]
            speed = sum(1.0 / per_image[n] for n in team)
            end = (flow + sum(free[n] / per_image[n] for n in team)) / speed
            if k + 1 == len(order) or end <= free[order[k + 1]]:
                break
        for node in free:
            free[node] = max(free[node], end)
    heap = [(free[n] + per_image[n], n) for n in free]
    heapq.heapify(heap)
    end = 0.0
    for _ in range(exact):
        finish, node = heapq.heappop(heap)
        free[node] = finish
        end = max(end, finish)
        heapq.heappush(heap, (finish + per_image[node], node))
    return _Placed(free, end)
