"""Loop-lag probes for tests: how long an event loop went without running a short tick, and the
test's tools to hold what a blocking call would wait for (the queue database's write lock)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest import MonkeyPatch

#: A stall this long would be felt in the window (the journeys' watchdog fails at 50 ms); the
#: probes allow more, for a loaded machine, and the blocking calls they catch take far longer.
LAG_LIMIT_S = 0.25


class LoopLag:
    """Ticks every few milliseconds on the running loop and keeps the longest late tick."""

    def __init__(self, tick: float = 0.005) -> None:
        self.tick = tick
        self.longest = 0.0
        self._since = time.monotonic()  # when the tick now waited for began
        self._task: asyncio.Task[None] | None = None

    def _late(self) -> None:
        self.longest = max(self.longest, time.monotonic() - self._since - self.tick)

    async def _run(self) -> None:
        while True:
            self._since = time.monotonic()
            await asyncio.sleep(self.tick)
            self._late()

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.ensure_future(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, kind: type | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._task is not None
        self._late()  # the tick still waited for counts too (a stall just before the end)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class WriteLockHolder:
    """Another connection (as another process would) holds a SQLite database's write lock in a
    thread of its own until `release()`; `released_at` says when it let go."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._held = threading.Event()
        self._release = threading.Event()
        self.released_at = 0.0
        self._thread = threading.Thread(target=self._hold, name="test-write-lock", daemon=True)

    def _hold(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            self._held.set()
            self._release.wait(30)
            db.execute("COMMIT")
            self.released_at = time.monotonic()
        finally:
            db.close()

    def __enter__(self) -> WriteLockHolder:
        self._thread.start()
        assert self._held.wait(10), "the test could not take the write lock"
        return self

    def release(self) -> None:
        self._release.set()
        self._thread.join(10)

    def __exit__(self, *exc: object) -> None:
        self.release()


def thread_in(name_prefix: str, function: str) -> bool:
    """Is a thread whose name starts with *name_prefix* running *function* right now?"""
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        if not names.get(ident, "").startswith(name_prefix):
            continue
        while frame is not None:
            if frame.f_code.co_name == function:
                return True
            frame = frame.f_back
    return False


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0, *,
                   state: Callable[[], object] | None = None) -> None:
    """Wait until *condition* holds; on a timeout, say what *state* shows then."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            seen = f"; {state()!r}" if state is not None else ""
            raise AssertionError(f"timed out waiting for {what}{seen}")
        await asyncio.sleep(0.005)


def threads_started_here(monkeypatch: MonkeyPatch) -> list[str]:
    """The names of the threads started from this (the loop's) thread from now on:
    `Thread.start` waits until the new thread runs, on a busy machine a while."""
    here = threading.get_ident()
    started: list[str] = []
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if threading.get_ident() == here:
            started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started
