"""A node whose lists went stale (its server restarted with other models, or someone removed one
and rescanned) says it lacks what the scheduler thought it had: here the hires fix's upscaler
("could not find upscaler named …"). The item goes to a node that has it, and the node's lists
are read again (a probe), so it is not offered such work again."""

from __future__ import annotations

import asyncio

from stablenew.cluster.jobs import ItemState
from tests.cluster.test_dispatcher import cfg, dispatcher, fakes, node

TXT2IMG = "/sdapi/v1/txt2img"
UPSCALER = "R-ESRGAN 4x+"
ALL = ("None", "Lanczos", UPSCALER)


def hires(count: int):
    return cfg(count).with_changes({"txt2img.hires.enabled": True,
                                     "txt2img.hires.upscaler": UPSCALER,
                                     "txt2img.hires.scale": 1.5})


async def test_an_item_a_node_turns_out_to_lack_the_model_for_goes_to_one_that_has_it(
        store, tmp_path):
    async with fakes({"step_ms": 5, "upscalers": ALL},
                     {"step_ms": 5, "upscalers": ALL}) as (stale, good):
        d = dispatcher(store, [node("stale", stale), node("good", good)])
        await d.monitor.check_all()  # both list the upscaler
        stale.upscalers = ALL[:2]  # its server restarted without it, unknown to us
        store.add_job(hires(4), output_dir=tmp_path / "out")
        summary = await asyncio.wait_for(d.run(until_empty=True), 30)
        items = store.reads.items()
        assert summary.failed == 0, summary.failures
        assert [i.state for i in items] == [ItemState.done] * 4
        assert {i.node for i in items} == {"good"}
        # It said so for what its two lanes took at once; then its lists were read again, and
        # they lack the upscaler: it was given no more.
        assert len(stale.requests_to(TXT2IMG)) <= 2
        caps = d.monitor.health("stale").capabilities
        assert caps is not None and UPSCALER not in caps.upscalers


async def test_with_no_node_left_that_has_it_the_item_fails_saying_what_is_missing(
        store, tmp_path):
    async with fakes({"step_ms": 5, "upscalers": ALL}) as (only,):
        d = dispatcher(store, [node("only", only)])
        await d.monitor.check_all()
        only.upscalers = ALL[:2]
        store.add_job(hires(1), output_dir=tmp_path / "out")
        summary = await asyncio.wait_for(d.run(until_empty=True), 30)
        (item,) = store.reads.items()
        assert item.state is ItemState.failed
        assert UPSCALER in (item.error or ""), item.error
        assert summary.failed == 1
