"""The prompt steps before a variant's first stage: enhance, then LoRAs from the catalog that fit
the (enhanced) prompt, the checkpoint's base model and the node; deterministic for seed and
prompt; a missing catalog costs a notice, never the run."""

from __future__ import annotations

import json
from pathlib import Path

from stablenew.catalog.entry import BaseModel, ModelEntry, ModelKind
from stablenew.catalog.index import Catalog
from stablenew.catalog.match import Matcher
from stablenew.cluster.prompt_steps import (
    CatalogView,
    LoraMatchOptions,
    LoraMatchStep,
    chain_steps,
)
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.records import RunTags
from stablenew.storage.settings import AppSettings


def _lora(name: str, base: BaseModel, tags: list[str], trigger: str = "") -> ModelEntry:
    return ModelEntry(ModelKind.lora, f"/loras/{name}.safetensors", name, name, name.title(),
                      base_model=base, triggers=[trigger] if trigger else [], tags=tags)


def _catalog() -> Catalog:
    catalog = Catalog([
        _lora("neon_xl", BaseModel.sdxl, ["neon"], "neonstyle"),
        _lora("neon_sd1", BaseModel.sd1, ["neon"], "neon15"),
        _lora("neon_away", BaseModel.sdxl, ["neon"]),
        _lora("city_xl", BaseModel.sdxl, ["city"], "cityscape"),
        ModelEntry(ModelKind.checkpoint, "/models/juggernautXL.safetensors", "juggernautXL",
                   "juggernautXL", "Juggernaut XL", base_model=BaseModel.sdxl),
    ])
    catalog.mark_available("gpu1", ["neon_xl", "neon_sd1", "city_xl"])
    return catalog


UP_TO_THREE = LoraMatchOptions(3, 3)


def _step(catalog: Catalog | None, options: LoraMatchOptions | None = UP_TO_THREE,
          reason: str = "the Models tab is still opening.") -> LoraMatchStep:
    async def source(_node: str | None) -> CatalogView | str:
        return CatalogView(catalog, Matcher(catalog.entries)) if catalog is not None else reason

    return LoraMatchStep(source, options)


def _config(prompt: str = "a city at night, neon", seed: int = 7) -> PipelineConfig:
    return PipelineConfig().with_changes({"txt2img.prompt": prompt, "txt2img.seed": seed,
                                          "txt2img.checkpoint": "juggernautXL.safetensors"})


async def test_only_loras_for_the_checkpoints_family_and_on_the_node_are_added():
    step = _step(_catalog())
    sent, tags, notice = await step(_config(), RunTags(variant_id="v1"), CancelToken(), node="gpu1")
    assert notice == ""
    prompt = sent.txt2img.prompt
    assert "<lora:neon_xl:1>" in prompt and "<lora:city_xl:1>" in prompt
    assert "neonstyle" in prompt and "cityscape" in prompt  # each with its first trigger word
    assert "neon_sd1" not in prompt  # an SD1 LoRA on an SDXL model
    assert "neon_away" not in prompt  # not on the node that runs it
    assert sorted(tags.auto_loras) == ["city_xl:1", "neon_xl:1"]
    assert tags.original_prompt == "a city at night, neon" and tags.variant_id == "v1"
    # A node not heard from yet: its LoRAs are not known, so none is refused for it.
    again, _tags, _notice = await step(_config(), RunTags(), CancelToken(), node="gpu2")
    assert "<lora:neon_away:1>" in again.txt2img.prompt and "neon_sd1" not in again.txt2img.prompt


async def test_the_same_seed_and_prompt_always_get_the_same_loras():
    step = _step(_catalog(), LoraMatchOptions(1, 1))
    picks = []
    for seed in range(12):
        first, _t, _n = await step(_config(seed=seed), RunTags(), CancelToken(), node="gpu1")
        second, _t, _n = await _step(_catalog(), LoraMatchOptions(1, 1))(
            _config(seed=seed), RunTags(), CancelToken(), node="gpu1")
        assert first.txt2img.prompt == second.txt2img.prompt
        picks.append(first.txt2img.prompt.count("<lora:"))
    assert picks == [1] * 12


