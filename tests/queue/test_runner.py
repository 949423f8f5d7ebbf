"""QueueRunner against the fake SD WebUI over real HTTP: outputs, retries, rejections, cancel,
pause, recovery."""

from __future__ import annotations

import asyncio

import pytest

from stablenew.backends.connect import connect
from stablenew.cluster import queue_runner as qr
from stablenew.cluster.jobs import ItemState
from stablenew.cluster.queue_events import ItemFinished, ItemProgress, JobFinished, NodeProblem
from stablenew.cluster.queue_store import QueueStore
from tests.queue.helpers import item_prefixes
from tests.queue.helpers import queue_config as cfg

TXT2IMG = "/sdapi/v1/txt2img"


@pytest.fixture
async def backend(fake_sdwebui):
    b = await connect(fake_sdwebui.url, kind="a1111", timeout=10)
    yield b
    await b.aclose()


def make_runner(store, backend, events=None, **kw) -> qr.QueueRunner:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("poll_interval", 0.02)
    return qr.QueueRunner(store, backend, node="fake", on_event=(events.append if events is not None
                                                                 else None), **kw)


async def test_a_job_runs_to_done_with_one_deterministic_file_per_image(store, backend, tmp_path,
                                                                        fake_sdwebui):
    job = store.add_job(cfg(5), name="lighthouses", output_dir=tmp_path / "out")
    events: list = []
    summary = await asyncio.wait_for(make_runner(store, backend, events).run(until_empty=True), 20)
    assert summary.done == 5 and summary.failed == 0
    items = store.reads.items(job.id)
    assert all(i.state is ItemState.done and len(i.outputs) == 1 for i in items)
    assert item_prefixes(tmp_path / "out") == sorted(i.name_prefix for i in items)
    # The seeds fixed at add time are the ones rendered.
    seeds = sorted(r.payload["seed"] for r in fake_sdwebui.requests_to(TXT2IMG))
    assert seeds == [10, 11, 12, 13, 14]
    finished = [e for e in events if isinstance(e, JobFinished)]
    assert len(finished) == 1 and finished[0].job.counts.done == 5
    assert any(isinstance(e, ItemProgress) for e in events)


async def test_transient_errors_retry_with_backoff_then_succeed(store, backend, fake_sdwebui, tmp_path):
    store.add_job(cfg(1), output_dir=tmp_path / "out")
    fake_sdwebui.inject("500", path=TXT2IMG, times=2)
    events: list = []
    summary = await asyncio.wait_for(make_runner(store, backend, events).run(until_empty=True), 20)
    (item,) = store.reads.items()
    assert item.state is ItemState.done and item.attempts == 2
    assert summary.retried == 2 and summary.done == 1
    assert len(fake_sdwebui.requests_to(TXT2IMG)) == 1, "faults are not recorded; one success"
    retries = [e for e in events if isinstance(e, ItemFinished) and e.state is ItemState.queued]
    assert len(retries) == 2 and retries[0].message


async def test_transient_errors_give_up_after_three_retries(store, backend, fake_sdwebui, tmp_path):
    store.add_job(cfg(1), output_dir=tmp_path / "out")
    fake_sdwebui.inject("500", path=TXT2IMG, times=10)
    summary = await asyncio.wait_for(make_runner(store, backend).run(until_empty=True), 20)
    (item,) = store.reads.items()
    assert item.state is ItemState.failed and item.attempts == 4
    assert fake_sdwebui._faults and fake_sdwebui._faults[0].times == 6, "four attempts were sent"
    assert summary.failed == 1 and "memory" in (item.error + (item.error_detail or "")).lower()
    assert not list((tmp_path / "out").glob("*.png"))


