"""ClusterDispatcher against several fake SD servers over real HTTP on 127.0.0.1: each with its own
speed, VRAM and model list."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from stablenew.cluster.dispatcher import ClusterDispatcher
from stablenew.cluster.dry_run import dry_run
from stablenew.cluster.health import NodeState
from stablenew.cluster.jobs import ItemState
from stablenew.cluster.nodes import NodeConfig
from stablenew.cluster.scheduler import Policy, ineligibility
from stablenew.cluster.work import GB, requirements_for
from stablenew.pipeline.config import PipelineConfig
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.sdwebui import FakeSDWebUI
from tests.queue.helpers import item_prefixes

XL = "sd_xl_base_1.0.safetensors"
SD15 = "SD15/dreamshaper_8.safetensors"
TXT2IMG = "/sdapi/v1/txt2img"


def cfg(count: int, *, checkpoint: str = SD15, size: int = 64, steps: int = 4,
        prompt: str = "a lighthouse") -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.prompt": prompt, "txt2img.batch_count": count, "txt2img.steps": steps,
        "txt2img.width": size, "txt2img.height": size, "txt2img.seed": 10,
        "txt2img.checkpoint": checkpoint, "txt2img.sampler": "Euler a",
        "txt2img.scheduler": "Automatic"})


@contextlib.asynccontextmanager
async def fakes(*specs: dict):
    async with contextlib.AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(FakeSDWebUI(**spec)) for spec in specs]
        yield servers


def node(name: str, fake: FakeSDWebUI, **kw) -> NodeConfig:
    return NodeConfig(name=name, url=fake.url, kind="a1111", **kw)


def dispatcher(store, nodes, **kw) -> ClusterDispatcher:
    kw.setdefault("health_interval", 0.1)
    kw.setdefault("health_timeout", 2.0)
    kw.setdefault("poll_interval", 0.02)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("stop_grace", 0.5)
    kw.setdefault("runner_kwargs", {"thumbnails": False})
    return ClusterDispatcher(store, nodes, **kw)


def outputs_exactly_once(store, folder: Path) -> None:
    items = store.reads.items()
    assert all(i.state is ItemState.done and len(i.outputs) == 1 for i in items), \
        Counter(i.state for i in items)
    assert item_prefixes(folder) == sorted(i.name_prefix for i in items)


async def test_eligibility_sends_sdxl_only_to_the_card_that_has_it_and_room_for_it(store, tmp_path):
    async with fakes({"step_ms": 1, "vram_total": 16 * GB, "checkpoints": (XL, SD15)},
                     {"step_ms": 1, "vram_total": 4 * GB, "checkpoints": (XL, SD15)},
                     {"step_ms": 1, "vram_total": 12 * GB, "checkpoints": (SD15,)}) as (big, tiny, mid):
        xl = store.add_job(cfg(6, checkpoint=XL, size=1024, steps=2), output_dir=tmp_path / "out")
        sd = store.add_job(cfg(12), output_dir=tmp_path / "out")
        d = dispatcher(store, [node("big", big), node("tiny", tiny), node("mid", mid)])
        summary = await asyncio.wait_for(d.run(until_empty=True), 20)
    assert summary.done == 18 and summary.failed == 0
    # tiny has the model but 4 GB is too little for SDXL at 1024²; mid lacks the model.
    assert {i.node for i in store.reads.items(xl.id)} == {"big"}
    assert len(tiny.requests_to(TXT2IMG)) + len(mid.requests_to(TXT2IMG)) >= 1  # backfill
    assert all(r.payload["width"] == 64 for r in tiny.requests_to(TXT2IMG) + mid.requests_to(TXT2IMG))
    assert {i.state for i in store.reads.items(sd.id)} == {ItemState.done}
    outputs_exactly_once(store, tmp_path / "out")


async def test_an_item_no_node_can_take_fails_naming_what_is_missing(store, tmp_path):
    async with fakes({"step_ms": 0, "checkpoints": (SD15,)}) as (only,):
        bad = store.add_job(cfg(2, checkpoint="flux1-dev.safetensors"), output_dir=tmp_path / "o")
        good = store.add_job(cfg(2), output_dir=tmp_path / "o")
        events: list = []
        d = dispatcher(store, [node("only", only)], on_event=events.append)
        summary = await asyncio.wait_for(d.run(until_empty=True), 20)
    failed = store.reads.items(bad.id)
    assert [i.state for i in failed] == [ItemState.failed] * 2
    assert "only does not have the model 'flux1-dev.safetensors'" in failed[0].error
    assert failed[0].error.startswith("No node can run this")
    assert {i.state for i in store.reads.items(good.id)} == {ItemState.done}
    assert summary.failed == 2 and summary.done == 2
    assert not only.requests_to(TXT2IMG)[2:]  # only the good ones were sent


async def test_the_faster_node_does_most_and_the_slow_one_backfills(store, tmp_path):
    async with fakes({"step_ms": 2, "vram_total": 16 * GB}, {"step_ms": 40, "vram_total": 16 * GB}
                     ) as (fast, slow):
        store.add_job(cfg(24), output_dir=tmp_path / "out")
        d = dispatcher(store, [node("fast", fast), node("slow", slow)])
        summary = await asyncio.wait_for(d.run(until_empty=True), 20)
    per = Counter(i.node for i in store.reads.items())
    assert summary.done == 24
    assert per["fast"] > per["slow"] >= 1, per
    speeds = d.speeds()
    assert speeds["fast"]["small"] > speeds["slow"]["small"]  # learned from completed items
    outputs_exactly_once(store, tmp_path / "out")


async def test_a_slow_card_never_takes_the_last_item_a_fast_card_would_finish_sooner(store, tmp_path):
    async with fakes({"step_ms": 2}, {"step_ms": 400}) as (fast, slow):
        store.add_job(cfg(3, steps=5), output_dir=tmp_path / "out")
        # Known speeds (as learned in earlier runs), true to the fakes: an item here is 0.02
        # work units (64² × 5 steps); fast does one in about 0.05 s with the HTTP round trip
        # and saving, slow in about 2 s. The fast card's own measured pace replaces its prior
        # after its first image, so the priors must be honest: with a prior far quicker than
        # the fake really is, the slow card looked faster than the measured fast one on a
        # loaded machine (CI, stop 26). Even at 0.3 s per image, fast ends all three sooner.
        # No health checks during the run (both answered just before it): on a loaded machine
        # a check of the fast node mid-image could call it busy for a moment, and the slow card
        # would rightly take work. The choice between two healthy nodes is what is tested.
        d = dispatcher(store, [node("fast", fast), node("slow", slow)], health_interval=60.0,
                       speeds={"fast": {"small": 0.4}, "slow": {"small": 0.01}})
        # Both have answered before the run: the choice between them is what is tested, not
        # which one's first probe came back first (on a busy machine the slow one may).
        await d.monitor.check_all()
        await asyncio.wait_for(d.run(until_empty=True), 20)
    assert {i.node for i in store.reads.items()} == {"fast"}
    assert slow.requests_to(TXT2IMG) == []


async def test_round_robin_baseline_does_hand_the_slow_card_its_share(store, tmp_path):
    async with fakes({"step_ms": 1}, {"step_ms": 5}) as (fast, slow):
        store.add_job(cfg(4, steps=2), output_dir=tmp_path / "out")
        d = dispatcher(store, [node("fast", fast), node("slow", slow)], policy=Policy.round_robin)
        await asyncio.wait_for(d.run(until_empty=True), 20)
    assert Counter(i.node for i in store.reads.items()) == {"fast": 2, "slow": 2}


async def test_a_busy_preferred_tier_overflows_to_the_next(store, tmp_path):
    async with fakes({"step_ms": 4}, {"step_ms": 4}) as (home, spare):
        store.add_job(cfg(16), output_dir=tmp_path / "out")
        d = dispatcher(store, [node("home", home, tier=1), node("spare", spare, tier=2)],
                       speeds={"home": {"small": 1.0}, "spare": {"small": 1.0}})
        await asyncio.wait_for(d.run(until_empty=True), 20)
    items = sorted(store.reads.items(), key=lambda i: i.index)
    per = Counter(i.node for i in items)
    # The first item goes to the preferred tier; once it is busy the next tier takes work. With
    # equal speeds the split after that is the machine's timing (7/9 either way on a loaded CI).
    assert items[0].node == "home", [(i.index, i.node) for i in items]
    assert per["home"] >= 4 and per["spare"] >= 4 and sum(per.values()) == 16, per


async def test_a_node_killed_mid_batch_loses_nothing_and_comes_back(store, tmp_path):
    async with fakes({"step_ms": 8}, {"step_ms": 8}) as (a, b):
        port_a = a.port
        store.add_job(cfg(24), output_dir=tmp_path / "out")
        changes: list = []
        d = dispatcher(store, [node("a", a), node("b", b)],
                       on_node_change=lambda h: changes.append((h.name, h.state)))
        run = asyncio.ensure_future(d.run(until_empty=True))
        while sum(i.state is ItemState.done and i.node == "a" for i in store.reads.items()) < 3:
            await asyncio.sleep(0.01)
            assert not run.done()
        await a.stop()  # node a dies with work in flight
        while ("a", NodeState.unhealthy) not in changes:
            await asyncio.sleep(0.01)
            assert not run.done()
        # Its in-flight items go back to the queue (for b) within the stop grace.
        for _ in range(200):
            if not any(i.node == "a" and i.state is not ItemState.done for i in store.reads.items()):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("node a still holds items after it was marked unhealthy")
        revived = FakeSDWebUI(step_ms=8, port=port_a)
        await revived.start()
        try:
            summary = await asyncio.wait_for(run, 20)
            assert ("a", NodeState.healthy) in changes[changes.index(("a", NodeState.unhealthy)):]
        finally:
            await revived.stop()
    assert summary.done == 24 and summary.failed == 0
    outputs_exactly_once(store, tmp_path / "out")
    # Nothing rendered twice as a finished image: one done item per index.
    assert sorted(i.index for i in store.reads.items()) == list(range(24))
    # The dead node's items went back untried (at most the one it was rendering as it died
    # counts an attempt): a node going down does not eat the items' retries.
    assert max(i.attempts for i in store.reads.items()) <= 1


async def test_wrong_credentials_are_a_clear_state_and_not_retried_forever(store, tmp_path):
    async with fakes({"step_ms": 0, "auth": ("ann", "right")}) as (locked,):
        store.add_job(cfg(2), output_dir=tmp_path / "out")
        nodes = [node("locked", locked, username="ann", password="s3cr3t-guess")]
        d = dispatcher(store, nodes, health_interval=0.02)
        summary = await asyncio.wait_for(d.run(until_empty=True), 10)
        asked = len(locked.requests)
        await asyncio.sleep(0.1)
    health = d.monitor.health("locked")
    assert health.state is NodeState.auth_failed
    assert "refused the user name and password" in health.message
    assert "Probe" in health.message
    assert "s3cr3t-guess" not in health.message + health.detail
    assert asked <= 4 and len(locked.requests) == asked
    # The run stops with the reason instead of waiting forever, and nothing is lost.
    assert "refused" in summary.stalled
    assert {i.state for i in store.reads.items()} == {ItemState.queued}


async def test_dry_run_lists_item_node_start_finish_without_sending_anything(store, tmp_path):
    async with fakes({"step_ms": 0, "vram_total": 16 * GB, "checkpoints": (XL, SD15)},
                     {"step_ms": 0, "vram_total": 4 * GB, "checkpoints": (SD15,)}) as (big, small):
        store.add_job(cfg(3, checkpoint=XL, size=1024), name="xl", output_dir=tmp_path / "o")
        store.add_job(cfg(2, checkpoint="flux1-dev.safetensors"), name="flux", output_dir=tmp_path / "o")
        d = dispatcher(store, [node("big", big), node("small", small)])
        await d.monitor.check_all()
        table = dry_run(store, d.views())
        await d.monitor.aclose()
    assert big.requests_to(TXT2IMG) == [] and small.requests_to(TXT2IMG) == []
    assigned = [r for r in table.rows if r.node]
    assert [r.node for r in assigned] == ["big"] * 3
    assert all(r.finish > r.start >= 0 for r in assigned)
    assert table.makespan == max(r.finish for r in assigned) >= table.lower_bound > 0
    assert len(table.unassignable) == 2 and "flux1-dev" in table.unassignable[0].reason
    assert {i.state for i in store.reads.items()} == {ItemState.queued}


async def test_an_out_of_memory_failure_teaches_the_node_its_limit(store, tmp_path):
    async with fakes({"step_ms": 1, "vram_total": 8 * GB, "checkpoints": (XL,)},
                     {"step_ms": 1, "vram_total": 16 * GB, "checkpoints": (XL,)}) as (small, big):
        # By the estimate table SDXL at 1024² fits in 8 GB; this card says otherwise.
        small.inject("500", path=TXT2IMG, times=2)
        store.add_job(cfg(6, checkpoint=XL, size=1024, steps=2), output_dir=tmp_path / "out")
        d = dispatcher(store, [node("small", small), node("big", big)],
                       speeds={"small": {"medium": 50.0}, "big": {"medium": 1.0}})
        summary = await asyncio.wait_for(d.run(until_empty=True), 20)
    assert summary.done == 6 and summary.failed == 0
    assert {i.node for i in store.reads.items()} == {"big"}
    assert len(small.requests_to(TXT2IMG)) <= 2  # the ones in flight when it ran out; no more
    view = next(v for v in d.views() if v.name == "small")
    assert "too little VRAM" in ineligibility(requirements_for(cfg(1, checkpoint=XL, size=1024)), view)
    outputs_exactly_once(store, tmp_path / "out")


async def test_comfyui_and_a1111_nodes_share_one_queue(store, tmp_path):
    async with FakeComfyUI(step_ms=1, checkpoints=("dreamshaper_8.safetensors",)) as comfy, \
            FakeSDWebUI(step_ms=1, checkpoints=(SD15,)) as a1111:
        store.add_job(cfg(10, checkpoint="dreamshaper_8.safetensors"), output_dir=tmp_path / "out")
        d = dispatcher(store, [NodeConfig(name="comfy", url=comfy.url, kind="comfyui"),
                               node("a1111", a1111)])
        summary = await asyncio.wait_for(d.run(until_empty=True), 20)
    assert summary.done == 10
    per = Counter(i.node for i in store.reads.items())
    assert per["comfy"] >= 1 and per["a1111"] >= 1, per
    assert len(comfy.received) == per["comfy"]
    outputs_exactly_once(store, tmp_path / "out")


async def test_an_interactive_run_stays_on_its_node_and_goes_first_there(store, tmp_path):
    async with fakes({"step_ms": 1}, {"step_ms": 1}) as (desk, farm):
        batch = store.add_job(cfg(6), output_dir=tmp_path / "out")
        run = store.add_job(cfg(2, prompt="now"), output_dir=tmp_path / "out", node_pin="desk",
                            priority=1000)
        d = dispatcher(store, [node("desk", desk), node("farm", farm)],
                       speeds={"desk": {"small": 1.0}, "farm": {"small": 50.0}})
        await asyncio.wait_for(d.run(until_empty=True), 20)
    assert {i.node for i in store.reads.items(run.id)} == {"desk"}
    assert {i.state for i in store.reads.items(batch.id)} == {ItemState.done}
    first_two = [r.payload["prompt"] for r in desk.requests_to(TXT2IMG)[:2]]
    assert first_two == ["now", "now"]


async def test_a_second_runner_on_the_same_queue_is_refused_while_the_cluster_runs(store, tmp_path):
    from stablenew.backends.connect import connect
    from stablenew.cluster.queue_runner import QueueRunner
    from stablenew.cluster.queue_store import QueueError

    async with fakes({"step_ms": 5}) as (only,):
        store.add_job(cfg(6), output_dir=tmp_path / "out")
        d = dispatcher(store, [node("only", only)])
        run = asyncio.ensure_future(d.run(until_empty=True))
        while not any(i.state is ItemState.running for i in store.reads.items()):
            await asyncio.sleep(0.01)
            assert not run.done()
        backend = await connect(only.url, kind="a1111")
        try:
            with pytest.raises(QueueError, match="already being worked on"):
                await QueueRunner(store, backend, node="other").run(until_empty=True)
        finally:
            await backend.aclose()
        summary = await asyncio.wait_for(run, 20)
    assert summary.done == 6


async def test_the_heaviest_item_is_claimed_first_even_deep_in_a_long_job(store, tmp_path):
    async with fakes({"step_ms": 0, "checkpoints": (XL, SD15)}) as (only,):
        configs = [cfg(1, steps=2) for _ in range(230)]
        configs[220] = cfg(1, checkpoint=XL, size=1024, steps=30)
        from stablenew.cluster.jobs import JobKind

        store.add_job(configs, kind=JobKind.plan, output_dir=tmp_path / "out")
        d = dispatcher(store, [node("only", only)])
        await d.monitor.check_all()
        try:
            claim = await asyncio.to_thread(partial(d.claim_for, "only", None, start=True))
        finally:
            await d.monitor.aclose()
    assert claim is not None and claim.item.index == 220


async def test_a_higher_priority_job_runs_before_heavier_work_queued_earlier(store, tmp_path):
    async with fakes({"step_ms": 0, "checkpoints": (XL, SD15)}) as (only,):
        store.add_job(cfg(3, checkpoint=XL, size=512, steps=8, prompt="heavy"),
                      output_dir=tmp_path / "out")
        store.add_job(cfg(3, steps=2, prompt="urgent"), output_dir=tmp_path / "out", priority=5)
        d = dispatcher(store, [node("only", only)])
        await asyncio.wait_for(d.run(until_empty=True), 20)
    prompts = [r.payload["prompt"] for r in only.requests_to(TXT2IMG)]
    assert prompts == ["urgent"] * 3 + ["heavy"] * 3


async def test_a_node_that_hangs_on_its_probe_delays_nobody(store, tmp_path):
    async with fakes({"step_ms": 0}, {"step_ms": 0}) as (quick, hung):
        hung.inject("stall", seconds=60.0, times=50)
        store.add_job(cfg(4, steps=2), output_dir=tmp_path / "out")
        d = dispatcher(store, [node("hung", hung), node("quick", quick)])
        summary = await asyncio.wait_for(d.run(until_empty=True), 10)
    assert summary.done == 4 and {i.node for i in store.reads.items()} == {"quick"}
    assert d.monitor.health("hung").state is NodeState.unknown


async def test_nodes_added_and_removed_while_running_join_and_leave_cleanly(store, tmp_path):
    async with fakes({"step_ms": 10}, {"step_ms": 2}) as (first, second):
        store.add_job(cfg(16), output_dir=tmp_path / "out")
        d = dispatcher(store, [node("first", first)])
        run = asyncio.ensure_future(d.run(until_empty=True))
        while not any(i.state is ItemState.done for i in store.reads.items()):
            await asyncio.sleep(0.01)
            assert not run.done()
        await d.add_node(node("second", second))
        while not any(i.node == "second" and i.state is ItemState.done for i in store.reads.items()):
            await asyncio.sleep(0.01)
            assert not run.done()
        await d.remove_node("first")
        assert not any(i.node == "first" and i.state is not ItemState.done for i in store.reads.items())
        summary = await asyncio.wait_for(run, 20)
    assert summary.done == 16
    outputs_exactly_once(store, tmp_path / "out")
    assert [s.name for s in d.statuses()] == ["second"]


async def test_the_upscale_stage_runs_on_another_node_when_the_generating_one_lacks_the_upscaler(
        store, tmp_path):
    async with fakes({"step_ms": 1, "checkpoints": (XL,), "upscalers": ("None", "Lanczos")},
                     {"step_ms": 1, "checkpoints": (SD15,)}) as (gen, up):
        config = cfg(3, checkpoint=XL, size=128, steps=2).with_changes({
            "upscale.enabled": True, "upscale.upscaler": "R-ESRGAN 4x+", "upscale.scale": 2.0})
        store.add_job(config, output_dir=tmp_path / "out")
        d = dispatcher(store, [node("gen", gen), node("up", up)])
        await d.monitor.check_all()
        # The dry run already counts on the move: nothing is unassignable.
        assert not dry_run(store, d.views()).unassignable
        summary = await asyncio.wait_for(d.run(until_empty=True), 20)
    assert summary.done == 3 and summary.failed == 0
    assert {i.node for i in store.reads.items()} == {"gen"}
    assert len(gen.requests_to(TXT2IMG)) == 3 and up.requests_to(TXT2IMG) == []
    assert len(up.requests_to("/sdapi/v1/extra-single-image")) == 3
    assert gen.requests_to("/sdapi/v1/extra-single-image") == []
    outputs_exactly_once(store, tmp_path / "out")
    from PIL import Image

    for item in store.reads.items():
        with Image.open(item.outputs[0]) as image:
            assert image.size == (256, 256)  # the upscaled picture came back with the item


def test_the_store_lists_queued_items_in_run_order_without_those_waiting_for_a_retry(store, tmp_path):
    a = store.add_job(cfg(3), output_dir=tmp_path / "o")
    b = store.add_job(cfg(2), output_dir=tmp_path / "o", priority=2)
    c = store.add_job(cfg(2), output_dir=tmp_path / "o")
    store.move_job(c.id, 0)
    claim = store.claim_next("n", can_take=lambda i, _j: i.job_id == a.id and i.index == 1)
    store.fail(claim.item.id, claim.lease, "busy", transient=True, backoff_base=60)
    order = [(i.job_id, i.index) for i, _ in store.reads.queued_in_order(10)]
    assert order == [(b.id, 0), (b.id, 1), (c.id, 0), (c.id, 1), (a.id, 0), (a.id, 2)]
    assert [j.id for _, j in store.reads.queued_in_order(3)] == [b.id, b.id, c.id]


async def test_an_item_a_node_drops_goes_back_untried_instead_of_spending_a_retry(store, tmp_path):
    async with fakes({"step_ms": 1}, {"step_ms": 1}) as (flaky, steady):
        flaky.inject("drop", path=TXT2IMG, times=2)  # pings still answer: it stays "healthy"
        store.add_job(cfg(6), output_dir=tmp_path / "out")
        d = dispatcher(store, [node("flaky", flaky), node("steady", steady)])
        summary = await asyncio.wait_for(d.run(until_empty=True), 20)
    assert summary.done == 6 and summary.failed == 0
    assert [i.attempts for i in store.reads.items()] == [0] * 6
    outputs_exactly_once(store, tmp_path / "out")


async def test_until_empty_gives_up_when_no_node_answers_for_long_and_keeps_the_items(store, tmp_path):
    store.add_job(cfg(2), output_dir=tmp_path / "out")
    d = dispatcher(store, [NodeConfig(name="gone", url="http://127.0.0.1:9", kind="a1111")],
                   give_up_after=0.3)
    summary = await asyncio.wait_for(d.run(until_empty=True), 10)
    assert "No node has answered for 0.3 s" in summary.stalled
    assert "No Stable Diffusion server answers" in summary.stalled
    assert {i.state for i in store.reads.items()} == {ItemState.queued}


def test_statuses_never_wait_for_a_worker_holding_the_lock(store, tmp_path):
    """The window reads the nodes' states every second: a worker inside a long database
    transaction (holding the dispatcher's lock) must not hold the window with it."""
    import threading
    import time

    d = dispatcher(store, [NodeConfig(name="den", url="http://127.0.0.1:9", kind="a1111")])
    assert [s.name for s in d.statuses()] == ["den"]
    held, release = threading.Event(), threading.Event()

    def worker() -> None:
        with d._lock:  # as _claim does around store.claim_next
            held.set()
            release.wait(5)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        held.wait(5)
        started = time.monotonic()
        statuses = d.statuses()
        assert time.monotonic() - started < 0.05
        assert [s.name for s in statuses] == ["den"], "the last complete view"
    finally:
        release.set()
        thread.join(5)


async def test_the_run_summary_is_written_on_the_event_loop_only(store, tmp_path):
    """Workers' totals join the summary on the loop; the items no node can take are failed on a
    database thread, and their count must not be added from there (two threads doing `+=`)."""
    import threading

    from stablenew.cluster.dispatcher import ClusterSummary

    writers: set[str] = set()

    class Recording(ClusterSummary):
        def __setattr__(self, name, value):
            writers.add(threading.current_thread().name)
            super().__setattr__(name, value)

    async with fakes({"step_ms": 0, "checkpoints": (SD15,)}) as (only,):
        store.add_job(cfg(2, checkpoint="flux1-dev.safetensors"), output_dir=tmp_path / "o")
        store.add_job(cfg(2), output_dir=tmp_path / "o")
        d = dispatcher(store, [node("only", only)])
        d.summary = Recording()
        writers.clear()
        summary = await asyncio.wait_for(d.run(until_empty=True), 20)
    assert summary.failed == 2 and summary.done == 2
    assert writers == {threading.current_thread().name}, writers


async def test_a_single_node_queue_run_teaches_the_plan_its_speed(store, tmp_path):
    """A plan once said 71 s for 10 s of work: only cluster runs kept a measured speed, so a
    node that had only worked the queue alone was planned from its VRAM."""
    import time

    from stablenew.backends.connect import connect
    from stablenew.cluster.estimates import QueueEstimates, speeds_file
    from stablenew.cluster.queue_runner import QueueRunner

    async with fakes({"step_ms": 25}) as (fake,):
        estimates = QueueEstimates(path=speeds_file(tmp_path))
        store.add_job(cfg(4, steps=6), name="first", output_dir=tmp_path / "o")
        backend = await connect(fake.url, kind="a1111")
        try:
            await asyncio.to_thread(estimates.read_jobs, store)  # as the queue view does
            runner = QueueRunner(store, backend, node="desk", on_event=estimates.on_queue_event,
                                 thumbnails=False)
            await runner.run(until_empty=True)
            estimates.save()
            store.add_job(cfg(8, steps=6), name="next", output_dir=tmp_path / "o")
            d = dispatcher(store, [node("desk", fake)], speeds=_loaded(tmp_path))
            await d.monitor.check_all()
            planned = dry_run(store, d.views()).makespan
            await d.monitor.aclose()
            started = time.monotonic()
            await QueueRunner(store, backend, node="desk", thumbnails=False).run(until_empty=True)
            took = time.monotonic() - started
        finally:
            await backend.aclose()
    assert planned == pytest.approx(took, rel=0.35), (planned, took)


def _loaded(folder: Path) -> dict:
    from stablenew.cluster.estimates import load_speeds, speeds_file

    return load_speeds(speeds_file(folder))


async def test_a_lora_in_the_prompt_sends_the_job_only_to_nodes_that_have_it(store, tmp_path):
    """Issue 19: LoRAs join the models the scheduler checks. A node that lists LoRAs and lacks
    one the prompt names is not eligible; a LoRA no node has fails with the reason."""
    async with fakes({"step_ms": 0, "loras": ("film_grain", "add_detail")},
                     {"step_ms": 0, "loras": ("add_detail",)}) as (den, attic):
        grain = store.add_job(cfg(6, prompt="a lighthouse, <lora:film_grain:0.7>"),
                              output_dir=tmp_path / "out")
        nowhere = store.add_job(cfg(1, prompt="a lighthouse <lora:does_not_exist:1>"),
                                output_dir=tmp_path / "out")
        d = dispatcher(store, [node("den", den), node("attic", attic)])
        summary = await asyncio.wait_for(d.run(until_empty=True), 20)
    assert {i.node for i in store.reads.items(grain.id)} == {"den"}
    assert {i.state for i in store.reads.items(grain.id)} == {ItemState.done}
    (missing,) = store.reads.items(nowhere.id)
    assert missing.state is ItemState.failed and "LoRA 'does_not_exist'" in missing.error
    assert summary.done == 6 and summary.failed == 1


@pytest.mark.parametrize("how", ["turned off", "removed"])
async def test_the_last_node_turned_off_or_removed_leaves_the_queue_waiting(store, tmp_path, how):
    """A queue whose only node is turned off (or removed) mid-run keeps its images queued:
    none fails for want of a node, and they run once it is back."""
    async with fakes({"step_ms": 20}) as (only,):
        store.add_job(cfg(8), output_dir=tmp_path / "out")
        d = dispatcher(store, [node("only", only)])
        judged = []  # the run loop's looks for items no node could take
        real = d._fail_unassignable
        d._fail_unassignable = lambda: judged.append(1) or real()
        run = asyncio.ensure_future(d.run())
        try:
            while not any(i.state is ItemState.done for i in store.reads.items()):
                await asyncio.sleep(0.01)
                assert not run.done()
            if how == "removed":
                await d.remove_node("only")
            else:
                await d.add_node(node("only", only, enabled=False))
            seen = len(judged)
            while len(judged) < seen + 3:  # the first look after the change judges it anew
                await asyncio.sleep(0.01)
            states = Counter(i.state for i in store.reads.items())
            assert states[ItemState.failed] == 0, [i.error for i in store.reads.items()]
            assert states[ItemState.queued] > 0 and states[ItemState.running] == 0
            await d.add_node(node("only", only))
            while Counter(i.state for i in store.reads.items())[ItemState.done] < 8:
                await asyncio.sleep(0.02)
                assert not run.done()
        finally:
            d.stop()
            await asyncio.wait_for(run, 20)
    outputs_exactly_once(store, tmp_path / "out")


async def test_a_run_that_waits_with_the_queue_hears_why_and_when_the_wait_is_over(store, tmp_path):
    """The window's run does not end when no node answers: it is told what the queued images
    wait for (once, not at every look) and, with "", when a node answers again."""
    from stablenew.cluster.queue_events import Waiting

    async with fakes({"step_ms": 0}) as (attic,):
        only = node("attic", attic)
        port = attic.port
        await attic.stop()
        store.add_job(cfg(2), output_dir=tmp_path / "out")
        said: list[str] = []
        d = dispatcher(store, [only], on_event=lambda e: said.append(e.message)
                       if isinstance(e, Waiting) else None)
        run = asyncio.ensure_future(d.run())
        revived = FakeSDWebUI(step_ms=0, port=port)
        try:
            while not said:
                await asyncio.sleep(0.01)
                assert not run.done()
            assert said[0].startswith("Waiting for a node to answer. attic: No Stable Diffusion server "
                                      f"answers at http://127.0.0.1:{port}")
            assert said[0].endswith("check the node's address in the Nodes tab. The queued images "
                                    "run as soon as one does.")
            await asyncio.sleep(0.3)  # many looks at the queue: the same wait is not said again
            assert len(said) == 1
            await revived.start()
            while Counter(i.state for i in store.reads.items())[ItemState.done] < 2:
                await asyncio.sleep(0.02)
                assert not run.done()
            assert said[1:] == [""]
        finally:
            d.stop()
            await asyncio.wait_for(run, 20)
            await revived.stop()
