"""Profiles (prompt preload, randomizer bias, migration) and A1111 styles.csv."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.presets import LibraryError, Preset
from stablenew.pipeline.styles import PromptStyle, merge_prompts, read_styles_csv, write_styles_csv
from stablenew.randomizer.profiles import (
    LoraChoice,
    Profile,
    ProfileStore,
    RandomizerBias,
    parse_profile,
)
from stablenew.storage.documents import DocumentError
from tests.library.conftest import snapshot, write_bad_files


def _profile() -> Profile:
    return Profile(
        name="Mira", character="a starship captain", setting="on the bridge", style="oil painting",
        backstory="Lost her ship once.", negative_prompt="blurry",
        wildcard_weights={"hair": {"silver": 3.0, "red": 0.0}},
        loras=[LoraChoice(name="mira_v2", weight=0.7), LoraChoice(name="film", weight=1)],
        tags=["sci-fi"],
    )


def test_profile_round_trip_through_the_store(tmp_path: Path):
    store = ProfileStore(tmp_path / "profiles")
    profile = _profile()
    path = store.save(profile)
    assert path.parent == tmp_path / "profiles"
    entry = store.find("Mira")
    assert entry.item == profile
    assert parse_profile(path.read_text(encoding="utf-8")) == profile
    ticket = store.delete(entry)
    assert store.find("Mira") is None
    store.undo_delete(ticket)
    assert store.find("Mira").item == profile


def test_applying_a_profile_preloads_prompts_and_returns_the_bias():
    base = PipelineConfig().with_changes({"txt2img.steps": 31})
    config, bias = _profile().apply_to(base)
    assert config.txt2img.prompt == ("a starship captain, on the bridge, oil painting "
                                     "<lora:mira_v2:0.7> <lora:film:1>")
    assert config.txt2img.negative_prompt == "blurry" and config.txt2img.steps == 31
    assert "Lost her ship" not in config.txt2img.prompt  # the backstory stays private
    assert bias.wildcard_weights == {"hair": {"silver": 3.0, "red": 0.0}}
    assert [lora.name for lora in bias.loras] == ["mira_v2", "film"]


def test_bias_merges_into_the_randomizer_spec():
    spec_module = pytest.importorskip("stablenew.randomizer.spec")
    spec = spec_module.VariationSpec(
        wildcard_weights={"hair": {"red": 2.0, "black": 0.5}, "eyes": {"green": 4}})
    bias = RandomizerBias(wildcard_weights={"hair": {"silver": 3.0, "red": 0.0}})
    biased = bias.apply_to_spec(spec)
    assert biased.wildcard_weights == {
        "hair": {"red": 0.0, "black": 0.5, "silver": 3.0}, "eyes": {"green": 4}}
    assert spec.wildcard_weights["hair"]["red"] == 2.0  # the original spec is unchanged
    assert RandomizerBias().apply_to_spec(spec) is spec


def test_v0_profile_migrates(data_dir: Path):
    profile = ProfileStore(data_dir).load(data_dir / "profile-v0.yaml")[0]
    assert profile.name == "Captain Mira" and profile.version == 1
    assert profile.loras == [LoraChoice(name="mira_v2", weight=0.7)]
    assert profile.wildcard_weights == {"hair_colour": {"silver": 3.0, "red": 0.0}}


def test_bad_profiles_are_broken_with_line_and_field(tmp_path: Path):
    store = ProfileStore(tmp_path / "profiles")
    files = write_bad_files(store.user_dir, wrong_types=(
        "version: 1\nname: P\nwildcard_weights:\n  hair:\n    silver: -1\n"))
    before = snapshot(list(files.values()))
    entries = {e.path.name: e for e in store.entries()}
    assert all(e.broken for e in entries.values()) and len(entries) == len(files)
    wrong = entries["wrong-types.yaml"].error
    assert wrong.field == "wildcard_weights" and wrong.line == 3 and "0 or more" in wrong.reason
    with pytest.raises(DocumentError):
        parse_profile("version: 1\nname: P\nloras:\n  - name: '<lora:x:1>'\n")
    assert snapshot(list(files.values())) == before


def test_styles_csv_import(data_dir: Path):
    styles = read_styles_csv(data_dir / "styles.csv")
    assert [s.name for s in styles] == ["Cinematic", "Watercolor", "Quote, comma"]
    cinematic, watercolor, quote = styles
    assert cinematic.apply("a fox", "ugly") == (
        "cinematic still of a fox, shallow depth of field, film grain", "ugly, cartoon, painting")
    assert watercolor.apply("a fox", "") == ("a fox, watercolor, soft edges", "")
    assert quote.prompt == 'a "quoted" style, with commas' and quote.negative_prompt == "multi\nline negative"


def test_styles_round_trip_and_placeholder_rules(tmp_path: Path):
    styles = [PromptStyle(name="A", prompt="{prompt}, 4k", negative_prompt="bad, {prompt}"),
              PromptStyle(name="B, b", prompt='say "hi"')]
    path = write_styles_csv(tmp_path / "styles.csv", styles)
    assert read_styles_csv(path) == styles
    assert merge_prompts("{prompt}, 4k", "cat") == "cat, 4k"
    assert merge_prompts("4k", "") == "4k"
    once = styles[0].apply("cat", "x")
    assert once == ("cat, 4k", "bad, x") and styles[0].apply(*once) == once


def test_styles_csv_errors(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("title,text\nx,y\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="name, prompt, negative_prompt"):
        read_styles_csv(bad)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\x00\xff" * 10)
    with pytest.raises(DocumentError, match="binary"):
        read_styles_csv(binary)


def test_styles_in_a_preset_are_saved_and_applied(tmp_path: Path):
    from stablenew.pipeline.presets import PresetStore

    store = PresetStore(tmp_path / "presets")
    preset = Preset(name="Cinematic look", styles=[PromptStyle(name="Cine", prompt="film still of {prompt}")],
                    config={"txt2img": {"cfg_scale": 5}})
    store.save(preset)
    loaded = store.find("Cinematic look").item
    applied = loaded.apply_to(PipelineConfig().with_changes({"txt2img.prompt": "a fox"}))
    assert (applied.txt2img.prompt, applied.txt2img.cfg_scale) == ("film still of a fox", 5)
    with pytest.raises(LibraryError, match="not saved"):
        store.save(Preset.model_construct(name="", config=preset.config))