async def test_backoff_doubles(store, backend, fake_sdwebui, tmp_path):
    store.add_job(cfg(1), output_dir=tmp_path / "out")
    fake_sdwebui.inject("500", path=TXT2IMG, times=3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(make_runner(store, backend, backoff_base=0.1).run(until_empty=True), 20)
    # 0.1 + 0.2 + 0.4 seconds of waiting before the fourth attempt succeeds.
    assert loop.time() - started >= 0.65
    assert store.reads.items()[0].state is ItemState.done


async def test_a_rejection_fails_at_once_with_the_servers_reason(store, backend, fake_sdwebui,
                                                                 tmp_path):
    job = store.add_job(cfg(2), output_dir=tmp_path / "out")
    fake_sdwebui.inject("422", path=TXT2IMG, times=1)
    events: list = []
    summary = await asyncio.wait_for(make_runner(store, backend, events).run(until_empty=True), 20)
    first, second = store.reads.items(job.id)
    assert first.state is ItemState.failed and first.attempts == 1
    assert "steps" in (first.error + (first.error_detail or "")).lower()
    assert second.state is ItemState.done, "the batch carries on"
    assert len(fake_sdwebui.requests_to(TXT2IMG)) == 1, "the rejected one is not retried"
    assert summary.failures == [(first.label, first.error)]


async def test_cancel_in_flight_interrupts_the_server(store, tmp_path):
    from tests.fakes.sdwebui import FakeSDWebUI

    async with FakeSDWebUI(step_ms=100) as fake:
        backend = await connect(fake.url, kind="a1111", timeout=10)
        try:
            job = store.add_job(cfg(2, steps=50), output_dir=tmp_path / "out")
            runner = make_runner(store, backend, depth=1)
            task = asyncio.create_task(runner.run(until_empty=True))
            first = store.reads.items(job.id)[0]
            for _ in range(200):
                if fake.current_task and store.reads.get_item(first.id).state is ItemState.running:
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the first item never started")
            loop = asyncio.get_running_loop()
            cancelled_at = loop.time()
            assert store.cancel_job(job.id) == 2  # as the GUI or the CLI would
            summary = await asyncio.wait_for(task, 10)
            assert loop.time() - cancelled_at < 2.0, "the running image stops, not finishes"
            assert fake.interrupts, "the server was told to stop"
            # The second image was claimed by a lane but waited for the node's only slot: it
            # is cancelled without ever being sent.
            assert summary.cancelled == 2 and summary.done == 0
            assert len(fake.requests_to(TXT2IMG)) == 1
            assert {i.state for i in store.reads.items(job.id)} == {ItemState.cancelled}
            assert not list((tmp_path / "out").glob("*.png"))
        finally:
            await backend.aclose()


@pytest.mark.parametrize("stop", ["cancel", "close"])
async def test_a_stop_after_the_image_was_saved_keeps_it(store, backend, tmp_path, stop):
    """Stop lands while the item's image is saved, before the item is recorded as done: the
    image was already announced (gallery, learning), so it is kept and the item is done. The
    record hook acts as the user's Stop at that very moment (no timing luck involved)."""
    job = store.add_job(cfg(3), output_dir=tmp_path / "out")
    removed: list = []
    saved: list = []

    def user_stops(record) -> None:
        saved.append(record.path)
        if len(saved) > 1:
            return
        if stop == "cancel":  # Stop on a Run, or Cancel in the queue: the store first, as the GUI does
            store.cancel_job(job.id)
            for item in store.reads.items(job.id):
                runner.interrupt(item.id)
        else:  # the window closes: "stop and resume next time"
            runner.stop()

    runner = make_runner(store, backend, record_hooks=(user_stops,), depth=1, lanes=1,
                         on_outputs_removed=removed.extend)
    summary = await asyncio.wait_for(runner.run(until_empty=stop == "cancel"), 20)
    first, *rest = store.reads.items(job.id)
    assert first.state is ItemState.done and first.outputs == (str(saved[0]),)
    assert summary.done == 1
    assert saved[0].is_file(), "the image the user saw saved is still on disk"
    assert removed == []
    assert sorted(tmp_path.joinpath("out").glob("*.png")) == [saved[0]]
    left = {ItemState.cancelled} if stop == "cancel" else {ItemState.queued}
    assert {i.state for i in rest} == left


async def test_pause_holds_new_work_and_resume_releases_it(store, backend, tmp_path):
    store.add_job(cfg(3), output_dir=tmp_path / "out")
    store.set_paused(True)
    summary = await asyncio.wait_for(make_runner(store, backend).run(until_empty=True), 10)
    assert summary.done == 0
    assert {i.state for i in store.reads.items()} == {ItemState.queued}

    runner = make_runner(store, backend)
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.1)
    assert {i.state for i in store.reads.items()} == {ItemState.queued}, "paused: nothing starts"
    store.set_paused(False)
    runner.notify()
    for _ in range(250):
        if all(i.state is ItemState.done for i in store.reads.items()):
            break
        await asyncio.sleep(0.02)
    runner.stop()
    await asyncio.wait_for(task, 10)
    assert all(i.state is ItemState.done for i in store.reads.items())


