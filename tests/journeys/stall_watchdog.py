"""A watchdog for the Qt thread: a journey fails when the window's event loop stalls.

A QTimer ticks every 10 ms on the Qt thread, and a Python thread watches the ticks. While the
test has handed the thread to Qt (inside a pytest-qt wait, click or key press, or the journeys'
`process_events`), a tick later than the limit is a stall: Qt was stuck in one piece of work and
a user's window would have frozen. The watching thread then takes the Qt thread's stack, so the
failure says where the time went.

Time the test spends in its own code does not count: between two waits nobody runs the loop, and
a waitUntil condition is checked between waits. The loop is timed from the moment the test hands
the thread to Qt.
"""

from __future__ import annotations

import faulthandler
import functools
import gc
import linecache
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytestqt import qtbot as _qtbot
from pytestqt import wait_signal as _wait_signal

TICK_MS = 10
#: The limit from issue #18: longer than this and the window visibly stops answering.
LIMIT_S = 0.050
#: A full garbage collection over the window's objects takes this long at most (a pause, not a
#: blocking call to move off the thread).
GC_S = 0.2
#: How often the watching thread looks at the ticks.
SAMPLE_S = 0.004

_TESTS = str(Path(__file__).resolve().parents[1])

#: The pytest-qt calls that hand the thread to Qt: every wait ends in one of the first three; a
#: click or key press delivers its events (and runs the slots they trigger) there and then.
_QT_RUNS: tuple[tuple[Any, str], ...] = (
    (_wait_signal._AbstractSignalBlocker, "wait"),
    (_wait_signal.CallbackBlocker, "wait"),
    (_qtbot._WaitWidgetContextManager, "__exit__"),
    *((_qtbot.QtBot, name) for name in (
        "keyClick", "keyEvent", "keyPress", "keyRelease", "keySequence",
        "mouseClick", "mouseDClick", "mouseMove", "mousePress", "mouseRelease")),
)


def _key_by_key(bot: Any, widget: Any, text: str, modifier: Any = None, delay: int = -1) -> None:
    """`QtBot.keyClicks` as a person types: one key at a time, each timed on its own. QTest sends
    a whole string in one call, with no turn of the loop between the keys, so typing a long
    address counted as one stall of the window (55 ms for 25 keys) though each key took 0.1 ms."""
    from PySide6.QtCore import Qt

    for char in text:
        bot.keyClick(widget, char, Qt.KeyboardModifier.NoModifier if modifier is None else modifier,
                     delay)


@dataclass(frozen=True)
class Excuse:
    """A known kind of stall, told by a pattern in the stack, that fails only past *up_to*."""

    what: str
    pattern: str  # a regular expression searched in the stack at the stall
    up_to: float


@dataclass
class Stall:
    """One time the loop stood still for longer than the limit, and where the Qt thread was."""

    seconds: float
    stacks: list[str]
    during: str = ""  # the allowance it fell in, if any
    ceiling: float = LIMIT_S

    def describe(self) -> str:
        during = f" during {self.during} (allowed up to {self.ceiling * 1000:.0f} ms)" if self.during else ""
        where = "\n  ...and later:\n".join(self.stacks)
        return f"the Qt loop stalled {self.seconds * 1000:.0f} ms{during}; the Qt thread was in:\n{where}"


@dataclass
class Span:
    """One action of a test, timed: the longest the Qt loop went without a tick while it ran
    (stall or not), and the stalls that began meanwhile."""

    what: str
    longest: float = 0.0
    stalls: list[Stall] = field(default_factory=list)

    def failures(self) -> list[Stall]:
        return [s for s in self.stalls if s.seconds > s.ceiling]

    def describe(self) -> str:
        stalls = "".join(f"\n\n{s.describe()}" for s in self.stalls)
        return f"the longest turn of the Qt loop while {self.what}: {self.longest * 1000:.0f} ms{stalls}"


