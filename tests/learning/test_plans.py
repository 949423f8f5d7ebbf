from __future__ import annotations

import random

import pytest

from stablenew.backends.lora_tags import lora_weights
from stablenew.learning.errors import PlanInvalid
from stablenew.learning.parameters import PARAMETERS, get_parameter, set_lora_weight
from stablenew.learning.plans import LearningPlan
from stablenew.pipeline.config import PipelineConfig


def _diff(a: dict, b: dict, prefix: str = "") -> set[str]:
    out = set()
    for key in a.keys() | b.keys():
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out |= _diff(x, y, f"{prefix}{key}.")
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (p, q) in enumerate(zip(x, y, strict=True)):
                if isinstance(p, dict):
                    out |= _diff(p, q, f"{prefix}{key}.{i}.")
                elif p != q:
                    out.add(f"{prefix}{key}.{i}")
        elif x != y:
            out.add(prefix + key)
    return out


def test_five_values_two_seeds_differ_only_in_the_parameter_and_share_seeds_per_row():
    base = PipelineConfig().with_changes({"txt2img.prompt": "a lighthouse", "txt2img.batch_size": 4})
    plan = LearningPlan.create(base, "steps", images_per_value=2, pack="Coast",
                               rng=random.Random(3))
    cells = plan.images()
    assert len(cells) == 10 and plan.image_count == 10
    assert plan.column_labels == ("15 steps", "20 steps", "25 steps", "30 steps", "35 steps")
    for cell in cells:
        assert cell.config.txt2img.seed == plan.seeds[cell.row]
        assert cell.config.txt2img.batch_size == 1 and cell.config.txt2img.batch_count == 1
        assert cell.tags.learning_run_id == plan.id and cell.tags.pack == "Coast"
        assert cell.tags.variant_label == plan.column_labels[cell.column]
    by_row: dict[int, list] = {}
    for cell in cells:
        by_row.setdefault(cell.row, []).append(cell)
    for row_cells in by_row.values():
        dumps = [c.config.model_dump(mode="json") for c in row_cells]
        for other in dumps[1:]:
            assert _diff(dumps[0], other) == {"txt2img.steps"}
    assert plan.seeds[0] != plan.seeds[1]
    # Columns run one after another, so progress can count values.
    assert [c.column for c in cells] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_a_fixed_seed_in_the_cards_is_kept_for_the_first_row():
    base = PipelineConfig().with_changes({"txt2img.seed": 42})
    plan = LearningPlan.create(base, "cfg", [5, 7.5], images_per_value=3)
    assert plan.seeds == (42, 43, 44)
    assert {c.config.txt2img.cfg_scale for c in plan.images()} == {5.0, 7.5}


@pytest.mark.parametrize("key", sorted(k for k, p in PARAMETERS.items() if p.runnable))
def test_every_known_parameter_varies_only_itself(key):
    param = get_parameter(key)
    values = param.suggested[:2] if param.suggested else ("model-a.safetensors", "model-b.ckpt")
    plan = LearningPlan.create(PipelineConfig(), key, values, rng=random.Random(1))
    first, second = (c.config.model_dump(mode="json") for c in plan.images())
    changed = _diff(first, second)
    assert changed == {param.path}, changed
    assert [param.text(param.value_of(c.config)) for c in plan.images()] == list(plan.value_texts)


def test_stage_bound_parameters_switch_their_stage_on_and_say_so():
    plan = LearningPlan.create(PipelineConfig(), "hires_denoise", [0.3, 0.5])
    assert all(c.config.txt2img.hires.enabled for c in plan.images())
    assert "switches" in plan.notes[0]


def test_lora_weight_is_varied_inside_the_prompt():
    base = PipelineConfig().with_changes({"txt2img.prompt": "a fox, <lora:ink:1>, forest"})
    plan = LearningPlan.create(base, "lora:ink", [0.4, 0.8])
    prompts = [c.config.txt2img.prompt for c in plan.images()]
    assert prompts == ["a fox, <lora:ink:0.4>, forest", "a fox, <lora:ink:0.8>, forest"]
    assert lora_weights("<lora:a:0.5> and <lora:b>") == {"a": 0.5, "b": 1.0}
    assert set_lora_weight("plain", "z", 0.7) == "plain, <lora:z:0.7>"


@pytest.mark.parametrize(("key", "values", "message"), [
    ("steps", [20, 20], "listed twice"),
    ("steps", [20], "2 to 10 values"),
    ("steps", [20, "many"], "must be a number"),
    ("steps", [20, 22.5], "whole number"),
    ("steps", [20, 500], "between 1 and 150"),
    ("denoise", [0.2, 1.5], "between 0 and 1"),
    ("wobble", [1, 2], "not a setting a learning run can vary"),
    ("sampler", ["Euler", " "], "empty value"),
])
def test_bad_plans_are_refused_in_plain_words(key, values, message):
    with pytest.raises(PlanInvalid, match=message):
        LearningPlan.create(PipelineConfig(), key, values)


def test_values_that_break_the_config_limits_are_refused_before_running():
    base = PipelineConfig().with_changes({"txt2img.width": 2048, "txt2img.height": 2048,
                                          "limits.max_output_pixels": 20_000_000})
    with pytest.raises(PlanInvalid, match="cannot run with these settings"):
        LearningPlan.create(base, "hires_scale", [1.5, 3.0])


def test_too_many_images_per_value_is_refused():
    with pytest.raises(PlanInvalid, match="1 to 3 images"):
        LearningPlan.create(PipelineConfig(), "steps", images_per_value=4)


def test_the_model_family_is_recorded_as_the_image_ran():
    from stablenew.learning.parameters import parameter_values

    flux = PipelineConfig().with_changes({"txt2img.checkpoint": "flux1-dev-fp8.safetensors"})
    assert parameter_values(flux)["family"] == "flux"
    chosen = flux.with_changes({"txt2img.checkpoint": "myMix_v3", "txt2img.family": "pony"})
    assert parameter_values(chosen)["family"] == "pony"
    plan = LearningPlan.create(PipelineConfig(), "family", ["sdxl", "pony"], rng=random.Random(1))
    assert [c.config.txt2img.family.value for c in plan.images()] == ["sdxl", "pony"]
