"""The draft funnel's rules: stage configs (same seed and prompt, each stage from the picked
picture before), job making, picks, the breadcrumb, and its file."""

from __future__ import annotations

import json

import pytest

from stablenew.cluster.funnel import (
    FunnelError,
    FunnelSettings,
    FunnelStage,
    draft_size,
    next_step,
    picked_images,
    stage_config,
    start,
)
from stablenew.cluster.funnel_store import FUNNEL_VERSION, PAST_FUNNELS, FunnelFile, FunnelStore
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


def go_on(funnel):
    """The next step, each pick starting from its own picture (its path, as in the pure rules)."""
    return next_step(funnel, picked_images(funnel))


def test_every_stage_after_the_drafts_starts_from_the_picked_picture_with_its_seed():
    settings = FunnelSettings()
    base = cards(**{"adetailer.enabled": True, "upscale.upscaler": "4x-UltraSharp",
                    "img2img.prompt_override": "something else"})
    configs = {stage: stage_config(base, stage, 4242, settings, f"/keep/{stage.value}.png")
               for stage in FunnelStage}
    assert configs[FunnelStage.drafts].enabled_stages() == ("txt2img",)
    for stage in (FunnelStage.refine, FunnelStage.polish, FunnelStage.final):
        config = configs[stage]
        assert not config.txt2img.enabled, "nothing is rendered again from the seed"
        assert config.img2img.init_image == f"/keep/{stage.value}.png"
        assert config.txt2img.seed == 4242 and config.txt2img.prompt == base.txt2img.prompt
        assert config.img2img.prompt_override == ""
    refine = configs[FunnelStage.refine]
    assert refine.enabled_stages() == ("img2img",)
    i = refine.img2img
    assert (i.width, i.height, i.steps, i.denoise) == (768, 512, 30, 0.45), \
        "redrawn at the cards' size with the cards' steps and the refine denoise"
    assert i.resize_mode == "latent_upscale"
    polish = configs[FunnelStage.polish]
    assert polish.enabled_stages() == ("img2img", "adetailer")
    assert (polish.img2img.width, polish.img2img.denoise) == (0, 0.3), "at the refined size"
    final = configs[FunnelStage.final]
    assert final.enabled_stages() == ("upscale",), "an upscale only"
    assert final.upscale.upscaler == "4x-UltraSharp" and final.upscale.scale == 2.0
    with pytest.raises(FunnelError, match="picked images of the stage before"):
        stage_config(base, FunnelStage.refine, 4242, settings)


def test_the_presets_are_plain_data_the_user_can_change():
    settings = FunnelSettings.model_validate({"counts": {"drafts": 6, "refine": 2},
                                              "draft": {"steps": 6, "size": 1.0},
                                              "quality": {"steps": 40}})
    funnel, step = start(cards(), settings)
    assert len(step.configs) == 6 and step.configs[0].txt2img.steps == 6
    assert (step.configs[0].txt2img.width, step.configs[0].txt2img.height) == (768, 512)
    refine = stage_config(cards(), FunnelStage.refine, 1, settings, "/keep/a.png")
    assert (refine.img2img.steps, refine.img2img.width) == (40, 768)
    with pytest.raises(ValueError):
        FunnelSettings.model_validate({"draft": {"size": 0.1}})


def test_small_cards_keep_drafts_at_least_64_pixels():
    assert draft_size(64, 96, 0.5) == (64, 64)
    assert draft_size(1024, 1024, 0.3) == (304, 304)


