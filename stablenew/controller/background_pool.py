"""BackgroundPool: worker threads for work the window shows as it comes (thumbnails, the
details of a big list's rows), run after the window's own thread by the OS.

On a two-core machine the window's thread competed for the cores with two thumbnail decoders
and a page reader as soon as a scroll stopped, and the tiles filling in stalled it 30-45 ms
(`bench/gallery.py`). These threads run at a lower priority (Linux and other systems where a
thread's nice value can be set; elsewhere at the normal one), and there are as many of them as
leave a core to the window.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

log = logging.getLogger("stablenew.controller")

T = TypeVar("T")

#: How much lower than the window the workers run (a nice value: 0 same, 19 lowest).
NICENESS = 10


def spare_cores() -> int:
    """Cores beyond the one the window needs, at least one."""
    return max(1, (os.cpu_count() or 2) - 1)


def _lower_priority() -> None:
    """In each new worker thread: a nice value above the window's (Linux sets it per thread)."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere setpriority would change the whole process, window included
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
    except OSError as exc:  # a sandbox may refuse: the work still runs, at the normal priority
        log.debug("background thread priority unchanged: %s", exc)


class BackgroundPool:
    """A few low-priority threads; `await pool.run(fn, *args)` as with `asyncio.to_thread`."""

    def __init__(self, name: str, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name,
                                        initializer=_lower_priority)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        """No new work; what waits is dropped and what runs finishes on its own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
