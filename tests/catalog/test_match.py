"""Matching prompts to LoRAs, the seeded selector, and inserting a LoRA into a prompt."""

from __future__ import annotations

import pytest

from stablenew.catalog.entry import BaseModel, ModelEntry, ModelKind
from stablenew.catalog.index import Catalog
from stablenew.catalog.match import Matcher, prompt_phrases
from stablenew.catalog.prompt import insert_lora, lora_hashes, lora_token
from stablenew.catalog.select import SelectorSettings, choose_loras


def lora(name: str, *, base: BaseModel = BaseModel.sdxl, triggers=(), tags=(), category="",
         description="", weight=None, display="") -> ModelEntry:
    return ModelEntry(ModelKind.lora, f"/l/{name}.safetensors", name, name, display or name, base,
                      triggers=list(triggers), tags=list(tags), category=category,
                      description=description, weight=weight)


@pytest.fixture
def catalog() -> Catalog:
    return Catalog([
        lora("cine_look", tags=["cinematic", "film grain"], category="style"),
        lora("neon", triggers=["neonstyle"], tags=["neon lights", "city"], category="style", weight=0.6),
        lora("mira", triggers=["mira girl", "red scarf"], category="character",
             description="A girl with a red scarf"),
        lora("sd1_cinema", base=BaseModel.sd1, tags=["cinematic"], category="style"),
        lora("pony_cine", base=BaseModel.pony, tags=["cinematic"], category="style"),
        lora("any_cine", base=BaseModel.unknown, tags=["cinematic"], category="concept"),
        lora("add_detail", tags=["detailed"], category="detail", weight=0.5),
        lora("flux_cine", base=BaseModel.flux, tags=["cinematic"]),
    ])


def test_prompt_phrases_drop_syntax_and_keep_word_runs():
    found = prompt_phrases("(Cinematic:1.2) shot, <lora:neon:0.5> NEON lights_at night")
    assert {"cinematic", "shot", "neon lights", "neon lights at night"} <= found
    assert "neon" in found and "0.5" not in found and "1.2" not in found


def test_match_scores_with_reasons_and_only_compatible_loras(catalog):
    matches = Matcher(catalog.entries).match("a cinematic photo of mira girl in neon lights",
                                             checkpoint=BaseModel.sdxl)
    names = [m.entry.name for m in matches]
    assert names[0] == "mira"  # trigger (5) + name (2)
    assert set(names) == {"mira", "neon", "cine_look", "pony_cine", "any_cine"}
    by_name = {m.entry.name: m for m in matches}
    assert by_name["cine_look"].reasons == ["'cinematic' is one of its tags"]
    assert by_name["mira"].reasons == ["'mira girl' is one of its trigger words", "'mira' is in its name",
                                       "'girl' is in its description"]
    assert by_name["neon"].reasons == ["'neon lights' is one of its tags", "'neon' is in its name"]
    sd1 = Matcher(catalog.entries).match("cinematic", checkpoint=BaseModel.sd1)
    assert {m.entry.name for m in sd1} == {"sd1_cinema", "any_cine"}


def test_match_leaves_out_loras_the_node_lacks(catalog):
    catalog.mark_available("gpu1", ["cine_look.safetensors", "pony_cine"])
    matcher = Matcher(catalog.entries)
    got = matcher.match("cinematic", checkpoint=BaseModel.sdxl, catalog=catalog, node="gpu1")
    assert {m.entry.name for m in got} == {"cine_look", "pony_cine"}
    # A node we have not heard from hides nothing.
    got = matcher.match("cinematic", checkpoint=BaseModel.sdxl, catalog=catalog, node="gpu9")
    assert len(got) == 3


def test_selector_is_deterministic_for_a_seed_and_spreads_over_categories(catalog):
    matcher = Matcher(catalog.entries)
    prompt = "cinematic mira girl, neon lights, detailed"
    settings = SelectorSettings(min_count=3, max_count=3)
    picks = {seed: [c.entry.name for c in choose_loras(
                 prompt, seed, matcher, catalog, settings=settings, checkpoint=BaseModel.sdxl).loras]
             for seed in range(30)}
    for seed, names in picks.items():
        again = choose_loras(prompt, seed, matcher, catalog, settings=settings, checkpoint=BaseModel.sdxl)
        assert [c.entry.name for c in again.loras] == names
        assert len(names) == 3
        categories = [catalog.find(n).category for n in names]
        assert len(set(categories)) == 3  # four categories match: three picks take three of them
    assert len({tuple(v) for v in picks.values()}) > 1  # seeds do differ


def test_selector_adds_the_detailer_and_falls_back(catalog):
    matcher = Matcher(catalog.entries)
    settings = SelectorSettings(min_count=1, max_count=1, detailer="add_detail",
                                fallbacks=("neon", "sd1_cinema"))
    sel = choose_loras("a quiet lake", 7, matcher, catalog, settings=settings, checkpoint=BaseModel.sdxl)
    assert [c.entry.name for c in sel.loras] == ["neon", "add_detail"]
    assert sel.loras[0].reason == "a fallback: nothing matched the prompt"
    assert sel.loras[0].weight == 0.6 and sel.loras[0].triggers == ("neonstyle",)
    assert sel.apply("a quiet lake") == ("a quiet lake, neonstyle, <lora:neon:0.6>, "
                                         "<lora:add_detail:0.5>")
    nothing = choose_loras("a quiet lake", 7, matcher, catalog, settings=SelectorSettings(),
                           checkpoint=BaseModel.sdxl)
    assert nothing.loras == []


def test_selector_settings_refuse_impossible_counts():
    with pytest.raises(ValueError, match="between 1 and 6"):
        SelectorSettings(min_count=2, max_count=7)


def test_insert_adds_token_and_ticked_triggers_once(catalog):
    mira = catalog.find("mira")
    assert lora_token(mira) == "<lora:mira:1>"
    assert insert_lora("portrait, ", mira) == "portrait, mira girl, <lora:mira:1>"
    assert insert_lora("", mira, 0.7, ["red scarf", "mira girl"]) == "red scarf, mira girl, <lora:mira:0.7>"
    again = insert_lora("mira girl, <lora:mira:1>, smiling", mira, 0.4)
    assert again == "mira girl, <lora:mira:0.4>, smiling"


def test_lora_hashes_text_is_a1111s(catalog):
    catalog.find("neon").lora_hash = "abcdef1234567890" + "0" * 48
    text = lora_hashes("city, <lora:neon:0.6>, <lora:mira:1>, <lora:unknown:1>", catalog)
    assert text == "neon: abcdef123456"


def test_the_loras_tags_are_counted_once_most_common_first_and_again_when_entries_come():
    catalog = Catalog([lora("a", tags=["Neon", "city ", "neon"]), lora("b", tags=["city", "rain"]),
                       lora("c", tags=["city"])])
    ranked = catalog.common_tags()
    assert ranked == ["city", "neon", "rain"]  # city in 3 LoRAs; neon once per LoRA; ties a-z
    assert catalog.common_tags() is ranked  # kept: the Models panel asks at every change
    catalog.extend([lora("d", tags=["rain"]), lora("e", tags=["rain", "Rain"])])
    assert catalog.common_tags() == ["city", "rain", "neon"]
