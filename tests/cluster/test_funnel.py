"""The draft funnel's rules: stage configs (same seed, same first pass), job making, picks, the
breadcrumb, and its file."""

from __future__ import annotations

import json

import pytest

from stablenew.cluster.funnel import (
    FunnelError,
    FunnelSettings,
    FunnelStage,
    draft_size,
    next_step,
    stage_config,
    start,
)
from stablenew.cluster.funnel_store import FunnelFile, FunnelStore
from stablenew.cluster.tiers import NodeTier
from stablenew.pipeline.config import PipelineConfig


def cards(**changes) -> PipelineConfig:
    return PipelineConfig().with_changes({"txt2img.prompt": "a red lighthouse at dusk",
                                          "txt2img.width": 768, "txt2img.height": 512,
                                          "txt2img.steps": 30, "txt2img.seed": -1, **changes})


def made(funnel, index=None):
    """Every image of the stage looked at (or *index*) saved."""
    index = funnel.viewing if index is None else index
    run = funnel.runs[index]
    return funnel.with_images(index, [f"/out/{run.job_id}-{i}.png" for i in range(len(run.seeds))])


def test_drafts_are_quick_small_and_one_per_seed_on_draft_nodes():
    funnel, step = start(cards(**{"txt2img.hires.enabled": True, "adetailer.enabled": True,
                                  "upscale.enabled": True}), FunnelSettings())
    assert step.stage is FunnelStage.drafts and step.tier is NodeTier.draft
    assert len(step.configs) == 20 and len(set(step.seeds)) == 20
    first = step.configs[0]
    assert (first.txt2img.width, first.txt2img.height, first.txt2img.steps) == (384, 256, 12)
    assert first.enabled_stages() == ("txt2img",)
    assert first.txt2img.prompt == "a red lighthouse at dusk"
    assert funnel.runs[0].seeds == step.seeds and funnel.runs[0].job_id == step.job_id
    assert funnel.runs[0].images == [None] * 20


def test_a_fixed_seed_counts_up_as_a_batch_would():
    _, step = start(cards(**{"txt2img.seed": 100}), FunnelSettings())
    assert step.seeds == list(range(100, 120))


def test_every_stage_starts_from_the_drafts_first_pass_with_the_same_seed():
    settings = FunnelSettings()
    base = cards(**{"adetailer.enabled": True, "upscale.upscaler": "4x-UltraSharp"})
    configs = {stage: stage_config(base, stage, 4242, settings) for stage in FunnelStage}
    for config in configs.values():
        t = config.txt2img
        assert (t.seed, t.width, t.height, t.prompt) == (4242, 384, 256, base.txt2img.prompt)
    refine = configs[FunnelStage.refine]
    assert refine.txt2img.steps == 30 and refine.txt2img.hires.enabled
    assert refine.final_size(384, 256) == (768, 512), "refined back up to the cards' size"
    assert refine.enabled_stages() == ("txt2img",)
    polish = configs[FunnelStage.polish]
    assert polish.img2img.enabled and polish.img2img.denoise == 0.3 and polish.adetailer.enabled
    final = configs[FunnelStage.final]
    assert final.upscale.enabled and final.upscale.upscaler == "4x-UltraSharp"
    assert final.final_size(384, 256) == (1536, 1024)
    assert final.enabled_stages() == ("txt2img", "img2img", "adetailer", "upscale")


def test_the_presets_are_plain_data_the_user_can_change():
    settings = FunnelSettings.model_validate({"counts": {"drafts": 6, "refine": 2},
                                              "draft": {"steps": 6, "size": 1.0},
                                              "quality": {"steps": 40}})
    funnel, step = start(cards(), settings)
    assert len(step.configs) == 6 and step.configs[0].txt2img.steps == 6
    assert (step.configs[0].txt2img.width, step.configs[0].txt2img.height) == (768, 512)
    refine = stage_config(cards(), FunnelStage.refine, 1, settings)
    assert refine.txt2img.steps == 40 and not refine.txt2img.hires.enabled  # already full size
    with pytest.raises(ValueError):
        FunnelSettings.model_validate({"draft": {"size": 0.1}})


