"""Combos: each LoRA resolved against a real scanned catalog, filtered, made a config."""

from __future__ import annotations

import random

import pytest

from stablenew.catalog.entry import BaseModel, ModelKind
from stablenew.catalog.hashes import hash_entries
from stablenew.catalog.index import scan
from stablenew.community.combos import (
    ComboFilter,
    LoraState,
    VersionInfo,
    batch_items,
    combo_changes,
    combo_config,
    filter_combos,
    pick,
    resolve,
    split_sampler,
)
from stablenew.community.meta import parse_items
from stablenew.pipeline.config import PipelineConfig
from tests.catalog.factory import SD1_KEYS, SDXL_KEYS, write_json, write_model
from tests.fakes.civitai import FakeCivitai, item, wild_items


@pytest.fixture
def catalog(tmp_path):
    loras = tmp_path / "Lora"
    # Named differently from the community's "neon": found by its hash, not its name.
    write_model(loras / "NeonGlow_v2.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS,
                tensor_bytes=64, fill=b"\x05")
    write_model(loras / "add_detail.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS,
                tensor_bytes=64, fill=b"\x06")
    write_model(loras / "xl_only.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"}, SDXL_KEYS)
    write_json(loras / "xl_only.json", {"sd version": "SDXL"})
    found = scan([(loras, ModelKind.lora)])
    hash_entries(found.entries, None)
    return found


def _combos(catalog, node=""):
    fake = FakeCivitai()
    fake.url = "http://127.0.0.1:9"
    neon = catalog.find("NeonGlow_v2").autov3
    # The community's add_detail hash is not ours: found by its name instead.
    images, _ = parse_items(wild_items(fake, neon_hash=neon, detail_hash="ffffffffffff"))
    return {c.image.id: c for c in resolve(images, catalog, node=node)}


def test_a_lora_is_found_by_its_hash_then_by_its_name(catalog):
    combos = _combos(catalog)
    neon = combos[101].loras[0]
    assert (neon.entry.name, neon.matched_by, neon.state) == ("NeonGlow_v2", "its hash", LoraState.here)
    detail = combos[103].loras[0]
    assert (detail.entry.name, detail.matched_by) == ("add_detail", "its name")
    assert combos[101].runnable and combos[103].runnable
    missing = combos[108].loras[0]
    assert missing.state is LoraState.missing and missing.name == "xl_magic"
    assert not combos[108].runnable and not combos[109].runnable  # no LoRA: nothing to run


def test_where_a_lora_is_follows_the_nodes_that_list_it(catalog):
    catalog.mark_available("desk", ["add_detail"])
    catalog.mark_available("attic", ["NeonGlow_v2", "add_detail"])
    combos = _combos(catalog, node="desk")
    neon = combos[101].loras[0]
    assert neon.state is LoraState.elsewhere and neon.nodes == ("attic",)
    assert combos[103].loras[0].state is LoraState.here
    assert not combos[101].runnable and combos[103].runnable


def test_a_looked_up_version_resolves_a_civitai_resource(catalog):
    neon = catalog.find("NeonGlow_v2")
    info = VersionInfo(555001, 42, "Neon Glow", type="LORA", sha256=neon.sha256, file_name="neon.safetensors")
    combos = {c.image.id: c for c in resolve(
        [c.image for c in _combos(catalog).values()], catalog, infos={"v:555001": info})}
    lora = combos[102].loras[0]
    assert (lora.entry.name, lora.matched_by, lora.weight) == ("NeonGlow_v2", "its hash", 0.8)


def test_the_default_filter_keeps_runnable_safe_combos_and_says_why_others_went(catalog):
    combos = _combos(catalog)
    combos[107] = resolve([combos[107].image], catalog)[0]
    result = filter_combos(combos.values(), ComboFilter(checkpoint=BaseModel.sd1))
    assert [c.image.id for c in result.kept] == [101, 103, 106]
    reasons = {c.image.id: why for c, why in result.dropped}
    assert reasons[105] == "neon is not here"  # a name only, and ours is called NeonGlow_v2
    assert reasons[102] == "model version 555001 is not here"
    assert reasons[104] == reasons[109] == "it names no LoRA"
    assert reasons[107] == "its rating is R"
    assert reasons[108] == "it was made for SDXL, your model is SD1"
    wider = filter_combos(combos.values(), ComboFilter(runnable_only=False, browsing_level=1 | 2 | 4))
    assert {c.image.id for c in wider.kept} == {101, 102, 103, 105, 106, 107, 108}


