"""How late the Qt loop runs a 5 ms timer: the stall probe of the GUI benchmarks (gallery,
library, ui_latency). Not a benchmark itself: `make bench` runs only the files not starting
with an underscore."""

from __future__ import annotations

import time

PROBE_MS = 5


class StallProbe:
    """`start()`, let the loop turn, then read `stalls` (ms each tick came late) and `stop()`."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.stalls: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(PROBE_MS)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.stalls.append(max(0.0, (now - self._last) * 1000 - PROBE_MS))
        self._last = now

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
