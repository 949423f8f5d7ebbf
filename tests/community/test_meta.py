"""Reading the `meta` variants of `/api/v1/images` items: never a crash, skipped with a reason."""

from __future__ import annotations

from stablenew.community.meta import LoraRef, parse_item, parse_items
from tests.fakes.civitai import FakeCivitai, item, wild_items

NEON, DETAIL = "0123456789ab", "ba9876543210"


def _wild() -> dict[int, dict]:
    fake = FakeCivitai()
    fake.url = "http://127.0.0.1:9"
    return {i["id"]: i for i in wild_items(fake, neon_hash=NEON, detail_hash=DETAIL)}


def test_an_a1111_image_gives_its_settings_and_one_lora_from_three_places():
    image, _ = parse_item(_wild()[101])
    assert image is not None
    assert (image.prompt, image.negative, image.seed, image.steps) == (
        "a neon city at night, <lora:neon:0.7>, masterpiece", "blurry", 1234, 28)
    assert (image.sampler, image.cfg_scale, image.clip_skip, image.size) == (
        "DPM++ 2M Karras", 6.5, 2, (512, 768))
    assert (image.checkpoint, image.checkpoint_hash) == ("dreamshaper_8", "879db523c3")
    assert image.loras == (LoraRef("neon", 0.7, NEON, None, "resources"),)
    assert image.stats.reactions == 93 and image.stats.comments == 5
    assert image.notes == ()


def test_civitai_resources_only_give_version_ids_and_weights():
    image, _ = parse_item(_wild()[102])
    assert image.loras == (LoraRef("", 0.8, "", 555001, "civitaiResources"),)
    assert image.loras[0].label == "model version 555001"
    assert image.other_versions == (128713,)  # the checkpoint: only a look-up tells


def test_hashes_only_take_the_weight_from_the_prompt():
    image, _ = parse_item(_wild()[103])
    assert image.loras == (LoraRef("add_detail", 0.5, DETAIL, None, "hashes"),)


def test_null_meta_is_an_image_without_settings_and_says_why():
    image, _ = parse_item(_wild()[104])
    assert image is not None and not image.has_meta and image.loras == ()
    assert "meta is null" in image.notes[0]


def test_wrong_types_are_skipped_each_with_a_reason():
    image, _ = parse_item(_wild()[105])
    assert image.steps is None and image.cfg_scale == 7.5 and image.seed == 4242
    assert image.negative == ""
    assert image.loras == (LoraRef("neon", 0.9, "", None, "prompt"),)
    notes = " | ".join(image.notes)
    for words in ("meta.steps is 'twenty'", "meta.resources is a str", "meta.hashes is a list",
                  "meta.Size is 512", "meta.negativePrompt is a int"):
        assert words in notes


def test_one_lora_named_four_ways_is_one_lora():
    image, _ = parse_item(_wild()[106])
    assert image.loras == (LoraRef("neon", 0.6, NEON, None, "resources"),)


def test_additional_resources_with_an_air_urn_give_the_version():
    fake = FakeCivitai()
    raw = item(1, fake, meta={"prompt": "x", "additionalResources": [
        {"name": "urn:air:sdxl:lora:civitai:12@345", "type": "lora", "strength": 0.4, "strengthClip": 1},
        {"name": "an embedding", "type": "embed", "strength": 1}]})
    image, _ = parse_item(raw)
    assert image.loras == (LoraRef("", 0.4, "", 345, "additionalResources"),)


def test_items_that_are_not_images_are_skipped_and_duplicates_kept_once():
    wild = _wild()
    images, skipped = parse_items([wild[101], "junk", {"no": "id"}, wild[101], None])
    assert [i.id for i in images] == [101]
    assert skipped == ["item 2: not an object (str)", "item 3: it has no id",
                       "image 101: listed twice, kept once", "item 5: not an object (NoneType)"]
    assert parse_items({"items": []}) == ([], ["the image list is a dict, not a list"])


def test_the_rating_is_read_from_any_of_its_spellings():
    fake = FakeCivitai()
    raw = item(1, fake, meta=None)
    for fields, level in (({"browsingLevel": 4}, 4), ({"nsfwLevel": "Mature"}, 4),
                          ({"nsfwLevel": "None"}, 1), ({"nsfw": True}, 8), ({}, 0)):
        for key in ("browsingLevel", "nsfwLevel", "nsfw"):
            raw.pop(key, None)
        raw.update(fields)
        assert parse_item(raw)[0].level == level, fields


def test_the_infotext_lora_hashes_line_gives_hashes_and_the_prompt_the_weights():
    fake = FakeCivitai()
    raw = item(1, fake, meta={"prompt": "city, <lora:neon:0.7>, <lora:add_detail:0.4>",
                              "Lora hashes": '"neon: 0123456789ab, add_detail: ba9876543210"'})
    image, _ = parse_item(raw)
    assert image.loras == (LoraRef("neon", 0.7, NEON, None, "Lora hashes"),
                           LoraRef("add_detail", 0.4, DETAIL, None, "Lora hashes"))
    raw["meta"]["Lora hashes"] = 12
    assert "meta.Lora hashes is a int, not text: skipped" in parse_item(raw)[0].notes