class StallWatchdog:
    """Records every stall of the Qt loop longer than *limit* seconds while a test runs it.

    *runs_qt*: more (owner, attribute) functions that hand the thread to Qt, e.g. a helper of
    the test's own that calls `QApplication.processEvents()`.
    """

    def __init__(self, limit: float = LIMIT_S, runs_qt: tuple[tuple[Any, str], ...] = (),
                 excuses: tuple[Excuse, ...] = ()) -> None:
        self.limit = limit
        self.excuses = excuses
        self.stalls: list[Stall] = []
        self.longest = 0.0  # the longest the loop went without a tick, stall or not
        self._runs_qt = (*_QT_RUNS, *runs_qt)
        self._qt_thread = threading.get_ident()
        self._last_tick = time.monotonic()
        self._depth = 0  # how deep the Qt thread is in calls that run Qt for the test
        self._handed_at = 0.0  # when the test last handed the thread to Qt
        self._handovers = 0  # how many times it did so (tells one hand-over from the next)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer: Any = None
        self._patch = pytest.MonkeyPatch()
        self._allowance: tuple[str, float] | None = None
        self._collecting = False  # Python's garbage collector runs (on the Qt thread, mostly)
        self._gc_started = 0.0
        #: When the last collection ran: this thread often gets the GIL back only once a
        #: collection on the Qt thread is over, and must still know the stall was one.
        self._last_gc = (0.0, 0.0)
        self._spans: tuple[Span, ...] = ()  # the actions being timed (replaced, never edited)

    # --- on the Qt thread -----------------------------------------------------------------------

    def start(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self._patch.setattr(_qtbot.QtBot, "keyClicks", _key_by_key)
        for owner, name in self._runs_qt:
            original = owner.__dict__[name]
            wrapped = self._timed(original.__func__ if isinstance(original, staticmethod) else original)
            self._patch.setattr(owner, name, staticmethod(wrapped) if isinstance(original, staticmethod)
                                else wrapped)
        gc.callbacks.append(self._gc)
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self._last_tick = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="qt-stall-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._timer is not None:
            self._timer.stop()
            self._timer = None  # ours alone: deleted now, on the Qt thread
        self._patch.undo()
        gc.callbacks.remove(self._gc)

    def _gc(self, phase: str, _info: dict[str, int]) -> None:
        now = time.monotonic()
        if phase == "start":
            self._collecting, self._gc_started = True, now
        else:
            self._collecting, self._last_gc = False, (self._gc_started, now)

    def _gc_stall(self, since: float, gap: float) -> bool:
        """True when a collection ran in the stall and, without it, there was none."""
        started, ended = self._last_gc
        return self._collecting or (ended > since and ended - max(started, since) >= gap - self.limit)

    def _timed(self, run_qt: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(run_qt)
        def handing_qt_the_thread(*args: Any, **kwargs: Any) -> Any:
            if self._depth == 0:
                self._handed_at = time.monotonic()
                self._handovers += 1
            self._depth += 1
            try:
                return run_qt(*args, **kwargs)
            finally:
                self._depth -= 1
        return handing_qt_the_thread

    def _tick(self) -> None:
        self._last_tick = time.monotonic()

    @contextmanager
    def allow(self, what: str, up_to: float) -> Iterator[None]:
        """A stall up to *up_to* seconds while the block runs is reported, not failed; *what*
        names the unavoidable work (e.g. Qt building the first window it shows)."""
        self._allowance = (what, up_to)
        try:
            yield
        finally:
            self._allowance = None

    @contextmanager
    def timing(self, what: str) -> Iterator[Span]:
        """Times the loop while the block runs: *what* the test does there, e.g. "applying a
        preset". The span's stalls are judged as any other (the excuses apply)."""
        span = Span(what)
        first = len(self.stalls)
        self._spans = (*self._spans, span)
        try:
            yield span
        finally:
            self._spans = tuple(s for s in self._spans if s is not span)
            span.stalls = self.stalls[first:]

    def failures(self) -> list[Stall]:
        return [s for s in self.stalls if s.seconds > s.ceiling]

    def report(self, stalls: list[Stall]) -> str:
        return "\n\n".join(s.describe() for s in stalls)

    # --- on the watching thread -----------------------------------------------------------------

    def _watch(self) -> None:
        stall: Stall | None = None
        stall_from = 0.0
        while not self._stop.wait(SAMPLE_S):
            if self._depth == 0:
                stall = None
                continue
            turn, tick = self._handovers, self._last_tick
            since = max(tick, self._handed_at)
            gap = time.monotonic() - since
            if self._depth == 0 or self._handovers != turn or self._last_tick != tick:
                # Handed back, or a tick came, while this thread looked: it waits for the GIL
                # between those reads, and a late look is no stall (25 key presses of 0.1 ms
                # each were reported as one of 55 ms).
                continue
            self.longest = max(self.longest, gap)
            for span in self._spans:
                span.longest = max(span.longest, gap)
            if stall is not None and since != stall_from:
                stall = None  # a tick came: that stall is over
            if gap <= self.limit:
                continue
            stack = self._stack()
            if self._depth == 0 or "handing_qt_the_thread" not in stack:
                continue  # it ended as we looked: where it was is not known
            if stall is None:
                stall, stall_from = self._new_stall(gap, stack, since), since
            else:
                stall.seconds = max(stall.seconds, gap)
                if len(stall.stacks) < 3 and stack != stall.stacks[-1]:
                    stall.stacks.append(stack)  # a long stall: where it went on to
                    self._judge(stall, stack)

    def _new_stall(self, gap: float, stack: str, since: float) -> Stall:
        stall = Stall(gap, [stack])
        if self._allowance is not None:
            stall.during, stall.ceiling = self._allowance
        elif self._gc_stall(since, gap):
            stall.during, stall.ceiling = "Python's garbage collection", GC_S
        else:
            stall.during, stall.ceiling = self._excuse(stack)
        self.stalls.append(stall)
        return stall

    def _excuse(self, stack: str) -> tuple[str, float]:
        for excuse in self.excuses:
            if re.search(excuse.pattern, stack):
                return excuse.what, excuse.up_to
        return "", self.limit

    def _judge(self, stall: Stall, stack: str) -> None:
        """A later look at one stall may find our own code where the first saw only Qt (on a
        loaded machine the tick is late before the slot even starts): the strictest reading of
        where the thread was decides."""
        if self._allowance is not None or self._collecting:
            return
        during, ceiling = self._excuse(stack)
        if ceiling < stall.ceiling:
            stall.during, stall.ceiling = during, ceiling

    def _stack(self) -> str:
        """The Qt thread's stack, from the test's line that handed it to Qt inwards.

        Read with faulthandler, which walks the thread's frames without making frame objects:
        a frame object held here could outlive its frame and free the frame's locals (widgets
        among them) on this thread, where Qt objects must never be destroyed.
        """
        with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
            faulthandler.dump_traceback(out, all_threads=True)
            out.seek(0)
            dump = out.read()
        calls: list[tuple[str, int, str]] = []  # innermost first, as faulthandler lists them
        for block in dump.split("\n\n"):
            head, _, body = block.strip().partition("\n")
            words = head.replace("Current thread", "Thread").split()
            if len(words) > 1 and words[0] == "Thread" and int(words[1], 16) == self._qt_thread:
                for line in body.splitlines():
                    match = _FRAME.match(line)
                    if match:
                        calls.append((match[1], int(match[2]), match[3]))
        kept: list[tuple[str, int, str]] = []
        outside_tests = False
        for call in calls:
            kept.append(call)
            in_tests = call[0].startswith(_TESTS) and call[0] != __file__
            if in_tests and outside_tests:
                break  # the test's own line
            outside_tests = outside_tests or not in_tests
        lines = []
        for path, number, name in reversed(kept):
            lines.append(f'  File "{path}", line {number}, in {name}\n')
            source = linecache.getline(path, number).strip()
            if source:
                lines.append(f"    {source}\n")
        return "".join(lines)


_FRAME = re.compile(r'\s*File "(.*)", line (\d+) in (.*)$')
