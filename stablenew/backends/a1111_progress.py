"""Following a job on an A1111/Forge WebUI: its progress, and whether the running job is ours.

The WebUI runs one job at a time for every client. With task ids (`/internal/progress`) our
task is known by its id; without them (`--nowebui`, SD.Next) the global `/progress` only shows
*a* job, and it is taken for ours by the heuristics in `OurTasks.runs_ours`. Someone else's
Interrupt or Skip on our job is noted, since the server still answers 200 with what it had.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from stablenew.backends import a1111_fields as F
from stablenew.backends.a1111_replies import float_or, int_or
from stablenew.backends.types import Progress, ProgressCallback

log = logging.getLogger(__name__)


class RunningJob(NamedTuple):
    """A job as the global /progress shows it: its start stamp (whole seconds), its name, and how
    far it got. Jobs have no ids there, so a job is "the same" while stamp and name stay and it
    never goes backwards (a new job restarts at batch 0, step 0)."""

    stamp: str
    job: str
    position: tuple[int, int]  # (job_no, sampling_step)

    @classmethod
    def of(cls, state: dict[str, Any]) -> RunningJob | None:
        if int_or(state.get("job_count"), 0) == 0:
            return None
        return cls(str(state.get("job_timestamp") or ""), str(state.get("job") or ""),
                   (int_or(state.get("job_no"), 0) or 0, int_or(state.get("sampling_step"), 0) or 0))

    def continues_as(self, later: RunningJob) -> bool:
        return (later.stamp, later.job) == (self.stamp, self.job) and later.position >= self.position


@dataclass


class OurTasks:
    """Our requests open at one server and what is known about each: the endpoint it went to,
    the job that already ran when it was sent (without task ids), the stops we asked for and
    the stops someone else made."""

    in_flight: dict[str, str] = field(default_factory=dict)  # task id -> endpoint
    interrupt_wanted: set[str] = field(default_factory=set)
    interrupt_sent: set[str] = field(default_factory=set)
    #: Our tasks that someone else stopped on the server (its /progress said interrupted
    #: or skipped while our task ran): task id -> which of the two.
    stopped_by_others: dict[str, str] = field(default_factory=dict)
    #: Without task ids: the job that was running when we sent each request (never ours).
    before: dict[str, RunningJob | None] = field(default_factory=dict)

    def note_foreign_stop(self, task_id: str, state: dict[str, Any]) -> None:
        """Remember when our running task was interrupted or skipped by someone else: A1111
        still answers 200 with what it had, which must not pass for a finished image."""
        if task_id in self.interrupt_wanted or task_id in self.interrupt_sent:
            return  # our own stop
        for flag in ("interrupted", "skipped"):
            if state.get(flag) is True:
                self.stopped_by_others.setdefault(task_id, flag)

    def runs_ours(self, state: dict[str, Any], endpoint: str, task_id: str) -> bool:
        """Without task ids, the running job is taken for ours only when: it is an API job of
        our endpoint, just one request of ours to that endpoint is open, and it is not the job
        that was already running when we sent ours (someone else's, e.g. another app's)."""
        running = RunningJob.of(state)
        if running is None:
            self.before.pop(task_id, None)  # the server went idle: the earlier job is over
            return False
        before = self.before.get(task_id)
        if before is not None:
            if before.continues_as(running):
                self.before[task_id] = running  # how far it got: a new job starts lower
                return False
            self.before.pop(task_id, None)  # a different job now: the earlier one is over
        wanted = "scripts_txt2img" if endpoint == F.TXT2IMG else "scripts_img2img"
        ours = [e for e in self.in_flight.values() if e == endpoint]
        return running.job in ("", wanted) and len(ours) == 1


def task_progress(data: dict[str, Any], state: dict[str, Any], passes: tuple[str, ...]
                  ) -> Progress:
    """Our task's progress from its /internal/progress answer and the global job *state*."""
    phase, more = pass_of(state, passes)
    return Progress(
        fraction=fraction(data.get("progress")), step=int_or(state.get("sampling_step"), None),
        steps=int_or(state.get("sampling_steps"), None), eta_seconds=float_or(data.get("eta")),
        preview=data_url_bytes(data.get("live_preview")), phase=phase, more_passes=more)


def global_progress(glob: dict[str, Any], passes: tuple[str, ...]) -> Progress:
    """The running job's progress from the global /progress (taken for ours by the caller)."""
    state = glob.get("state") or {}
    raw = float_or(glob.get("progress")) or 0.0
    image = glob.get("current_image")
    phase, more = pass_of(state, passes)
    return Progress(
        phase=phase, more_passes=more,
        fraction=max(0.0, min(1.0, raw - 0.01)) if raw else 0.0,
        step=int_or(state.get("sampling_step"), None),
        steps=int_or(state.get("sampling_steps"), None),
        eta_seconds=float_or(glob.get("eta_relative")),
        preview=b64_bytes(image) if isinstance(image, str) else None)


def notify(callback: ProgressCallback, progress: Progress) -> None:
    try:
        callback(progress)
    except Exception:  # a broken listener must not fail the job it listens to
        log.exception("progress callback failed")


def fraction(value: Any) -> float:
    number = float_or(value)
    return 0.0 if number is None else max(0.0, min(1.0, number))


def pass_of(state: dict[str, Any], passes: tuple[str, ...]) -> tuple[str, bool]:
    """Which sampling pass the server's job counter is in (`job_no` counts every pass of every
    image), and whether another follows for the same image."""
    job_no = int_or(state.get("job_no"), None)
    job_count = int_or(state.get("job_count"), 0) or 0
    if len(passes) < 2 or job_no is None or job_no < 0 or job_count <= 0:
        return passes[0], False
    if job_no >= job_count:
        # Every pass is counted and the images are being decoded and saved: still the last
        # pass's (job_no % 2 would call it the first pass again, "step 0/16").
        return passes[-1], False
    index = job_no % len(passes)
    return passes[index], index < len(passes) - 1


def b64_bytes(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True) or None
    except (binascii.Error, ValueError):
        return None


def data_url_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    return b64_bytes(value.partition(",")[2] if value.startswith("data:") else value)