def test_picks_go_on_with_their_seeds_to_the_next_tier_and_are_limited_by_the_stage_count():
    funnel, step = start(cards(), FunnelSettings())
    funnel = made(funnel)
    with pytest.raises(FunnelError, match="Pick at least one image to refine"):
        go_on(funnel)
    with pytest.raises(FunnelError, match="at most 8"):
        go_on(funnel.pick(0, range(9)))
    funnel = funnel.pick(0, [5, 2, 5, 11])
    assert funnel.runs[0].picks == [2, 5, 11]
    refine = go_on(funnel)
    assert refine.stage is FunnelStage.refine and refine.tier is NodeTier.quality
    assert refine.seeds == [step.seeds[2], step.seeds[5], step.seeds[11]]
    drafts = funnel.runs[0].images
    assert [c.img2img.init_image for c in refine.configs] == [drafts[2], drafts[5], drafts[11]]
    funnel = made(funnel.advanced(refine.run()))
    assert [r.stage for r in funnel.runs] == ["drafts", "refine"] and funnel.viewing == 1
    assert funnel.runs[1].sources == [drafts[2], drafts[5], drafts[11]], "kept for a restart"
    polish = go_on(funnel.pick(1, [0, 2]))
    assert polish.tier is NodeTier.quality and polish.seeds == [step.seeds[2], step.seeds[11]]
    assert list(polish.sources) == [funnel.runs[1].images[0], funnel.runs[1].images[2]]
    funnel = made(funnel.pick(1, [0, 2]).advanced(polish.run()))
    with pytest.raises(FunnelError, match="at most 1"):
        go_on(funnel.pick(2, [0, 1]))
    final = go_on(funnel.pick(2, [1]))
    assert final.tier is NodeTier.premium and final.seeds == [step.seeds[11]]
    assert final.configs[0].img2img.init_image == funnel.runs[2].images[1]
    funnel = made(funnel.pick(2, [1]).advanced(final.run()))
    with pytest.raises(FunnelError, match="final image"):
        go_on(funnel.pick(3, [0]))


def test_an_unmade_pick_waits():
    funnel, _ = start(cards(), FunnelSettings())
    with pytest.raises(FunnelError, match="not made yet"):
        go_on(funnel.pick(0, [0]))


def test_going_back_keeps_the_picks_and_a_new_choice_replaces_the_later_stages():
    funnel, _ = start(cards(), FunnelSettings())
    funnel = made(funnel).pick(0, [1, 3])
    funnel = made(funnel.advanced(go_on(funnel).run())).pick(1, [0])
    back = funnel.view(0)
    assert back.viewing == 0 and back.runs[0].picks == [1, 3] and len(back.runs) == 2
    assert back.view(1).runs[1].picks == [0], "going forward again finds the picks"
    changed = back.pick(0, [4])
    again = changed.advanced(go_on(changed).run())
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


def test_a_new_funnel_keeps_the_one_it_replaces_to_reopen(tmp_path):
    first, _ = start(cards(), FunnelSettings())
    first = made(first).pick(0, [1, 2])
    second, _ = start(cards(**{"txt2img.prompt": "an owl"}), FunnelSettings())
    data = FunnelFile(funnel=first).started(second)
    assert data.funnel == second and data.past == [first]
    back = data.reopened(first.id)
    assert back.funnel == first and back.past == [second], "the one left goes first"
    with pytest.raises(KeyError):
        back.reopened("no such funnel")
    # Only so many are kept: the oldest leave the list.
    many = FunnelFile()
    for n in range(PAST_FUNNELS + 3):
        many = many.started(start(cards(**{"txt2img.seed": n}), FunnelSettings())[0])
    assert len(many.past) == PAST_FUNNELS
    assert many.past[0].runs[0].seeds[0] == PAST_FUNNELS + 1  # the newest put aside first

    store = FunnelStore(tmp_path / "funnel.json")
    store.save(back)
    assert FunnelStore(tmp_path / "funnel.json").load() == back


def test_a_file_of_the_first_version_reads_with_no_earlier_funnels(tmp_path):
    funnel, _ = start(cards(), FunnelSettings())
    path = tmp_path / "funnel.json"
    path.write_text(json.dumps({"version": 1, "funnel": json.loads(funnel.model_dump_json())}))
    loaded = FunnelStore(path).load()
    assert loaded.funnel == funnel and loaded.past == [] and loaded.version == FUNNEL_VERSION
