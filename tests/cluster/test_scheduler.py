"""Scheduler policy: eligibility with reasons, earliest finish, tiers, baselines, lower bound."""

from __future__ import annotations

import random

import pytest

from stablenew.backends.types import BackendKind, Capabilities
from stablenew.cluster.scheduler import (
    NodeView,
    ineligibility,
    makespan_lower_bound,
    plan_earliest_finish,
    plan_least_used,
    plan_round_robin,
    why_nobody,
)
from stablenew.cluster.work import GB, ModelFamily, guess_family, model_key, requirements_for
from stablenew.pipeline.config import PipelineConfig

SD15 = ("dreamshaper_8.safetensors", "v1-5-pruned-emaonly.safetensors [6ce0161689]")
XL = ("sd_xl_base_1.0.safetensors", "juggernautXL_v9.safetensors")


def caps(vram_gb, checkpoints, upscalers=("R-ESRGAN 4x+",), ad=("face_yolov8n.pt",)):
    return Capabilities(kind=BackendKind.a1111, vram_total=int(vram_gb * GB), checkpoints=checkpoints,
                        upscalers=(*upscalers, "Latent", "None"), adetailer_models=ad)


def node(name, vram, checkpoints, speed, **kw):
    cap_kw = {k: v for k, v in kw.items() if k in ("upscalers", "ad")}
    view_kw = {k: v for k, v in kw.items() if k not in cap_kw}
    return NodeView(name, caps(vram, checkpoints, **cap_kw),
                    speeds={c: speed for c in ("small", "medium", "large")}, **view_kw)


def lab():
    return [
        node("big", 16, SD15 + XL, 5.0),
        node("mid", 12, SD15 + XL, 3.5),
        node("small", 8, SD15 + XL[:1], 2.5, ad=()),
        node("laptop", 4, SD15, 1.25, upscalers=()),
    ]


def req(**t2i):
    extra = {k: t2i.pop(k) for k in list(t2i) if k in ("upscale", "adetailer")}
    return requirements_for(PipelineConfig.model_validate({"txt2img": t2i, **extra}))


@pytest.mark.parametrize(("name", "family"), [
    ("v1-5-pruned.safetensors", ModelFamily.sd15),
    ("sd_xl_base_1.0.safetensors [31e35c80fc]", ModelFamily.sdxl),
    ("ponyDiffusionV6XL.safetensors", ModelFamily.sdxl), ("flux1-dev.safetensors", ModelFamily.flux),
    ("dreamshaper_8.safetensors", ModelFamily.sd15)])
def test_family_from_checkpoint_name(name, family):
    assert guess_family(name) is family


def test_model_names_compare_without_folder_extension_or_hash():
    assert model_key("SDXL\\sd_xl_base_1.0.safetensors [31e35c80fc]") == model_key("sd_xl_base_1.0")


def test_eligibility_names_what_is_missing():
    nodes = lab()
    xl_big = req(checkpoint=XL[1], width=1024, height=1024)
    assert ineligibility(xl_big, nodes[0]) is None
    assert "does not have the model 'juggernautXL_v9.safetensors'" in ineligibility(xl_big, nodes[2])
    sd_hires = req(checkpoint=SD15[0], width=512, height=512, hires={"enabled": True, "scale": 2})
    assert "too little VRAM (4 GB" in ineligibility(sd_hires, nodes[3])
    faces = req(checkpoint=SD15[0], adetailer={"enabled": True})
    assert "ADetailer model 'face_yolov8n.pt'" in ineligibility(faces, nodes[2])
    upscaled = req(checkpoint=SD15[0], upscale={"enabled": True})
    assert "upscaler 'R-ESRGAN 4x+'" in ineligibility(upscaled, nodes[3])


def test_a_switched_off_adetailer_pass_needs_no_detector_and_costs_nothing():
    nodes = lab()
    face = {"model": "face_yolov8n.pt"}
    hands_off = {"model": "hand_yolov8n.pt", "enabled": False}
    one = req(checkpoint=SD15[0], adetailer={"enabled": True, "passes": [face]})
    both = req(checkpoint=SD15[0], adetailer={"enabled": True, "passes": [face, hands_off]})
    assert both.adetailer_models == {"face_yolov8n.pt"}, "mid has no hand detector and may take it"
    assert ineligibility(both, nodes[1]) is None
    assert both.work_units == pytest.approx(one.work_units)
    all_off = req(checkpoint=SD15[0], adetailer={"enabled": True, "passes": [hands_off]})
    assert all_off.adetailer_models == frozenset() and ineligibility(all_off, nodes[2]) is None


def test_unhealthy_and_disabled_nodes_take_nothing():
    nodes = lab()
    nodes[0].healthy = False
    nodes[1].enabled = False
    r = req(checkpoint=SD15[0])
    assert "not answering" in ineligibility(r, nodes[0])
    assert "switched off" in ineligibility(r, nodes[1])


def test_item_no_node_can_take_fails_with_every_reason():
    r = req(checkpoint="flux1-dev.safetensors", width=1024, height=1024)
    plan = plan_earliest_finish([r], lab())
    assert plan.assignments == []
    assert "No node can run this" in plan.unassignable[0]
    assert "flux1-dev.safetensors" in plan.unassignable[0]
    assert "No nodes are set up" in why_nobody(r, [])