async def test_a_learning_run_over_a_loras_weight_gets_the_same_picks_in_every_column():
    """The cells of one seed differ only in the weight of the LoRA under test; the LoRAs the
    step adds must not differ with it, or the comparison would not be fair."""
    from stablenew.learning.plans import LearningPlan

    catalog = _catalog()
    for name in ("glow", "dusk", "street"):
        catalog.extend([_lora(f"{name}_xl", BaseModel.sdxl, ["neon", "city"])])
    plan = LearningPlan.create(_config("a city at night, neon, <lora:neon_xl:1>"), "lora:neon_xl",
                               [0.2, 0.4, 0.6, 0.8, 1.0], images_per_value=3)
    step = _step(catalog, LoraMatchOptions(1, 2))
    picks: dict[int, set[tuple[str, ...] | None]] = {}
    for cell in plan.images():
        _sent, tags, _n = await step(cell.config, cell.tags, CancelToken(), node=None)
        picks.setdefault(cell.row, set()).add(tags.auto_loras)
    assert all(len(row) == 1 for row in picks.values()), picks
    assert len({next(iter(row)) for row in picks.values()}) > 1  # seeds still differ


async def test_a_lora_the_user_wrote_keeps_its_weight_and_categories_narrow_the_choice():
    catalog = _catalog()
    catalog.find("city_xl").category = "places"
    step = _step(catalog)
    sent, tags, _n = await step(_config("a city at night, neon, <lora:neon_xl:0.3>"), RunTags(),
                                CancelToken(), node="gpu1")
    assert "<lora:neon_xl:0.3>" in sent.txt2img.prompt and sent.txt2img.prompt.count("neon_xl") == 1
    assert tags.auto_loras == ("city_xl:1",)
    only = _step(catalog, LoraMatchOptions(1, 3, ("styles",)))
    kept, kept_tags, notice = await only(_config(), RunTags(), CancelToken(), node="gpu1")
    assert kept.txt2img.prompt == "a city at night, neon" and kept_tags.auto_loras is None
    assert notice == "No LoRA in the catalog fits this prompt and model, so none was added."


async def test_a_missing_or_empty_catalog_says_so_once_and_the_variant_runs_as_written():
    step = _step(None)
    config = _config()
    sent, tags, notice = await step(config, RunTags(), CancelToken(), node="gpu1")
    assert sent is config and tags == RunTags()
    assert notice == "No LoRAs were added: the Models tab is still opening."
    assert (await step(config, RunTags(), CancelToken(), node="gpu1"))[2] == ""  # said once
    empty = await _step(Catalog())(config, RunTags(), CancelToken(), node="gpu1")
    assert empty[0] is config and empty[2].startswith("No LoRAs were added: the LoRA catalog is empty.")
    off = await _step(_catalog(), None)(config, RunTags(), CancelToken(), node="gpu1")
    assert off == (config, RunTags(), "")


async def test_matching_runs_after_enhancing_and_sees_the_enhanced_words():
    async def enhance(config: PipelineConfig, tags: RunTags,
                      cancel: CancelToken) -> tuple[PipelineConfig, RunTags, str]:
        prompt = config.txt2img.prompt + ", neon glow"
        sent = config.with_changes({"txt2img.prompt": prompt})
        return sent, RunTags(original_prompt=config.txt2img.prompt, enhance_template="cinematic"), ""

    chained = chain_steps(enhance, _step(_catalog(), LoraMatchOptions(1, 1)), "gpu1")
    assert chained is not None
    sent, tags, notice = await chained(_config("a portrait"), RunTags(), CancelToken())
    assert sent.txt2img.prompt.startswith("a portrait, neon glow, neonstyle, <lora:neon_xl:1>")
    assert tags.original_prompt == "a portrait" and tags.enhance_template == "cinematic"
    assert tags.auto_loras == ("neon_xl:1",) and notice == ""
    assert chain_steps(None, None, "gpu1") is None


