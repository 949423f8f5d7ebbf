"""A Run pressed in the window is an interactive queue item: it goes ahead of queued batches,
a pause never holds it back, batch images not yet sent step aside for it, it is not retried
behind the user's back, and one cut short by a crash finishes later as an ordinary batch."""

from __future__ import annotations

import asyncio

import pytest

from stablenew.backends.connect import connect
from stablenew.cluster import queue_runner as qr
from stablenew.cluster.jobs import INTERACTIVE_PRIORITY, ItemState
from stablenew.cluster.queue_events import ItemFinished, ItemStarted
from stablenew.cluster.queue_store import QueueStore
from tests.queue.helpers import queue_config as cfg

TXT2IMG = "/sdapi/v1/txt2img"


def add_run(store: QueueStore, tmp_path, count: int = 1, node: str = "fake", **kw):
    return store.add_job(cfg(count, prompt="the run"), name="Run", priority=INTERACTIVE_PRIORITY,
                         node_pin=node, output_dir=tmp_path / "run", **kw)


def test_a_run_is_claimed_before_batches_queued_earlier(store, tmp_path):
    batch = store.add_job(cfg(3), name="batch", output_dir=tmp_path / "batch")
    run = add_run(store, tmp_path, job_id="run00001")
    assert run.id == "run00001" and run.node_pin == "fake" and run.priority == INTERACTIVE_PRIORITY
    claim = store.claim_next("fake")
    assert claim is not None and claim.job.id == run.id
    # Pinned: another node never takes it, it takes the batch.
    other = store.claim_next("other")
    assert other is not None and other.job.id == batch.id


def test_a_paused_queue_holds_batches_back_but_not_a_run(store, tmp_path):
    store.add_job(cfg(2), name="batch", output_dir=tmp_path / "batch")
    store.set_paused(True)
    assert store.claim_next("fake") is None
    run = add_run(store, tmp_path)
    claim = store.claim_next("fake")
    assert claim is not None and claim.job.id == run.id
    assert store.claim_next("fake") is None, "the batch still waits for the resume"
    # The same with a scheduler's filter (the cluster's claims).
    run2 = add_run(store, tmp_path, job_id="run00002")
    claim = store.claim_next("fake", can_take=lambda item, job: True)
    assert claim is not None and claim.job.id == run2.id


def test_top_queued_priority_sees_only_what_the_node_may_take(store, tmp_path):
    assert store.reads.top_queued_priority("fake") is None
    store.add_job(cfg(1), name="batch", output_dir=tmp_path / "batch")
    assert store.reads.top_queued_priority("fake") == 0
    add_run(store, tmp_path, node="elsewhere")
    assert store.reads.top_queued_priority("fake") == 0
    assert store.reads.top_queued_priority("elsewhere") == INTERACTIVE_PRIORITY


def test_a_run_left_unfinished_becomes_an_ordinary_batch(store, tmp_path):
    old = add_run(store, tmp_path, count=2, job_id="oldrun01")
    finished = add_run(store, tmp_path, count=1, job_id="donerun1")
    claim = store.claim_next("fake", start=True)
    assert claim is not None and claim.job.id == old.id
    claim = store.claim_next("fake", start=True)
    assert claim is not None and claim.job.id == old.id
    claim3 = store.claim_next("fake", start=True)
    assert claim3 is not None and claim3.job.id == finished.id
    assert store.complete(claim3.item.id, claim3.lease, [])
    assert store.demote_interactive(keep="newrun01") == [old.id]
    job = store.reads.get_job(old.id)
    assert job.priority == 0 and job.node_pin is None, "any node may finish it now"
    assert store.reads.get_job(finished.id).priority == INTERACTIVE_PRIORITY, \
        "finished Runs stay as they were"


def test_recovery_after_a_crash_demotes_the_run_it_finds_in_flight(store, tmp_path):
    run = add_run(store, tmp_path, count=3)
    live = store.claim_next("fake", start=True)
    assert live is not None
    batch = store.add_job(cfg(1), name="batch", output_dir=tmp_path / "batch")
    recovered = store.recover()
    assert [i.job_id for i in recovered] == [run.id]
    job = store.reads.get_job(run.id)
    assert (job.priority, job.node_pin) == (0, None)
    assert [i.state for i in store.reads.items(run.id)] == [ItemState.queued] * 3
    # An ordinary batch now: the queue runs it in its place, before the later batch.
    claim = store.claim_next("cli-node")
    assert claim is not None and claim.job.id == run.id and batch.id != run.id


@pytest.fixture
async def backend(fake_sdwebui):
    b = await connect(fake_sdwebui.url, kind="a1111", timeout=10)
    yield b
    await b.aclose()


@pytest.mark.parametrize("fake_sdwebui", [{"step_ms": 15.0}], indirect=True)
async def test_batch_images_not_yet_sent_step_aside_for_a_run(store, backend, fake_sdwebui, tmp_path):
    """Eight lanes claim a whole batch at once; a Run added meanwhile waits only for the images
    already at the node (depth 2), not for the batch's end."""
    batch = store.add_job(cfg(8, steps=8), name="batch", output_dir=tmp_path / "batch")
    events: list = []
    seen = asyncio.Event()

    def listen(event) -> None:
        events.append(event)
        if sum(isinstance(e, ItemStarted) for e in events) == 8:
            seen.set()  # every lane holds a batch image

    runner = qr.QueueRunner(store, backend, node="fake", poll_interval=0.02, on_event=listen)
    work = asyncio.ensure_future(runner.run(until_empty=True))
    await asyncio.wait_for(seen.wait(), 10)
    assert store.reads.items(batch.id, states=(ItemState.queued,)) == []
    run = add_run(store, tmp_path)
    runner.notify()
    await asyncio.wait_for(work, 30)
    (run_item,) = store.reads.items(run.id)
    assert run_item.state is ItemState.done
    batch_items = store.reads.items(batch.id)
    assert all(i.state is ItemState.done and i.attempts == 0 for i in batch_items)
    ahead = [i for i in batch_items if i.finished_at < run_item.finished_at]
    assert len(ahead) <= 3, f"{len(ahead)} batch images went before the Run"
    given_back = [e for e in events if isinstance(e, ItemFinished)
                  and e.state is ItemState.queued and e.item.job_id == batch.id]
    assert given_back, "images not yet sent went back to the queue untried"
    assert fake_sdwebui.images_generated == 9, "nothing ran twice"


async def test_a_failed_run_image_is_not_retried(store, backend, fake_sdwebui, tmp_path):
    run = add_run(store, tmp_path)
    fake_sdwebui.inject("500", path=TXT2IMG, times=1)
    events: list = []
    runner = qr.QueueRunner(store, backend, node="fake", poll_interval=0.02, backoff_base=0.01,
                            on_event=events.append)
    await asyncio.wait_for(runner.run(until_empty=True), 20)
    (item,) = store.reads.items(run.id)
    assert item.state is ItemState.failed and item.attempts == 1
    (finished,) = [e for e in events if isinstance(e, ItemFinished)]
    assert finished.state is ItemState.failed and finished.message
    assert not finished.fatal_for_node
