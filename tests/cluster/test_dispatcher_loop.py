"""The ClusterDispatcher never blocks its event loop (the window's Qt thread under qasync): the
runner lock's file I/O, its workers' database threads, and the lock a claim holds through a
busy database all wait elsewhere, while the loop keeps ticking."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from stablenew.backends.errors import BackendError
from stablenew.cluster.jobs import ItemState
from stablenew.cluster.runner_lock import RunnerLock
from tests.cluster.test_dispatcher import cfg, dispatcher, fakes, node
from tests.loop_lag import (
    LAG_LIMIT_S,
    LoopLag,
    WriteLockHolder,
    thread_in,
    threads_started_here,
    wait_for,
)
from tests.queue.test_loop_stays_free import slow_file_locks  # noqa: F401  (fixture)


async def test_the_cluster_takes_and_releases_the_runner_lock_off_the_loop(
        store, tmp_path, slow_file_locks):  # noqa: F811  (the fixture)
    async with fakes({"step_ms": 0}) as (only,):
        store.add_job(cfg(1), output_dir=tmp_path / "out")
        # A first run imports what a run needs (a first import stalls the window once, too).
        await asyncio.wait_for(dispatcher(store, [node("only", only)]).run(until_empty=True), 20)
        store.add_job(cfg(1), output_dir=tmp_path / "out")
        slow_file_locks()
        async with LoopLag() as lag:
            summary = await asyncio.wait_for(
                dispatcher(store, [node("only", only)]).run(until_empty=True), 20)
    assert summary.done == 1
    assert lag.longest < LAG_LIMIT_S, f"the loop stood still {lag.longest:.3f} s"
    lock = RunnerLock(store.path)
    await asyncio.to_thread(lock.acquire)
    await asyncio.to_thread(lock.release)


async def test_the_workers_start_their_database_threads_off_the_loop(store, tmp_path, monkeypatch):
    started_on_loop = threads_started_here(monkeypatch)
    async with fakes({"step_ms": 0}, {"step_ms": 0}) as (a, b):
        store.add_job(cfg(4), output_dir=tmp_path / "out")
        summary = await asyncio.wait_for(
            dispatcher(store, [node("a", a), node("b", b)]).run(until_empty=True), 20)
    assert summary.done == 4
    assert not [n for n in started_on_loop if n.startswith("queue-db")], started_on_loop


def _items(store, d):
    """What the items and the nodes show, for a test that timed out waiting for them."""
    items = [(i.id, i.state.value, i.node, i.attempts, i.error) for i in store.reads.items()]
    return items, [(s.name, s.state.value, s.message, s.current) for s in d.statuses()]


async def _claims_waiting(store, a, b):
    """A running dispatcher whose claims wait for the database another process holds."""
    d = dispatcher(store, [node("a", a), node("b", b)])
    run = asyncio.ensure_future(d.run(recover=False))
    await wait_for(lambda: thread_in("queue-db", "claim_next"), "a claim waiting for the database")
    return d, run


async def test_a_node_leaves_while_a_claim_waits_for_the_database_without_blocking_the_loop(
        store, tmp_path):
    store.add_job(cfg(2), output_dir=tmp_path / "out")
    async with fakes({"step_ms": 0}, {"step_ms": 0}) as (a, b):
        with WriteLockHolder(store.path) as holder:
            d, run = await _claims_waiting(store, a, b)
            threading.Timer(1.2, holder.release).start()  # after the worker's stop grace
            async with LoopLag() as lag:
                await asyncio.wait_for(d.remove_node("b"), 20)
            left = time.monotonic()
        assert lag.longest < LAG_LIMIT_S, f"the loop stood still {lag.longest:.3f} s"
        assert holder.released_at <= left, "b's worker ended before its database thread"
        # Nothing was lost on the way: a claim b's worker got as it stopped went back.
        await wait_for(lambda: {i.state for i in store.reads.items()} == {ItemState.done},
                       "the work done", state=lambda: _items(store, d))
        d.stop()
        await asyncio.wait_for(run, 20)


async def test_a_node_going_down_while_a_claim_waits_for_the_database_is_noted_at_once(
        store, tmp_path):
    store.add_job(cfg(2), output_dir=tmp_path / "out")
    async with fakes({"step_ms": 0}, {"step_ms": 0}) as (a, b):
        with WriteLockHolder(store.path) as holder:
            d, run = await _claims_waiting(store, a, b)
            threading.Timer(0.6, holder.release).start()
            began = time.monotonic()
            d.monitor.set_unhealthy("b", BackendError("b stalled", detail="test"))
            took = time.monotonic() - began
        assert took < LAG_LIMIT_S, f"the loop stood still {took:.3f} s"
        await wait_for(lambda: {i.state for i in store.reads.items()} == {ItemState.done},
                       "the work done", state=lambda: _items(store, d))
        d.stop()
        await asyncio.wait_for(run, 20)


async def test_what_a_crash_left_is_cleaned_off_the_loop(store, tmp_path, monkeypatch):
    """The outputs of items a crash left in flight are deleted as the run starts: on a slow
    drive that takes a while, and the loop ticks on meanwhile."""
    async with fakes({"step_ms": 0}) as (only,):
        # A first run imports what a run needs (a first import stalls the window once, too).
        store.add_job(cfg(1), output_dir=tmp_path / "first")
        await asyncio.wait_for(dispatcher(store, [node("only", only)]).run(until_empty=True), 20)
        job = store.add_job(cfg(1), output_dir=tmp_path / "out")
        crashed = store.claim_next("only", start=True)
        assert crashed is not None
        left = tmp_path / "out" / f"{crashed.item.name_prefix}-0001.png"
        left.parent.mkdir(parents=True, exist_ok=True)
        left.write_bytes(b"half an image")
        real_unlink = Path.unlink

        def slow_unlink(path: Path, missing_ok: bool = False) -> None:
            if path.name.startswith(crashed.item.name_prefix):
                time.sleep(0.4)  # a slow drive
            real_unlink(path, missing_ok=missing_ok)

        monkeypatch.setattr(Path, "unlink", slow_unlink)
        async with LoopLag() as lag:
            summary = await asyncio.wait_for(
                dispatcher(store, [node("only", only)]).run(until_empty=True), 20)
    assert lag.longest < LAG_LIMIT_S, f"the loop stood still {lag.longest:.3f} s"
    assert summary.done == 1
    (item,) = store.reads.items(job.id)
    assert item.state is ItemState.done and item.attempts == 0
    assert not left.exists() or left.read_bytes() != b"half an image"


async def test_a_node_being_removed_gets_no_new_worker_while_the_lock_is_held(
        store, tmp_path, monkeypatch):
    """Removing a node waits for the dispatcher's lock (a claim holds it through a busy
    database) after its worker stopped. Meanwhile the run loop must not start the node a new
    worker: one did, claimed an item, and ran it on the removed node's closed client, which
    failed the item ("Something unexpected went wrong")."""
    async with fakes({"step_ms": 0}, {"step_ms": 0}) as (leaves, stays):
        d = dispatcher(store, [node("b", leaves), node("a", stays)])
        run = asyncio.ensure_future(d.run(recover=False))
        await wait_for(lambda: all(n.task is not None for n in d._nodes.values()), "both working")
        held, let_go = threading.Event(), threading.Event()

        def claim_through_a_busy_database() -> None:
            with d._lock:
                held.set()
                let_go.wait(20)

        stop_worker = d._stop_worker

        async def stop_then_a_claim_takes_the_lock(name: str) -> None:
            await stop_worker(name)
            if name == "b" and not held.is_set():
                threading.Thread(target=claim_through_a_busy_database, daemon=True).start()
                await asyncio.to_thread(held.wait, 10)

        # The lock is taken once b's worker stopped (its lanes' claims would wait for it too).
        monkeypatch.setattr(d, "_stop_worker", stop_then_a_claim_takes_the_lock)
        leaving = asyncio.ensure_future(d.remove_node("b"))
        await wait_for(held.is_set, "b's worker stopped and the lock taken")
        store.add_job(cfg(4), output_dir=tmp_path / "out")
        d.notify()
        # What the run loop does each round, when its reads of the queue got the lock before
        # the removal did (they block on it in a thread; the removal's retries sleep between).
        d._reap()
        sent_to_b = len(leaves.requests_to("/sdapi/v1/txt2img"))
        let_go.set()
        await asyncio.wait_for(leaving, 20)
        await wait_for(lambda: {i.state for i in store.reads.items()} == {ItemState.done},
                       "the work done on the node that stayed", state=lambda: _items(store, d))
        assert len(leaves.requests_to("/sdapi/v1/txt2img")) == sent_to_b
        d.stop()
        await asyncio.wait_for(run, 20)