async def test_reorder_and_priority_decide_what_the_node_renders_first(store, backend,
                                                                       fake_sdwebui, tmp_path):
    a = store.add_job(cfg(1, prompt="first added"), output_dir=tmp_path / "out")
    b = store.add_job(cfg(1, prompt="second added"), output_dir=tmp_path / "out")
    c = store.add_job(cfg(1, prompt="urgent"), output_dir=tmp_path / "out")
    store.reorder([b.id, a.id, c.id])
    store.bump_priority(c.id)
    await asyncio.wait_for(make_runner(store, backend, depth=1).run(until_empty=True), 20)
    prompts = [r.payload["prompt"] for r in fake_sdwebui.requests_to(TXT2IMG)]
    assert prompts == ["urgent", "second added", "first added"]


async def test_start_up_recovers_items_a_crash_left_running(store, backend, tmp_path):
    out = tmp_path / "out"
    job = store.add_job(cfg(3), output_dir=out)
    done = store.claim_next("old")
    store.mark_running(done.item.id, done.lease)
    out.mkdir()
    (out / f"{done.item.name_prefix}-0000.png").write_bytes(b"finished earlier")
    store.complete(done.item.id, done.lease, [str(out / f"{done.item.name_prefix}-0000.png")])
    crashed = store.claim_next("old")
    store.mark_running(crashed.item.id, crashed.lease)
    prefix = crashed.item.name_prefix
    (out / f"{prefix}-0000.png").write_bytes(b"torn")
    (out / f".{prefix}-0000.png.abc.tmp").write_bytes(b"half")
    (out / ".thumbnails").mkdir()
    (out / ".thumbnails" / f"{prefix}-0000.jpg").write_bytes(b"thumb")
    summary = await asyncio.wait_for(make_runner(store, backend).run(until_empty=True), 20)
    assert summary.done == 2, "the done item is not rendered again"
    assert (out / f"{done.item.name_prefix}-0000.png").read_bytes() == b"finished earlier"
    assert not (out / f"{prefix}-0000.png").exists(), "the torn file is gone"
    (again,) = out.glob(f"{prefix}-0000-*.png")
    assert again.read_bytes().startswith(b"\x89PNG"), "re-rendered"
    assert not list(out.glob(".*.tmp"))
    assert item_prefixes(out) == sorted(i.name_prefix for i in store.reads.items(job.id))
    assert all(i.state is ItemState.done for i in store.reads.items(job.id))


async def test_stop_gives_in_flight_items_back_without_counting_an_attempt(store, tmp_path):
    from tests.fakes.sdwebui import FakeSDWebUI

    async with FakeSDWebUI(step_ms=100) as fake:
        backend = await connect(fake.url, kind="a1111", timeout=10)
        try:
            store.add_job(cfg(1, steps=50), output_dir=tmp_path / "out")
            runner = make_runner(store, backend)
            task = asyncio.create_task(runner.run())
            for _ in range(200):
                if fake.current_task:
                    break
                await asyncio.sleep(0.02)
            runner.stop()
            await asyncio.wait_for(task, 10)
            (item,) = store.reads.items()
            assert item.state is ItemState.queued and item.attempts == 0
        finally:
            await backend.aclose()


