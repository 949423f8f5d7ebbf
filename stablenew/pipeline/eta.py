"""ETA for a whole run from measured per-step times, smoothed and refined as the run goes.

Each stage of each image is a planned piece of work measured in "units" (sampling steps;
a fixed few for an upscale). Seconds per unit are learnt per stage kind with an exponential
moving average, so a steady run gives a steadily falling ETA and a slow first image (model
loading) is forgotten within a few images.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Piece:
    stage: str
    units: float


class EtaEstimator:
    """Predicts the seconds left in a run from the pieces of work still to do."""

    #: Weight of the newest measurement; higher follows changes faster, lower is calmer.
    ALPHA = 0.35

    def __init__(self, plan: list[tuple[str, float]], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._pieces = [_Piece(stage, max(float(units), 1e-6)) for stage, units in plan]
        self._total_units = sum(p.units for p in self._pieces) or 1.0
        self._clock = clock
        self._rates: dict[str, float] = {}  # seconds per unit, per stage kind
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
            rate = self._rates.get(current.stage)
            if live is not None:
                # Inside a piece its own pace is the best guess, blended with history.
                rate = live if rate is None else (rate + 2 * live) / 3
            rate = rate if rate is not None else (default or 0.0)
            remaining += current.units * (1.0 - self._current_fraction) * rate
        fallback = default if default is not None else live
        for piece in self._pieces[self._next:]:
            rate = self._rates.get(piece.stage, fallback)
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
        old = self._rates.get(stage)
        self._rates[stage] = rate if old is None else old + self.ALPHA * (rate - old)

    def _default_rate(self) -> float | None:
        if not self._rates:
            return None
        return sum(self._rates.values()) / len(self._rates)