def test_small_cards_keep_drafts_at_least_64_pixels():
    assert draft_size(64, 96, 0.5) == (64, 64)
    assert draft_size(1024, 1024, 0.3) == (304, 304)


def test_picks_go_on_with_their_seeds_to_the_next_tier_and_are_limited_by_the_stage_count():
    funnel, step = start(cards(), FunnelSettings())
    funnel = made(funnel)
    with pytest.raises(FunnelError, match="Pick at least one image to refine"):
        next_step(funnel)
    with pytest.raises(FunnelError, match="at most 8"):
        next_step(funnel.pick(0, range(9)))
    funnel = funnel.pick(0, [5, 2, 5, 11])
    assert funnel.runs[0].picks == [2, 5, 11]
    refine = next_step(funnel)
    assert refine.stage is FunnelStage.refine and refine.tier is NodeTier.quality
    assert refine.seeds == [step.seeds[2], step.seeds[5], step.seeds[11]]
    funnel = made(funnel.advanced(refine.run()))
    assert [r.stage for r in funnel.runs] == ["drafts", "refine"] and funnel.viewing == 1
    polish = next_step(funnel.pick(1, [0, 2]))
    assert polish.tier is NodeTier.quality and polish.seeds == [step.seeds[2], step.seeds[11]]
    funnel = made(funnel.pick(1, [0, 2]).advanced(polish.run()))
    with pytest.raises(FunnelError, match="at most 1"):
        next_step(funnel.pick(2, [0, 1]))
    final = next_step(funnel.pick(2, [1]))
    assert final.tier is NodeTier.premium and final.seeds == [step.seeds[11]]
    funnel = made(funnel.pick(2, [1]).advanced(final.run()))
    with pytest.raises(FunnelError, match="final image"):
        next_step(funnel.pick(3, [0]))


def test_an_unmade_pick_waits():
    funnel, _ = start(cards(), FunnelSettings())
    with pytest.raises(FunnelError, match="not made yet"):
        next_step(funnel.pick(0, [0]))


def test_going_back_keeps_the_picks_and_a_new_choice_replaces_the_later_stages():
    funnel, _ = start(cards(), FunnelSettings())
    funnel = made(funnel).pick(0, [1, 3])
    funnel = made(funnel.advanced(next_step(funnel).run())).pick(1, [0])
    back = funnel.view(0)
    assert back.viewing == 0 and back.runs[0].picks == [1, 3] and len(back.runs) == 2
    assert back.view(1).runs[1].picks == [0], "going forward again finds the picks"
    changed = back.pick(0, [4])
    again = changed.advanced(next_step(changed).run())
    assert len(again.runs) == 2 and again.viewing == 1 and again.runs[1].picks == []
    assert again.runs[1].seeds == [funnel.runs[0].seeds[4]]
    with pytest.raises(FunnelError, match="not been made"):
        back.view(3)


def test_the_file_round_trips_and_a_broken_one_is_set_aside(tmp_path):
    store = FunnelStore(tmp_path / "funnel.json")
    assert store.load() == FunnelFile() and store.problem == ""
    funnel, _ = start(cards(), FunnelSettings())
    funnel = made(funnel).pick(0, [1, 2])
    store.save(FunnelFile(settings=FunnelSettings.model_validate({"counts": {"drafts": 4}}),
                          funnel=funnel))
    again = FunnelStore(tmp_path / "funnel.json").load()
    assert again.funnel == funnel and again.settings.counts.drafts == 4
    (tmp_path / "funnel.json").write_text('{"version": 1, "funnel": {"id": 3}}')
    broken = FunnelStore(tmp_path / "funnel.json")
    assert broken.load() == FunnelFile()
    assert "starts afresh" in broken.problem
    (aside,) = tmp_path.glob("funnel.json.bad-*")
    assert json.loads(aside.read_text())["funnel"] == {"id": 3}, "the user's file is kept"