def test_vram_experience_overrides_the_table():
    laptop = lab()[3]
    sd_hires = req(checkpoint=SD15[0], hires={"enabled": True, "scale": 2})
    assert ineligibility(sd_hires, laptop) is not None
    laptop.vram.record_success(ModelFamily.sd15, sd_hires.vram_gb)  # it did run there (--medvram)
    assert ineligibility(sd_hires, laptop) is None
    big = lab()[0]
    plain = req(checkpoint=SD15[0])
    big.vram.record_oom(ModelFamily.sd15, plain.vram_gb - 0.1)  # ran out of memory below this need
    assert "too little VRAM" in ineligibility(plain, big)


def test_heavy_items_go_to_big_cards_and_small_ones_backfill():
    nodes = lab()
    heavy = [req(checkpoint=XL[0], width=1024, height=1024, steps=30) for _ in range(3)]
    light = [req(checkpoint=SD15[0], steps=20) for _ in range(12)]
    plan = plan_earliest_finish(heavy + light, nodes)
    heavy_nodes = {a.node for a in plan.assignments if a.item < 3}
    assert heavy_nodes <= {"big", "mid", "small"}
    assert plan.for_node("laptop"), "the laptop should backfill small work"
    assert all(a.item >= 3 for a in plan.for_node("laptop"))


def test_preferred_tier_is_used_until_it_overflows():
    a = node("desk", 12, SD15, 2.0, tier=1)
    b = node("lab", 12, SD15, 2.0, tier=2)
    one = plan_earliest_finish([req(checkpoint=SD15[0])], [b, a])
    assert one.assignments[0].node == "desk"
    many = plan_earliest_finish([req(checkpoint=SD15[0]) for _ in range(10)], [a, b])
    assert {x.node for x in many.assignments} == {"desk", "lab"}


def test_busy_nodes_are_planned_after_their_current_work():
    a = node("a", 12, SD15, 1.0, busy_for=100.0, running=1)
    b = node("b", 12, SD15, 1.0)
    plan = plan_earliest_finish([req(checkpoint=SD15[0])], [a, b])
    assert plan.assignments[0].node == "b"


def _mixed(n=200, seed=7):
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            items.append(req(checkpoint=rng.choice(SD15), steps=rng.choice([20, 25, 30])))
        elif r < 0.8:
            items.append(req(checkpoint=rng.choice(XL), width=1024, height=1024, steps=rng.choice([25, 30])))
        elif r < 0.9:
            items.append(req(checkpoint=SD15[0], hires={"enabled": True, "scale": 2},
                             upscale={"enabled": True}))
        else:
            items.append(req(checkpoint=XL[0], width=1024, height=1024, hires={"enabled": True, "scale": 1.5},
                             adetailer={"enabled": True}))
    return items


def test_plans_respect_eligibility_and_ours_beats_the_baselines():
    nodes, items = lab(), _mixed()
    bound = makespan_lower_bound(items, nodes)
    ours = plan_earliest_finish(items, nodes)
    for plan in (ours, plan_round_robin(items, nodes), plan_least_used(items, nodes)):
        assert not plan.unassignable
        assert sorted(a.item for a in plan.assignments) == list(range(len(items)))
        for a in plan.assignments:
            assert ineligibility(items[a.item], next(n for n in nodes if n.name == a.node)) is None
        assert plan.makespan >= bound * (1 - 1e-6)
    assert ours.makespan <= 1.10 * bound
    assert ours.makespan < plan_round_robin(items, nodes).makespan
    assert ours.makespan < plan_least_used(items, nodes).makespan


def test_lower_bound_is_tight_on_a_trivial_case():
    nodes = [node("a", 12, SD15, 1.0), node("b", 12, SD15, 1.0)]
    items = [req(checkpoint=SD15[0]) for _ in range(4)]
    bound = makespan_lower_bound(items, nodes)
    assert bound == pytest.approx(2 * items[0].work_units, rel=1e-6)
    assert plan_earliest_finish(items, nodes).makespan == pytest.approx(bound, rel=1e-6)


async def test_a_cpu_only_comfyui_is_flagged_and_planned_as_slow_until_measured(tmp_path):
    """Issue 17 item 6: "cpu, 24 GB" is system RAM, not a 24 GB card."""
    from stablenew.backends.comfyui import ComfyUIBackend
    from tests.fakes.comfyui import FakeComfyUI

    async with FakeComfyUI(device="cpu") as fake:
        backend = ComfyUIBackend(fake.url, workflows_dir=tmp_path / "wf")
        try:
            found = await backend.probe()
        finally:
            await backend.aclose()
    assert found.has_gpu is False and found.vram_total is None and found.device == "cpu"
    cpu = NodeView("cpu-box", found)
    gpu = NodeView("gpu-8gb", Capabilities(kind=BackendKind.comfyui, vram_total=8 * GB,
                                           checkpoints=found.checkpoints, has_gpu=True))
    req = requirements_for(PipelineConfig().with_changes({"txt2img.checkpoint": ""}))
    assert ineligibility(req, cpu) is None
    # Before any measurement it is expected far slower than even a small card.
    assert cpu.speed_for(req.size_class) < gpu.speed_for(req.size_class) / 10
    plan = plan_earliest_finish([req] * 8, [cpu, gpu])
    assert sum(1 for a in plan.assignments if a.node == "cpu-box") <= 1
    # Once measured, its real speed counts.
    cpu.learn_speed(req.size_class, units=1.0, seconds=1.0)
    assert cpu.speed_for(req.size_class) == 1.0
