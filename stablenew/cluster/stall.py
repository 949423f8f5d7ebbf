"""Stall detection for one generation request, from the progress the node reports for it.

A node can stop without failing: frozen (SIGSTOP, a hung driver), or stuck in one request
while its health check still answers. The request's deadline (10 minutes) is far too late
for a queue, and the health check only notices the first kind, after its interval. The guard
watches the request's own progress instead, with limits that follow the work:

- *silence*: a client that polls progress (A1111/Forge) calls back every poll; when the calls
  stop for several times their usual spacing, the node has stopped answering.
- *no movement*: the step or fraction has not changed for many times the request's own step
  time (so a slow CPU node gets as long as it needs), with a longer allowance before the first
  step (loading a model) and after the last one (decoding and encoding the image).

A request queued at the node (progress 0, no step) is waiting, not stalled.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from stablenew.backends.errors import ServerTimeout
from stablenew.backends.types import Progress


class NodeStalled(ServerTimeout):
    """A request's progress stopped: the node is frozen or stuck; its work goes elsewhere."""

    transient = True
    fatal_for_node = True


class StallLimits(NamedTuple):
    """How long progress may stand still, in seconds (floors of the work-dependent limits)."""

    #: Silence: at least this, and at least `silence_beats` usual poll spacings.
    silence: float = 3.0
    silence_beats: float = 8.0
    #: Between steps: at least this, and at least `step_factor` times the usual step time.
    step: float = 10.0
    step_factor: float = 10.0
    #: Before the first step (the model may be loading) and after the last (decoding).
    before_first: float = 60.0
    after_last: float = 45.0


class StallGuard:
    """Watches the progress of one request; `stalled()` says why it counts as stuck, or None."""

    def __init__(self, limits: StallLimits, *, polls: bool, clock=time.monotonic) -> None:
        self.limits = limits
        self.polls = polls  # the client calls back at a steady rhythm while it polls
        self._clock = clock
        now = clock()
        self._last_move = now
        self._last_heard: float | None = None
        self._key: tuple[float, int | None] | None = None
        self._beats: list[float] = []
        self._gaps: list[float] = []
        self._moved = False
        self._last_step = False

    def heard(self, progress: Progress) -> None:
        now = self._clock()
        if self._last_heard is not None:
            self._beats = (self._beats + [now - self._last_heard])[-20:]
        self._last_heard = now
        key = (round(progress.fraction, 4), progress.step)
        waiting = progress.fraction <= 0.0 and progress.step in (None, 0)
        if waiting and not self._moved:
            self._last_move = now  # queued at the node: its turn has not come yet
            self._key = key
            return
        if key != self._key:
            if self._moved:
                self._gaps = (self._gaps + [now - self._last_move])[-20:]
            self._key = key
            self._last_move = now
            self._moved = True
            self._last_step = bool(progress.steps and progress.step is not None
                                   and progress.step >= progress.steps) or progress.fraction >= 0.98

    def stalled(self) -> str | None:
        if self._last_heard is None:
            return None  # this client reports no progress for the request (yet): no judgement
        now = self._clock()
        lim = self.limits
        if self.polls:
            # Until the rhythm is known, twice the floor (a poll answers well within that).
            limit = (max(lim.silence, lim.silence_beats * _median(self._beats))
                     if len(self._beats) >= 3 else 2 * lim.silence)
            quiet = now - self._last_heard
            if quiet > limit:
                return f"stopped answering progress checks {quiet:.0f} s ago"
        if not self._moved:
            limit = lim.before_first
        else:
            usual = _median(self._gaps) if self._gaps else 0.0
            limit = max(lim.after_last if self._last_step else lim.step, lim.step_factor * usual)
        still = now - self._last_move
        if still > limit:
            return f"made no progress for {still:.0f} s"
        return None


def _median(values: list[float]) -> float:
    # statistics.median, imported when first needed: the module costs ~4 ms at every start
    # (before the first request), and progress comes only once a request is out.
    from statistics import median

    return median(values)
