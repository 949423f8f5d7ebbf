"""A LoRA swatch as a learning plan: one column per LoRA, each image the base prompt plus that
LoRA's token and trigger words, all on one seed."""

from __future__ import annotations

import pytest

from stablenew.learning.errors import PlanInvalid
from stablenew.learning.parameters import SWATCH_KEY, add_to_prompt, get_parameter
from stablenew.learning.plans import LearningPlan
from stablenew.learning.runs import LearningRunResult
from stablenew.pipeline.config import PipelineConfig


def test_a_fragment_is_added_as_add_to_prompt_adds_a_lora():
    assert add_to_prompt("a city", "neonstyle, <lora:neon:0.7>") == "a city, neonstyle, <lora:neon:0.7>"
    # A LoRA already there takes the new weight; a word already there is not repeated.
    assert add_to_prompt("neonstyle city, <lora:neon:1>", "neonstyle, <lora:neon:0.5>") == \
        "neonstyle city, <lora:neon:0.5>"
    assert add_to_prompt("", "<lora:ink:1>") == "<lora:ink:1>"


def test_swatch_plan_has_a_column_per_lora_on_one_seed():
    base = PipelineConfig().with_changes({"txt2img.prompt": "a city", "txt2img.seed": -1,
                                          "txt2img.batch_count": 3})
    plan = LearningPlan.create(base, SWATCH_KEY, ["neonstyle, <lora:neon:0.7>", "<lora:ink:1>"])
    cells = plan.images()
    assert plan.image_count == len(cells) == 2
    assert [c.config.txt2img.prompt for c in cells] == ["a city, neonstyle, <lora:neon:0.7>",
                                                        "a city, <lora:ink:1>"]
    assert len({c.seed for c in cells}) == 1 and all(c.config.txt2img.batch_count == 1 for c in cells)
    assert plan.column_labels == ("neon 0.7", "ink 1")
    assert plan.title() == "Learning run: lora swatch"
    # A saved run reads its labels back from the stored key.
    assert LearningRunResult.from_plan(plan).column_labels == ("neon 0.7", "ink 1")
    assert get_parameter(SWATCH_KEY).value_of(cells[0].config) is None


def test_a_swatch_value_without_a_lora_is_refused_in_words():
    with pytest.raises(PlanInvalid, match="names no LoRA"):
        LearningPlan.create(PipelineConfig(), SWATCH_KEY, ["<lora:ink:1>", "just words"])
    with pytest.raises(PlanInvalid, match="2 to 10"):
        LearningPlan.create(PipelineConfig(), SWATCH_KEY, ["<lora:ink:1>"])