def test_nsfw_loras_are_left_out_apart_from_the_image_rating(catalog):
    catalog.find("add_detail").nsfw = True
    combos = _combos(catalog)
    result = filter_combos([combos[103]], ComboFilter())
    assert result.dropped[0][1] == "add_detail is marked NSFW"
    assert filter_combos([combos[103]], ComboFilter(allow_nsfw_loras=True)).kept


def test_a_combo_fills_prompt_negative_and_local_loras_with_the_images_weights(catalog):
    combo = _combos(catalog)[101]
    base = PipelineConfig().with_changes({"txt2img.steps": 12, "txt2img.checkpoint": "mine"})
    config = combo_config(combo, base)
    assert config.txt2img.prompt == "a neon city at night, masterpiece, <lora:NeonGlow_v2:0.7>"
    assert config.txt2img.negative_prompt == "blurry"
    assert (config.txt2img.steps, config.txt2img.checkpoint) == (12, "mine")  # settings stay yours
    full = combo_config(combo, base, settings=True)
    t2i = full.txt2img
    assert (t2i.sampler, t2i.scheduler, t2i.steps, t2i.cfg_scale, t2i.clip_skip) == (
        "DPM++ 2M", "Karras", 28, 6.5, 2)
    assert (t2i.width, t2i.height, t2i.checkpoint) == (512, 768, "mine")


def test_settings_out_of_range_are_skipped_with_a_reason(catalog):
    fake = FakeCivitai()
    images, _ = parse_items([item(1, fake, meta={"prompt": "x <lora:add_detail:1>", "steps": 900,
                                                 "cfgScale": 0.2, "Size": "1023x1030"})])
    combo = resolve(images, catalog)[0]
    changes, skipped = combo_changes(combo, settings=True)
    assert "txt2img.steps" not in changes and "txt2img.cfg_scale" not in changes
    assert skipped == ["its steps (900) is outside 1–150, so yours is kept",
                       "its CFG scale (0.2) is outside 1–30, so yours is kept"]
    assert (changes["txt2img.width"], changes["txt2img.height"]) == (1024, 1032)
    PipelineConfig().with_changes(changes)  # valid as it stands


def test_sampler_names_split_their_schedule():
    assert split_sampler("DPM++ 2M Karras") == ("DPM++ 2M", "Karras")
    assert split_sampler("DPM++ SDE SGM Uniform") == ("DPM++ SDE", "SGM Uniform")
    assert split_sampler("Euler a") == ("Euler a", "Automatic")


def test_reroll_avoids_the_current_one_and_can_follow_engagement(catalog):
    pool = [c for c in _combos(catalog).values() if c.runnable]
    rng = random.Random(5)
    assert all(pick(pool, rng, avoid=101).image.id != 101 for _ in range(50))
    draws = [pick(pool, rng, by_engagement=True).image.id for _ in range(2000)]
    assert draws.count(101) > draws.count(106) * 1.5  # 98 reactions and comments against 43
    assert pick([], rng) is None


def test_a_batch_tags_each_image_with_its_source(catalog):
    combos = _combos(catalog)
    items = batch_items([combos[101], combos[103]], PipelineConfig())
    assert [(i.variant_id, i.label) for i in items] == [("civitai:101", "CivitAI image 101"),
                                                        ("civitai:103", "CivitAI image 103")]
    assert items[1].config.txt2img.prompt == "portrait, <lora:add_detail:0.5>"


def test_favourites_become_a_prompt_pack_once_each(catalog, tmp_path):
    from stablenew.community.favourites import save_favourite
    from stablenew.randomizer.packs import load_pack

    combos = _combos(catalog)
    path, added = save_favourite(combos[101], tmp_path / "packs")
    assert added and save_favourite(combos[103], tmp_path / "packs") == (path, True)
    assert save_favourite(combos[101], tmp_path / "packs") == (path, False)
    pack, _ = load_pack(path)
    assert pack.name == "Trending favourites"
    assert pack.resolved() == [("a neon city at night, masterpiece, <lora:NeonGlow_v2:0.7>", "blurry"),
                               ("portrait, <lora:add_detail:0.5>", "")]
