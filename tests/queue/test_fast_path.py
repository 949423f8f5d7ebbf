"""The queue's per-image fast path: complete + next claim in one transaction, and store calls
made on the caller's thread only when they need no waiting (StoreBusy, nothing done, else)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading

import pytest

from stablenew.backends.connect import connect
from stablenew.cluster import queue_runner as qr
from stablenew.cluster.jobs import ItemState
from stablenew.cluster.queue_store import QueueStore, StoreBusy
from stablenew.pipeline.config import PipelineConfig
from tests.queue.helpers import item_prefixes, queue_config


def cfg(count: int, seed: int = 7) -> PipelineConfig:
    return queue_config(count, steps=2, prompt="a fox", seed=seed)


def test_complete_and_claim_records_the_image_and_hands_out_the_next_in_one_commit(store, tmp_path):
    job = store.add_job(cfg(3), output_dir=tmp_path / "out")
    first = store.claim_next("n1", start=True)
    assert first is not None and first.item.index == 0 and first.item.state is ItemState.running
    before = store.reads.revision()
    done, unfinished, upcoming = store.complete_and_claim(first.item.id, first.lease, ["a.png"], "n1",
                                                          job_id=job.id)
    assert (done, unfinished) == (True, True)
    assert store.reads.revision() == before + 1  # both moves, one transaction
    assert upcoming is not None and upcoming.item.index == 1
    assert upcoming.item.state is ItemState.running and upcoming.item.node == "n1"
    assert upcoming.config.txt2img.seed == 8 and upcoming.config.txt2img.batch_count == 1
    states = {i.index: (i.state, i.outputs) for i in store.reads.items(job.id)}
    assert states[0] == (ItemState.done, ("a.png",))
    assert states[1][0] is ItemState.running and states[2][0] is ItemState.queued


def test_complete_and_claim_keeps_the_lease_guard_and_respects_pause(store, tmp_path):
    store.add_job(cfg(3), output_dir=tmp_path / "out")
    claim = store.claim_next("n1", start=True)
    assert claim is not None
    done, unfinished, upcoming = store.complete_and_claim(claim.item.id, "a stale lease", ["x"],
                                                          "n1")
    assert done is False and unfinished is True
    assert store.reads.get_item(claim.item.id).state is ItemState.running  # not overwritten
    assert upcoming is not None
    # Cancelled while its image was being saved: the image exists, so the item is done.
    assert store.cancel_item(claim.item.id)
    assert store.complete(claim.item.id, claim.lease, ["x"])
    assert store.reads.get_item(claim.item.id).state is ItemState.done
    store.set_paused(True)
    done, unfinished, nothing = store.complete_and_claim(upcoming.item.id, upcoming.lease, ["y"], "n1")
    assert done and unfinished and nothing is None  # paused: the image is kept, nothing new starts
    assert [i.state for i in store.reads.items()].count(ItemState.queued) == 1


@pytest.mark.parametrize("pass_job_id", [True, False])
def test_complete_and_claim_says_when_the_job_has_nothing_left(store, tmp_path, pass_job_id):
    one = store.add_job(cfg(1), output_dir=tmp_path / "a")
    two = store.add_job(cfg(1), output_dir=tmp_path / "b")
    claim = store.claim_next("n1", start=True)
    assert claim is not None and claim.job.id == one.id
    done, unfinished, upcoming = store.complete_and_claim(
        claim.item.id, claim.lease, ["a.png"], "n1", job_id=one.id if pass_job_id else None)
    assert done and not unfinished  # job one is finished; the next claim is job two's
    assert upcoming is not None and upcoming.job.id == two.id
    done, unfinished, upcoming = store.complete_and_claim(
        upcoming.item.id, upcoming.lease, ["b.png"], "n1", job_id=two.id if pass_job_id else None)
    assert done and not unfinished and upcoming is None


def test_call_nowait_refuses_while_another_connection_writes_and_does_nothing(store, tmp_path):
    store.add_job(cfg(2), output_dir=tmp_path / "out")
    other = sqlite3.connect(tmp_path / "q.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        before = store.reads.revision()
        with pytest.raises(StoreBusy):
            store.call_nowait(store.claim_next, "n1", start=True)
        assert all(i.state is ItemState.queued for i in store.reads.items())
        assert store.reads.revision() == before
        # An ordinary call still waits for the writer (the no-wait setting does not stick).
        got: list = []
        waiter = threading.Thread(target=lambda: got.append(store.claim_next("n1", start=True)))
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive() and not got
    finally:
        other.execute("ROLLBACK")
        other.close()
    waiter.join(10)
    assert got and got[0] is not None and got[0].item.index == 0
    claim = store.call_nowait(store.claim_next, "n1", start=True)
    assert claim is not None and claim.item.index == 1


def test_call_nowait_refuses_while_another_thread_holds_the_store(store, tmp_path):
    store.add_job(cfg(1), output_dir=tmp_path / "out")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._db._lock:
            held.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(5)
        with pytest.raises(StoreBusy):
            store.call_nowait(store.claim_next, "n1")
    finally:
        release.set()
        t.join(5)
    assert store.call_nowait(store.claim_next, "n1") is not None


async def test_the_runner_falls_back_to_its_database_thread_while_another_writer_holds_the_db(
        store, tmp_path, fake_sdwebui):
    """Another process writing (the GUI, the CLI) never makes the lanes wait on the loop or
    lose an image: the blocked moves go to the database thread, which waits its turn."""
    job = store.add_job(cfg(6), output_dir=tmp_path / "out")
    other = sqlite3.connect(tmp_path / "q.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    backend = await connect(fake_sdwebui.url, kind="a1111", timeout=10)
    try:
        runner = qr.QueueRunner(store, backend, node="fake", poll_interval=0.02)
        # No recovery pass first: the lanes' own claims meet the locked database.
        task = asyncio.ensure_future(runner.run(until_empty=True, recover=False))
        ticks = 0
        for _ in range(10):  # the loop keeps turning while the database is locked
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 10 and not task.done()
        # (read through the writer's own connection: the store's is waiting in its thread)
        assert {r[0] for r in other.execute("SELECT state FROM queue_items")} == {"queued"}
        other.execute("ROLLBACK")
        summary = await asyncio.wait_for(task, 20)
    finally:
        other.close()
        await backend.aclose()
    assert summary.done == 6
    items = store.reads.items(job.id)
    assert all(i.state is ItemState.done and len(i.outputs) == 1 for i in items)
    assert item_prefixes(tmp_path / "out") == sorted(i.name_prefix for i in items)


def test_the_one_statement_claim_picks_what_the_filtered_scan_picks(tmp_path):
    """Priorities, drag-and-drop order, pins, items waiting for a retry's backoff and finished
    items, in random mixes: the common claim (one query) and the scheduler's filtered scan
    hand out the same items in the same order."""
    rng = random.Random(5)
    claimed = 0
    for trial in range(6):
        stores = [QueueStore(tmp_path / f"{trial}-{side}.db") for side in ("fast", "scan")]
        plan = [(rng.randint(0, 2), rng.choice([None, None, "n1", "n2"]), rng.randint(1, 4))
                for _ in range(rng.randint(2, 6))]
        now = 1000.0
        for s in stores:
            for priority, pin, count in plan:
                s.add_job(cfg(count), priority=priority, node_pin=pin, output_dir=tmp_path)
        ids = [i.id for i in stores[0].reads.items()]
        waiting = set(rng.sample(ids, k=len(ids) // 3))
        finished = set(rng.sample(ids, k=len(ids) // 4)) - waiting
        for s in stores:
            s._db._db.executemany("UPDATE queue_items SET not_before = ? WHERE id = ?",
                              [(now + 50, i) for i in waiting])
            s._db._db.executemany("UPDATE queue_items SET state = 'done' WHERE id = ?",
                              [(i,) for i in finished])
        fast, scan = stores
        order_fast, order_scan = [], []
        while (c := fast.claim_next("n1", now=now)) is not None:
            order_fast.append(c.item.id)
        while (c := scan.claim_next("n1", now=now, can_take=lambda _i, _j: True)) is not None:
            order_scan.append(c.item.id)
        assert order_fast == order_scan
        assert not set(order_fast) & (waiting | finished)
        claimed += len(order_fast)
        for s in stores:
            s.close()
    assert claimed > 10