def test_options_come_from_the_settings_only_when_switched_on():
    assert LoraMatchOptions.from_settings(AppSettings()) is None
    options = LoraMatchOptions.from_settings(AppSettings(
        lora_auto=True, lora_auto_min=4, lora_auto_max=2, lora_auto_categories="style, places,"))
    assert options == LoraMatchOptions(2, 2, ("style", "places"))


def test_stablenew_run_enhances_then_adds_the_matching_lora_and_the_image_says_so(tmp_path, capsys):
    """End to end with the fake LLM and the fake A1111: the LLM's words bring in the LoRA, the
    server gets it with its trigger word (not the one it lacks, though 'rain' fits too), and
    the saved image and its learning record say which LoRA was chosen for the user."""
    from stablenew.catalog.cache import CatalogCache, default_cache_path
    from stablenew.catalog.index import scan
    from stablenew.cli import main
    from stablenew.learning.store import LearningStore
    from stablenew.pipeline.infotext import read_image_metadata
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import save_settings
    from tests.catalog.factory import SDXL_KEYS, write_model
    from tests.fakes.llm import FakeLLM
    from tests.fakes.sdwebui import FakeSDWebUI

    loras = tmp_path / "Lora"
    write_model(loras / "style" / "neon.safetensors", {"modelspec.trigger_phrase": "neonstyle"},
                SDXL_KEYS, tensor_bytes=32, fill=b"\x05")
    write_model(loras / "grain.safetensors", {"ss_output_name": "film_grain",
                                               "modelspec.trigger_phrase": "grainy"}, SDXL_KEYS)
    assert main(["lora", "scan", str(loras)]) == 0
    elsewhere = tmp_path / "nas"  # in the catalog, but the server does not have it
    write_model(elsewhere / "rain.safetensors", {"modelspec.trigger_phrase": "rainy"}, SDXL_KEYS)
    assert main(["lora", "scan", str(elsewhere)]) == 0
    cache = CatalogCache(default_cache_path())
    neon_hash = scan([(loras, ModelKind.lora)], cache).find("neon").autov3
    cache.close()
    assert neon_hash
    config = tmp_path / "city.yaml"
    config.write_text(f"version: 1\ntxt2img:\n  prompt: {json.dumps('a city at night')}\n"
                      "  width: 64\n  height: 64\n  steps: 2\n  seed: 5\n", encoding="utf-8")
    capsys.readouterr()
    sd = FakeSDWebUI(step_ms=0.0)
    sd.lora_dir = loras
    with FakeLLM().running_in_thread() as llm, sd.running_in_thread():
        llm.reply("a city at night, neon signs, rain")
        save_settings(AppPaths.default(), AppSettings(
            llm_enhance=True, llm_url=llm.url, llm_template="cinematic", lora_auto=True,
            lora_auto_min=2, lora_auto_max=2))
        code = main(["run", str(config), "--node", sd.url, "--kind", "a1111",
                     "--out", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code == 0, out.err
    sent = "a city at night, neon signs, rain, neonstyle, <lora:neon:1>"
    assert sd.requests_to("/sdapi/v1/txt2img")[-1].payload["prompt"] == sent
    [image] = [Path(line) for line in out.out.splitlines()]
    meta = read_image_metadata(image)
    assert meta.parsed["Prompt"] == sent
    assert meta.parsed["Lora hashes"] == f"neon: {neon_hash}"
    assert meta.stablenew["tags"]["auto_loras"] == ["neon:1"]
    assert meta.stablenew["tags"]["original_prompt"] == "a city at night"
    assert meta.stablenew["tags"]["enhance_template"] == "cinematic"
    store = LearningStore(AppPaths.default().database_file)
    try:
        [record] = list(store.iter_records())
    finally:
        store.close()
    assert record.auto_loras == ("neon:1",) and record.enhance_template == "cinematic"
    assert record.parameter_values()["lora:neon"] == "1"
    assert record.parameter_values()["enhance"] == "cinematic"