async def test_a_node_that_goes_away_is_waited_for(store, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from stablenew.backends.a1111 import A1111Backend

    backend = A1111Backend(f"http://127.0.0.1:{port}", timeout=2)
    try:
        store.add_job(cfg(1), output_dir=tmp_path / "out")
        events: list = []
        runner = make_runner(store, backend, events, backoff_base=0.05, max_node_wait=0.2)
        summary = await asyncio.wait_for(runner.run(until_empty=True), 20)
        (item,) = store.reads.items()
        assert item.state is ItemState.failed and item.attempts == 4
        assert summary.failed == 1
        assert any(isinstance(e, NodeProblem) for e in events)
    finally:
        await backend.aclose()


async def test_only_one_runner_works_a_queue_at_a_time(store, backend, tmp_path):
    from stablenew.cluster.queue_store import QueueError
    from tests.fakes.sdwebui import FakeSDWebUI

    async with FakeSDWebUI(step_ms=20) as fake:
        slow = await connect(fake.url, kind="a1111", timeout=10)
        try:
            store.add_job(cfg(3, steps=10), output_dir=tmp_path / "out")
            first = asyncio.create_task(make_runner(store, slow).run(until_empty=True))
            for _ in range(200):
                if any(i.state is ItemState.running for i in store.reads.items()):
                    break
                await asyncio.sleep(0.01)
            with QueueStore(store.path) as other:  # as a second process would open it
                with pytest.raises(QueueError, match="already being worked on"):
                    await make_runner(other, backend).run(until_empty=True)
                running = [i for i in store.reads.items() if i.state is ItemState.running]
                assert running, "the second runner did not steal the first one's items"
            summary = await asyncio.wait_for(first, 20)
            assert summary.done == 3
        finally:
            await slow.aclose()
    # Once the first has finished, the queue is free again.
    store.add_job(cfg(1), output_dir=tmp_path / "out")
    assert (await asyncio.wait_for(make_runner(store, backend).run(until_empty=True), 20)).done == 1


async def test_turnstile_hands_slots_out_in_ticket_order():
    from stablenew.cluster.item_backend import Turnstile as _Turnstile

    gate = _Turnstile(1)
    order: list[int] = []
    tickets = [gate.ticket() for _ in range(5)]

    async def lane(ticket: int, delay: float) -> None:
        await asyncio.sleep(delay)  # later tickets arrive first
        await gate.acquire(ticket)
        order.append(ticket)
        await asyncio.sleep(0.001)
        gate.release()

    cancelled = asyncio.create_task(lane(tickets[2], 0.0))
    others = [asyncio.create_task(lane(t, 0.01 * (5 - i))) for i, t in enumerate(tickets)
              if t != tickets[2]]
    await asyncio.sleep(0.005)
    cancelled.cancel()  # an item cancelled while waiting gives its place up ...
    gate.forfeit(tickets[2])
    await asyncio.wait_for(asyncio.gather(*others), 5)
    assert order == [tickets[0], tickets[1], tickets[3], tickets[4]]
    # ... and a later stage of a started item goes before new tickets.
    gate2 = _Turnstile(1)
    first, second = gate2.ticket(), gate2.ticket()
    await gate2.acquire(first)
    waiting = asyncio.create_task(gate2.acquire(second))
    later = asyncio.create_task(gate2.acquire(first))  # the first item's next stage
    await asyncio.sleep(0.01)
    gate2.release()
    await asyncio.wait_for(later, 1)
    assert not waiting.done()
    gate2.release()
    await asyncio.wait_for(waiting, 1)


async def test_pause_lets_the_images_at_the_node_finish_and_gives_the_rest_back(store, tmp_path):
    from tests.fakes.sdwebui import FakeSDWebUI

    async with FakeSDWebUI(step_ms=30) as fake:
        backend = await connect(fake.url, kind="a1111", timeout=10)
        try:
            job = store.add_job(cfg(10, steps=10), output_dir=tmp_path / "out")
            runner = make_runner(store, backend)  # 2 slots at the node, 8 lanes
            task = asyncio.create_task(runner.run())
            for _ in range(300):
                if fake.current_task is not None:
                    break
                await asyncio.sleep(0.01)
            running = [i for i in store.reads.items(job.id) if i.state is ItemState.running]
            assert len(running) > 2, "more lanes than slots claimed images"
            store.set_paused(True)
            for _ in range(500):
                left = [i for i in store.reads.items(job.id) if i.state is ItemState.running]
                if not left:
                    break
                await asyncio.sleep(0.01)
            assert not left
            items = store.reads.items(job.id)
            done = [i for i in items if i.state is ItemState.done]
            assert 1 <= len(done) <= 2, "only the images already at the node finished"
            assert all(i.attempts == 0 for i in items if i.state is ItemState.queued)
            runner.stop()
            await asyncio.wait_for(task, 10)
        finally:
            await backend.aclose()
