"""Jobs that ask for a node tier, over several fake SD servers on real HTTP: each goes to a node
of its tier, and overflows to the next tier when that node is down."""

from __future__ import annotations

import asyncio

from stablenew.cluster.jobs import ItemState
from stablenew.cluster.tiers import NodeTier
from stablenew.cluster.work import GB
from tests.cluster.test_dispatcher import cfg, dispatcher, fakes, node
from tests.fakes.sdwebui import FakeSDWebUI

SAME = {"step_ms": 2, "vram_total": 12 * GB}


def where(store) -> dict[str, set[str]]:
    """The nodes each job's images were made on, by job name."""
    names = {j.id: j.name for j in store.reads.list_jobs()}
    out: dict[str, set[str]] = {}
    for item in store.reads.items():
        assert item.state is ItemState.done, item
        out.setdefault(names[item.job_id], set()).add(str(item.node))
    return out


async def test_draft_work_goes_to_the_draft_node_and_quality_work_to_the_quality_node(store, tmp_path):
    async with fakes(SAME, SAME, SAME, SAME) as (draft, everyday, quality, premium):
        store.add_job(cfg(1), name="drafts", tier=NodeTier.draft, output_dir=tmp_path / "d")
        store.add_job(cfg(1), name="refine", tier=NodeTier.quality, output_dir=tmp_path / "q")
        store.add_job(cfg(1), name="final", tier=NodeTier.premium, output_dir=tmp_path / "p")
        store.add_job(cfg(1), name="plain", output_dir=tmp_path / "s")
        d = dispatcher(store, [node("premium", premium, tier="premium"),
                               node("quality", quality, tier="quality"),
                               node("draft", draft, tier="draft"),
                               node("everyday", everyday)])
        await asyncio.wait_for(d.run(until_empty=True), 20)
    assert where(store) == {"drafts": {"draft"}, "refine": {"quality"}, "final": {"premium"},
                            "plain": {"everyday"}}
    # The fakes saw it too: each request reached the server of its tier.
    assert [len(f.requests) > 0 for f in (draft, everyday, quality, premium)] == [True] * 4


async def test_quality_work_overflows_to_the_premium_node_while_the_quality_node_is_down(
        store, tmp_path):
    gone = FakeSDWebUI(**SAME)
    await gone.start()
    url = gone.url
    await gone.stop()  # the quality node is down from the start
    async with fakes(SAME, SAME) as (draft, premium):
        store.add_job(cfg(1), name="refine", tier=NodeTier.quality, output_dir=tmp_path / "q")
        store.add_job(cfg(1), name="drafts", tier=NodeTier.draft, output_dir=tmp_path / "d")
        quality = node("quality", draft, tier="quality").model_copy(update={"url": url})
        d = dispatcher(store, [node("draft", draft, tier="draft"), quality,
                               node("premium", premium, tier="premium")])
        await asyncio.wait_for(d.run(until_empty=True), 20)
    assert where(store) == {"refine": {"premium"}, "drafts": {"draft"}}


def test_the_dry_run_plans_each_job_on_the_tier_it_asks_for(store, tmp_path):
    from stablenew.backends.types import BackendKind, Capabilities
    from stablenew.cluster.dry_run import dry_run
    from stablenew.cluster.scheduler import NodeView

    caps = Capabilities(kind=BackendKind.a1111, vram_total=12 * GB)
    views = [NodeView(name, caps, tier=name) for name in ("standard", "draft", "premium")]
    store.add_job(cfg(1), name="final", tier=NodeTier.premium, output_dir=tmp_path / "p")
    store.add_job(cfg(1), name="drafts", tier=NodeTier.draft, output_dir=tmp_path / "d")
    store.add_job(cfg(1), name="plain", output_dir=tmp_path / "s")
    plan = dry_run(store, views)
    assert {r.job_name: r.node for r in plan.rows} == {"final": "premium", "drafts": "draft",
                                                       "plain": "standard"}
