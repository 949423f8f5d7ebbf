"""A QueueRunner never blocks its event loop (the window's Qt thread under qasync): the runner
lock's file I/O, the start and end of its database thread and an item given back on a cancel
all wait elsewhere, while the loop keeps ticking."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import pytest

from stablenew.backends.connect import connect
from stablenew.cluster import queue_runner as qr
from stablenew.cluster.jobs import ItemState
from stablenew.cluster.runner_lock import RunnerLock
from tests.loop_lag import (
    LAG_LIMIT_S,
    LoopLag,
    WriteLockHolder,
    thread_in,
    threads_started_here,
    wait_for,
)
from tests.queue.helpers import queue_config as cfg

TXT2IMG = "/sdapi/v1/txt2img"


@pytest.fixture
async def backend(fake_sdwebui):
    b = await connect(fake_sdwebui.url, kind="a1111", timeout=10)
    yield b
    await b.aclose()


def make_runner(store, backend, **kw) -> qr.QueueRunner:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("poll_interval", 0.02)
    return qr.QueueRunner(store, backend, node="fake", thumbnails=False, **kw)


@pytest.fixture
def slow_file_locks(monkeypatch):
    """Call it to make file locks as slow as on a network drive: 0.4 s each flock call."""
    if sys.platform == "win32":
        pytest.skip("flock is the runner lock's call on POSIX only")
    import fcntl

    real = fcntl.flock

    def slow(fd: int, operation: int) -> None:
        time.sleep(0.4)
        real(fd, operation)

    return lambda: monkeypatch.setattr(fcntl, "flock", slow)


async def test_the_runner_lock_is_taken_and_released_off_the_loop(store, backend, slow_file_locks):
    slow_file_locks()
    async with LoopLag() as lag:
        summary = await asyncio.wait_for(make_runner(store, backend).run(until_empty=True), 20)
    assert summary.done == 0
    assert lag.longest < LAG_LIMIT_S, f"the loop stood still {lag.longest:.3f} s"
    # Released, all the same: the next runner gets it.
    lock = RunnerLock(store.path)
    await asyncio.to_thread(lock.acquire)
    await asyncio.to_thread(lock.release)


async def test_the_database_thread_is_started_off_the_loop(store, backend, monkeypatch):
    """Thread.start waits until the new thread runs: on a busy machine, a while."""
    started_on_loop = threads_started_here(monkeypatch)
    runner = make_runner(store, backend)
    await asyncio.wait_for(runner.run(until_empty=True), 20)
    await asyncio.wait_for(runner.run(until_empty=True), 20)  # and when run again
    assert not [n for n in started_on_loop if n.startswith("queue-db")], started_on_loop


async def test_a_cancelled_run_waits_for_its_busy_database_thread_off_the_loop(store, backend):
    """Another process holds the database's write lock while the run is cancelled: the claims
    waiting for it in the database thread end before the run does, and the loop ticks on."""
    with WriteLockHolder(store.path) as holder:
        run = asyncio.ensure_future(make_runner(store, backend).run(recover=False))
        await wait_for(lambda: thread_in("queue-db", "claim_next"), "a claim waiting for the lock")
        threading.Timer(0.6, holder.release).start()
        async with LoopLag() as lag:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
        ended = time.monotonic()
    assert run.cancelled()
    assert lag.longest < LAG_LIMIT_S, f"the loop stood still {lag.longest:.3f} s"
    assert 0 < holder.released_at <= ended, "the run ended before its database thread"


@pytest.mark.parametrize("fake_sdwebui", [{"step_ms": 200}], indirect=True)
async def test_an_item_in_flight_goes_back_off_the_loop_when_the_run_is_cancelled(
        store, backend, fake_sdwebui, tmp_path):
    job = store.add_job(cfg(1, steps=50), output_dir=tmp_path / "out")
    run = asyncio.ensure_future(make_runner(store, backend).run())
    await wait_for(lambda: bool(fake_sdwebui.requests_to(TXT2IMG)), "the item at the server")
    with WriteLockHolder(store.path) as holder:
        threading.Timer(0.6, holder.release).start()
        async with LoopLag() as lag:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
    assert lag.longest < LAG_LIMIT_S, f"the loop stood still {lag.longest:.3f} s"
    (item,) = store.reads.items(job.id)
    assert item.state is ItemState.queued and item.lease is None, "given back untried"
    assert not list((tmp_path / "out").glob("*.png"))


@pytest.mark.parametrize("fake_sdwebui", [{"step_ms": 20}], indirect=True)
async def test_a_run_cancelled_while_its_finish_waits_for_the_database_loses_nothing(
        store, backend, fake_sdwebui, tmp_path):
    """The image's finish (which claims the lane's next one in the same move) waits for a busy
    database when the run is cancelled: the finished image stays done with its file, and the
    next one, claimed as the database frees, goes back to the queue instead of staying
    'running' for a runner that is gone."""
    job = store.add_job(cfg(2, steps=10), output_dir=tmp_path / "out")
    run = asyncio.ensure_future(make_runner(store, backend, depth=1, lanes=1).run())
    await wait_for(lambda: bool(fake_sdwebui.requests_to(TXT2IMG)), "the first image at the server")
    with WriteLockHolder(store.path) as holder:
        await wait_for(lambda: thread_in("queue-db", "complete_and_claim"), "the finish waiting")
        threading.Timer(0.5, holder.release).start()
        async with LoopLag() as lag:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
    assert lag.longest < LAG_LIMIT_S, f"the loop stood still {lag.longest:.3f} s"
    first, second = store.reads.items(job.id)
    assert first.state is ItemState.done and [p for p in first.outputs if Path(p).is_file()]
    assert second.state is ItemState.queued and second.lease is None
