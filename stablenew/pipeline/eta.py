"""Time estimates from measured speed: one rate tracker, a book of node speeds, a run's ETA.

Every estimate StableNew shows (the command bar, the queue rows, the dry-run plan, the
randomizer's "that takes about …") is work left divided by a measured speed:

- `RateTracker` follows one measured rate (seconds per unit of work): a moving average that
  settles through the noise of single images and jumps when two images in a row say the node
  changed (it slowed down, another user took the GPU); a guessed prior is simply replaced by
  the first measurement.
- `SpeedBook` keeps a tracker per node and kind of work (a resolution class), thread-safe, in
  the units/second form that is saved between sessions (`node_speeds.json`).
- `EtaEstimator` is one run's ETA inside the runner: each stage of each image is a planned
  piece of work in "units" (sampling steps; a fixed few for an upscale), learnt per stage kind.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple


class RateTracker:
    """A measured rate (seconds per unit of work) that settles through noise and follows a real
    change within two samples."""

    #: Weight of a new sample once a few are in; higher follows changes faster, lower is calmer.
    ALPHA = 0.3
    #: A sample this many times off the estimate (either way) is notable; several notable
    #: ones in a row on the same side whose level is SURPRISE times off mean a new speed.
    NOTABLE = 1.25
    SURPRISE = 1.4

    def __init__(self, value: float | None = None, *, measured: bool = False) -> None:
        self.value = value if value is not None and value > 0 else None
        #: Samples seen; a value given without being measured (a prior) counts none.
        self.samples = 1 if measured and self.value is not None else 0
        self._run: list[float] = []  # the latest notable samples, all on one side

    def observe(self, rate: float) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            return
        self.samples += 1
        if self.value is None or self.samples == 1:
            self.value = rate  # a prior is a guess: the first measurement replaces it
            return
        weight = max(self.ALPHA, 1.0 / self.samples)  # a plain mean while samples are few
        ratio = rate / self.value
        if ratio > self.NOTABLE or ratio < 1.0 / self.NOTABLE:
            if self._run and (self._run[-1] > self.value) != (rate > self.value):
                self._run.clear()
            self._run.append(rate)
            del self._run[:-3]
            if len(self._run) >= 2:
                level = math.exp(sum(math.log(r) for r in self._run) / len(self._run))
                if level > self.SURPRISE * self.value or level * self.SURPRISE < self.value:
                    # Far off twice in a row, the same way: the node changed, not a hiccup.
                    self.value = level
                    self._run.clear()
                    return
        else:
            self._run.clear()
        if (ratio > self.SURPRISE or ratio * self.SURPRISE < 1.0) and self.samples > 3:
            weight /= 3  # one surprise alone may be a hiccup (a save, a GC): move a little
        self.value += weight * (rate - self.value)


class SpeedBook:
    """Measured seconds per unit of work, per node and kind of work; safe from any thread.

    Saved and loaded as units per second (`{node: {kind: units_per_second}}`), the form the
    scheduler plans with. A loaded speed counts as one measurement: the next images refine it.
    """

    def __init__(self, known: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self._lock = threading.Lock()
        self._rates: dict[tuple[str, str], RateTracker] = {}
        self.merge(known or {})

    def merge(self, known: Mapping[str, Mapping[str, float]]) -> None:
        """Speeds read from disk, for node and kind pairs not measured in this session yet."""
        with self._lock:
            for node, kinds in known.items():
                for kind, units_per_second in kinds.items():
                    if units_per_second > 0 and (node, kind) not in self._rates:
                        self._rates[(node, kind)] = RateTracker(1.0 / units_per_second,
                                                                measured=True)

    def observe(self, node: str, kind: str, units: float, seconds: float) -> None:
        """One piece of *units* of work took *seconds* on *node*."""
        if units <= 0 or seconds <= 0:
            return
        with self._lock:
            tracker = self._rates.get((node, kind))
            if tracker is None:
                tracker = self._rates[(node, kind)] = RateTracker()
            tracker.observe(seconds / units)

    def seconds_per_unit(self, node: str, kind: str) -> float | None:
        """The node's measured rate for this kind of work, else the mean of its other kinds
        (a node measured at one size is the best clue for another); None when unmeasured."""
        with self._lock:
            exact = self._rates.get((node, kind))
            if exact is not None and exact.value is not None:
                return exact.value
            other = [t.value for (n, _), t in self._rates.items() if n == node and t.value]
        return sum(other) / len(other) if other else None

    def nodes(self) -> set[str]:
        with self._lock:
            return {n for (n, _), t in self._rates.items() if t.value}

    def units_per_second(self) -> dict[str, dict[str, float]]:
        """What to save: units per second per node and kind."""
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            for (node, kind), tracker in self._rates.items():
                if tracker.value:
                    out.setdefault(node, {})[kind] = 1.0 / tracker.value
        return out


class _Piece(NamedTuple):
    """One planned piece of work: its stage kind and its size in units."""

    stage: str
    units: float


class EtaEstimator:
    """Predicts the seconds left in a run from the pieces of work still to do."""

    def __init__(self, plan: list[tuple[str, float]], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._pieces = [_Piece(stage, max(float(units), 1e-6)) for stage, units in plan]
        self._total_units = sum(p.units for p in self._pieces) or 1.0
        self._clock = clock
        self._rates: dict[str, RateTracker] = {}  # seconds per unit, per stage kind
        self._next = 0  # index of the first piece not yet started
        self._done_units = 0.0
        self._current: _Piece | None = None
        self._current_started = 0.0
        self._current_fraction = 0.0

    # --- what the runner tells us ---------------------------------------------------------

    def start(self, stage: str) -> None:
        """The next planned piece of *stage* begins now."""
        piece = self._take(stage)
        self._current = piece
        self._current_started = self._clock()
        self._current_fraction = 0.0

    def progress(self, fraction: float) -> None:
        self._current_fraction = min(max(fraction, self._current_fraction), 1.0)

    def finish(self) -> None:
        """The current piece finished; its duration teaches the rate of its stage kind."""
        piece = self._current
        if piece is None:
            return
        elapsed = self._clock() - self._current_started
        self._learn(piece.stage, elapsed / piece.units)
        self._done_units += piece.units
        self._current = None

    def skip(self, stage: str) -> None:
        """A planned piece will not run (its image failed before reaching it)."""
        piece = self._take(stage)
        self._done_units += piece.units
        if self._current is piece:
            self._current = None

    def abandon(self) -> None:
        """The current piece failed: count it as done without learning from its time."""
        if self._current is not None:
            self._done_units += self._current.units
            self._current = None

    # --- what the runner asks -------------------------------------------------------------

    @property
    def overall_fraction(self) -> float:
        done = self._done_units
        if self._current is not None:
            done += self._current.units * self._current_fraction
        return min(done / self._total_units, 1.0)

    def eta_seconds(self) -> float | None:
        """Seconds left for the whole run, or None before anything has been measured."""
        default = self._default_rate()
        current = self._current
        live: float | None = None
        if current is not None and self._current_fraction > 0.05:
            elapsed = self._clock() - self._current_started
            live = elapsed / (current.units * self._current_fraction)
        if default is None and live is None:
            return None
        remaining = 0.0
        if current is not None:
            rate = self._rate(current.stage)
            if live is not None:
                # Inside a piece its own pace is the best guess, blended with history.
                rate = live if rate is None else (rate + 2 * live) / 3
            rate = rate if rate is not None else (default or 0.0)
            remaining += current.units * (1.0 - self._current_fraction) * rate
        fallback = default if default is not None else live
        for piece in self._pieces[self._next:]:
            rate = self._rate(piece.stage)
            rate = fallback if rate is None else rate
            remaining += piece.units * (rate or 0.0)
        return max(remaining, 0.0)

    # --- internals ------------------------------------------------------------------------

    def _take(self, stage: str) -> _Piece:
        # Pieces are planned in run order; look ahead a little in case the runner skipped one.
        for index in range(self._next, len(self._pieces)):
            if self._pieces[index].stage == stage:
                skipped = self._pieces[self._next:index]
                self._done_units += sum(p.units for p in skipped)
                self._next = index + 1
                return self._pieces[index]
        # Unplanned work (should not happen): track it without disturbing the plan.
        piece = _Piece(stage, 1.0)
        self._total_units += 1.0
        return piece

    def _learn(self, stage: str, rate: float) -> None:
        self._rates.setdefault(stage, RateTracker()).observe(rate)

    def _rate(self, stage: str) -> float | None:
        tracker = self._rates.get(stage)
        return tracker.value if tracker is not None else None

    def _default_rate(self) -> float | None:
        known = [t.value for t in self._rates.values() if t.value is not None]
        return sum(known) / len(known) if known else None
