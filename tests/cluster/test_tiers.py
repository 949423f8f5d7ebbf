"""Named node tiers: old registries' numbers read plainly, the overflow order, and the planner
sending work that asks for a tier to that tier's nodes first."""

from __future__ import annotations

import pytest

from stablenew.backends.types import BackendKind, Capabilities
from stablenew.cluster.nodes import NodeConfig, NodeRegistry
from stablenew.cluster.scheduler import NodeView, plan_earliest_finish
from stablenew.cluster.tiers import NodeTier, as_tier, overflow_distance
from stablenew.cluster.work import GB, requirements_for
from stablenew.pipeline.config import PipelineConfig

D, S, Q, P = NodeTier.draft, NodeTier.standard, NodeTier.quality, NodeTier.premium


def test_old_numbers_and_names_are_read_and_anything_else_is_refused_plainly():
    assert [as_tier(n) for n in (1, 2, 3, 9, "2")] == [S, Q, P, P, Q]
    assert [as_tier(n) for n in ("draft", " Premium ", Q)] == [D, P, Q]
    with pytest.raises(ValueError, match="draft, standard, quality, premium"):
        as_tier("fastest")
    with pytest.raises(ValueError, match="1 to 9"):
        as_tier(12)


def test_overflow_goes_up_the_chain_then_to_the_lower_tiers():
    def order(asked):
        return sorted(NodeTier, key=lambda t: overflow_distance(asked, t))
    assert order(D) == [D, S, Q, P]
    assert order(Q) == [Q, P, S, D]
    assert order(P) == [P, Q, S, D]
    assert order(None) == [S, Q, P, D]  # ordinary work is standard work


def test_an_old_registry_with_numbers_loses_no_node_and_is_saved_with_names(tmp_path):
    path = tmp_path / "nodes.yaml"
    path.write_text("version: 1\nnodes:\n"
                    "  - {name: desk, url: 'http://127.0.0.1:7860', tier: 1}\n"
                    "  - {name: lab, url: 'http://127.0.0.1:7861', tier: 2}\n"
                    "  - {name: big, url: 'http://127.0.0.1:7862', tier: 7}\n"
                    "  - {name: new, url: 'http://127.0.0.1:7863'}\n", encoding="utf-8")
    registry = NodeRegistry.load(path)
    assert registry.error is None
    assert {n.name: n.tier for n in registry} == {"desk": S, "lab": Q, "big": P, "new": S}
    registry.save()
    text = path.read_text(encoding="utf-8")
    assert "tier: quality" in text and "tier: 2" not in text
    assert {n.name: n.tier for n in NodeRegistry.load(path)} == {"desk": S, "lab": Q, "big": P,
                                                                 "new": S}


def test_a_tier_that_means_nothing_leaves_the_file_untouched_with_the_reason(tmp_path):
    path = tmp_path / "nodes.yaml"
    original = "nodes:\n  - {name: desk, url: 'http://127.0.0.1:7860', tier: turbo}\n"
    path.write_text(original, encoding="utf-8")
    registry = NodeRegistry.load(path)
    assert registry.error is not None and "tier" in str(registry.error).lower()
    assert path.read_text(encoding="utf-8") == original


def view(name: str, tier: NodeTier, *, speed: float = 1.0, healthy: bool = True,
         busy_for: float = 0.0) -> NodeView:
    caps = Capabilities(kind=BackendKind.a1111, vram_total=12 * GB)
    return NodeView(name, caps, tier=tier, healthy=healthy, busy_for=busy_for,
                    running=1 if busy_for else 0, speeds={c: speed for c in ("small", "medium", "large")})


def work(tier: NodeTier | None, count: int = 1):
    req = requirements_for(PipelineConfig().with_changes({"txt2img.steps": 10}))
    from dataclasses import replace
    return [replace(req, tier=tier) for _ in range(count)]


def lab() -> list[NodeView]:
    return [view("premium-card", P), view("quality-card", Q), view("draft-card", D),
            view("everyday", S)]


@pytest.mark.parametrize(("asked", "expected"), [
    (D, "draft-card"), (S, "everyday"), (Q, "quality-card"), (P, "premium-card"),
    (None, "everyday")])
def test_work_goes_to_the_tier_it_asks_for(asked, expected):
    plan = plan_earliest_finish(work(asked), lab())
    assert [a.node for a in plan.assignments] == [expected]


def test_a_tier_that_is_down_overflows_to_the_next_one_up():
    nodes = lab()
    nodes[1].healthy = False  # the quality card is down
    assert plan_earliest_finish(work(Q), nodes).assignments[0].node == "premium-card"
    nodes[0].healthy = False  # and the premium card: any node that can take it
    assert plan_earliest_finish(work(Q), nodes).assignments[0].node == "everyday"


def test_a_busy_tier_overflows_but_a_short_wait_is_taken():
    took = plan_earliest_finish(work(D), [view("x", D)]).assignments[0].finish
    briefly = [view("draft-card", D, busy_for=0.3 * took), view("spare", S)]
    assert plan_earliest_finish(work(D), briefly).assignments[0].node == "draft-card"
    long = [view("draft-card", D, busy_for=3 * took), view("spare", S)]
    assert plan_earliest_finish(work(D), long).assignments[0].node == "spare"
    many = plan_earliest_finish(work(D, 20), [view("draft-card", D), view("spare", S)])
    per = {n: len(many.for_node(n)) for n in ("draft-card", "spare")}
    assert per["draft-card"] > per["spare"] > 0, per


def test_a_single_node_takes_every_tier():
    only = [view("only", S)]
    for asked in (D, Q, P, None):
        assert plan_earliest_finish(work(asked), only).assignments[0].node == "only"


def test_node_config_keeps_the_name():
    node = NodeConfig(name="n", url="http://x:1", tier="quality")
    assert node.tier is Q and node.model_dump(mode="json")["tier"] == "quality"
