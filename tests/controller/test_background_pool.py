"""The gallery's readers run after the window's thread: on Linux their threads are niced."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from stablenew.controller.background_pool import NICENESS, BackgroundPool


def _priority() -> tuple[str, int]:
    return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS,
                                                           threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_work_runs_in_a_named_thread_niced_below_the_caller():
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    async def run() -> tuple[str, int]:
        pool = BackgroundPool("gallery-read", workers=1)
        try:
            return await pool.run(_priority)
        finally:
            pool.close()

    name, theirs = asyncio.run(run())
    assert name.startswith("gallery-read")
    assert theirs == min(19, mine + NICENESS)  # the caller's thread is left as it was
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine


def test_a_closed_pool_drops_what_waits():
    started = threading.Event()
    release = threading.Event()
    done: list[int] = []

    def slow(n: int) -> int:
        started.set()
        release.wait(5)
        done.append(n)
        return n

    async def run() -> None:
        pool = BackgroundPool("test-pool", workers=1)
        first = asyncio.ensure_future(pool.run(slow, 1))
        second = asyncio.ensure_future(pool.run(slow, 2))
        await asyncio.to_thread(started.wait, 5)
        pool.close()
        release.set()
        assert await first == 1  # what ran finishes
        with pytest.raises(asyncio.CancelledError):
            await second  # what waited is dropped

    asyncio.run(run())
    assert done == [1]

