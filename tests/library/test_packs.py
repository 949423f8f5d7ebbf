"""Prompt packs: the three shapes, round-trips, migration, bad files and change detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stablenew.pipeline.config import PipelineConfig
from stablenew.randomizer.packs import (
    PackKind,
    PackLibrary,
    PackPrompt,
    PromptPack,
    load_pack,
    pack_configs,
    pack_plan_for,
    plan_pack,
    save_pack,
    validate_pack_path,
)
from stablenew.storage.documents import DocumentError
from tests.library.conftest import snapshot, write_bad_files

TEXT_PACK = """\
# Cats, one per line
negative: blurry, lowres
a {black|white} cat on a sofa
a cat in the rain
negative: umbrella
# a disabled prompt

  __cat_breed__ sleeping in the sun\t
"""


def test_text_pack_lines_comments_and_negatives(tmp_path: Path):
    file = tmp_path / "cats.txt"
    file.write_text(TEXT_PACK, encoding="utf-8")
    pack, wildcards = load_pack(file)
    assert pack.name == "cats" and wildcards is None
    assert pack.resolved() == [
        ("a {black|white} cat on a sofa", "blurry, lowres"),
        ("a cat in the rain", "umbrella"),
        ("__cat_breed__ sleeping in the sun", "blurry, lowres"),
    ]


def test_text_pack_errors_name_the_line(tmp_path: Path):
    file = tmp_path / "double.txt"
    file.write_text("a cat\nnegative: dog\nnegative: bird\n", encoding="utf-8")
    with pytest.raises(DocumentError) as err:
        load_pack(file)
    assert err.value.line == 3 and str(file) in str(err.value)
    empty = tmp_path / "empty.txt"
    empty.write_text("# only comments\n\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="no prompts"):
        load_pack(empty)


def test_yaml_and_text_round_trips(tmp_path: Path):
    pack = PromptPack(
        name="Cities", description="Night cities\nin the rain", tags=["city", "night"],
        negative="text", wildcards="wild", default_preset="SDXL quality",
        prompts=[PackPrompt(prompt="Tokyo at night, __weather__"),
                 PackPrompt(prompt="Paris {at dusk|at dawn}", negative="people")],
    )
    (tmp_path / "wild").mkdir()
    (tmp_path / "wild" / "weather.txt").write_text("rain\nsnow\n", encoding="utf-8")
    yaml_path = save_pack(pack, tmp_path / "cities.yaml")
    loaded, wildcards = validate_pack_path(yaml_path)
    assert loaded == pack and wildcards == tmp_path / "wild"
    assert "- Tokyo at night, __weather__" in yaml_path.read_text(encoding="utf-8")  # plain strings
    text_path = save_pack(pack, tmp_path / "cities.txt")
    as_text, _ = load_pack(text_path)
    assert as_text.resolved() == pack.resolved()
    again = save_pack(as_text, tmp_path / "cities-again.txt")
    assert load_pack(again)[0].resolved() == pack.resolved()


def test_folder_pack_combines_meta_and_text_files(tmp_path: Path):
    folder = tmp_path / "Portraits"
    (folder / "wildcards").mkdir(parents=True)
    (folder / "pack.yaml").write_text(
        "version: 1\nname: Portrait set\ntags: [people]\ndefault_preset: SDXL quality\n"
        "negative: deformed\nprompts:\n  - prompt: an old sailor\n    negative: hat\n", encoding="utf-8")
    (folder / "b.txt").write_text("negative: smile\na young painter\n", encoding="utf-8")
    (folder / "a.txt").write_text("a baker at dawn\n", encoding="utf-8")
    pack, wildcards = load_pack(folder)
    assert pack.name == "Portrait set" and pack.default_preset == "SDXL quality"
    assert wildcards == folder / "wildcards"
    assert pack.resolved() == [("an old sailor", "hat"), ("a baker at dawn", "deformed"),
                               ("a young painter", "smile")]
    # Without pack.yaml the folder's name is the pack's name.
    (folder / "pack.yaml").unlink()
    assert load_pack(folder)[0].name == "Portraits"
    # A broken file inside the folder is named in the error.
    (folder / "c.txt").write_bytes(b"\x00\x01binary")
    with pytest.raises(DocumentError) as err:
        load_pack(folder)
    assert err.value.path == folder / "c.txt"


def test_v0_pack_migrates(data_dir: Path):
    pack, _ = load_pack(data_dir / "pack-v0.yaml")
    assert pack.version == 1 and pack.name == "Old landscapes"
    assert pack.resolved() == [("a misty {forest|lake} at dawn", "people, text"),
                               ("a desert canyon at sunset", "people, text")]


def test_missing_wildcards_folder_is_a_clear_error(tmp_path: Path):
    file = tmp_path / "w.yaml"
    file.write_text("version: 1\nname: W\nwildcards: nowhere\nprompts: [a __x__]\n", encoding="utf-8")
    with pytest.raises(DocumentError) as err:
        validate_pack_path(file)
    assert err.value.field == "wildcards" and "does not exist" in err.value.reason


def test_bad_pack_files_are_listed_broken_and_untouched(tmp_path: Path):
    folder = tmp_path / "packs"
    files = write_bad_files(folder, wrong_types="version: 1\nname: W\nprompts:\n  - prompt: [1, 2]\n")
    (folder / "good.txt").write_text("a cat\n", encoding="utf-8")
    (folder / "notes.md").write_text("not a pack", encoding="utf-8")
    before = snapshot(list(files.values()))
    entries = {e.path.name: e for e in PackLibrary(folder).entries()}
    assert set(entries) == {p.name for p in files.values()} | {"good.txt"}
    assert not entries["good.txt"].broken
    for name, path in files.items():
        entry = entries[path.name]
        assert entry.broken and str(path) in str(entry.error), name
    wrong = entries["wrong-types.yaml"].error
    assert (wrong.line, wrong.field) == (4, "prompts.0.prompt")
    assert "billion laughs" in entries["bomb.yaml"].error.reason
    assert snapshot(list(files.values())) == before


def test_poll_notices_added_edited_and_removed_packs(tmp_path: Path):
    folder = tmp_path / "packs"
    folder.mkdir()
    library = PackLibrary(folder)
    assert library.poll() is False  # first look only records the state
    first = folder / "one.txt"
    first.write_text("a cat\n", encoding="utf-8")
    assert library.poll() is True
    assert library.poll() is False
    first.write_text("a cat\na dog\n", encoding="utf-8")
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10_000_000))
    assert library.poll() is True
    assert library.find("one").pack.resolved()[1] == ("a dog", "")
    sub = folder / "set"
    sub.mkdir()
    library.poll()
    (sub / "p.txt").write_text("inside a folder\n", encoding="utf-8")
    assert library.poll() is True
    first.unlink()
    assert library.poll() is True
    # A scan remembers the state it read, so a change right after it is still noticed.
    library.scan()
    (folder / "two.txt").write_text("a bird\n", encoding="utf-8")
    assert library.poll() is True
    assert [e.kind for e in library.entries()] == [PackKind.folder, PackKind.text]


def test_default_preset_override_leaves_the_pack_file_alone(tmp_path: Path):
    folder = tmp_path / "packs"
    folder.mkdir()
    file = folder / "p.yaml"
    file.write_text("# mine\nversion: 1\nname: P\ndefault_preset: SDXL quality\nprompts: [a]\n",
                    encoding="utf-8")
    before = snapshot([file])
    library = PackLibrary(folder)
    entry = library.find("P")
    assert entry.default_preset == "SDXL quality"
    library.set_default_preset(entry, "SD1.5 quick draft")
    assert library.find("P").default_preset == "SD1.5 quick draft"
    library.set_default_preset(entry, None)
    assert library.find("P").default_preset == "SDXL quality"
    assert snapshot([file]) == before


def test_pack_configs_fill_prompt_fields():
    base = PipelineConfig().with_changes({"txt2img.negative_prompt": "mine", "txt2img.steps": 9})
    pack = PromptPack(name="x", prompts=[PackPrompt(prompt="one"), PackPrompt(prompt="two", negative="n")])
    configs = list(pack_configs(pack, base))
    assert [(c.txt2img.prompt, c.txt2img.negative_prompt, c.txt2img.steps) for c in configs] == [
        ("one", "mine", 9), ("two", "n", 9)]


def test_template_errors_name_the_file_line_and_prompt(tmp_path: Path):
    text = tmp_path / "t.txt"
    text.write_text("# x\na cat\na {dog|fox\n", encoding="utf-8")
    with pytest.raises(DocumentError) as err:
        validate_pack_path(text)
    assert (err.value.path, err.value.line) == (text, 3)
    assert err.value.reason.startswith("Prompt 2: ") and "never closed" in err.value.reason
    load_pack(text)  # listing the pack does not need the template check

    yaml_file = tmp_path / "y.yaml"
    yaml_file.write_text("version: 1\nname: Y\nprompts:\n  - a cat\n  - prompt: a dog\n"
                         "    negative: '{2x::blurry|dark}'\n", encoding="utf-8")
    with pytest.raises(DocumentError) as err:
        validate_pack_path(yaml_file)
    assert (err.value.line, err.value.field) == (6, "prompts.1.negative")
    assert "Negative of prompt 2" in err.value.reason and "not a number" in err.value.reason

    folder = tmp_path / "F"
    folder.mkdir()
    (folder / "pack.yaml").write_text("version: 1\nname: F\nprompts: [ok]\n", encoding="utf-8")
    (folder / "more.txt").write_text("fine\nbad }\n", encoding="utf-8")
    with pytest.raises(DocumentError) as err:
        validate_pack_path(folder)
    assert (err.value.path, err.value.line) == (folder / "more.txt", 2)


def test_wildcards_of_the_pack_are_checked_and_used_by_the_plan(tmp_path: Path):
    folder = tmp_path / "Birds"
    (folder / "wildcards").mkdir(parents=True)
    (folder / "birds.txt").write_text("a __bird__ at {dawn|dusk}\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="bird"):
        validate_pack_path(folder)
    (folder / "wildcards" / "bird.txt").write_text("heron\nowl\n", encoding="utf-8")
    pack, wildcards = validate_pack_path(folder)
    base = PipelineConfig().with_changes({"txt2img.seed": 9})
    items = list(plan_pack(pack, base, plan_for=pack_plan_for(wildcards_dir=wildcards)))
    assert sorted(i.config.txt2img.prompt for i in items) == [
        "a heron at dawn", "a heron at dusk", "a owl at dawn", "a owl at dusk"]
    assert {i.config.txt2img.seed for i in items} == {9}
    assert [i.index for i in items] == [0, 1, 2, 3] and {i.tags.pack for i in items} == {"Birds"}
    # A template in the randomizer's spec must not replace the pack's prompts.
    from stablenew.randomizer.spec import VariationSpec

    spec = VariationSpec(template="something else", images_per_variant=2)
    again = list(plan_pack(pack, base, plan_for=pack_plan_for(spec, wildcards_dir=wildcards)))
    assert len(again) == 8 and all("at d" in i.config.txt2img.prompt for i in again)


def test_text_packs_split_lines_only_on_newlines(tmp_path: Path):
    file = tmp_path / "u.txt"
    file.write_bytes("a\u2028b\r\nnegative: \u2028x\r\nsecond\u0085line\r\n".encode())
    pack, _ = load_pack(file)
    assert pack.resolved() == [("a\u2028b", "\u2028x"), ("second\u0085line", "")]
    with pytest.raises(ValueError, match="save the pack as .yaml"):
        PromptPack(name="p", prompts=[PackPrompt(prompt="#1 prompt")]).to_text()
