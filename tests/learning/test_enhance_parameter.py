"""The local-LLM enhance template is a learning parameter like any other ("none" when the prompt
went as written), so insights, recommend, taste and the report can say whether enhancing helps."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from stablenew.learning.errors import PlanInvalid
from stablenew.learning.insights import insights_for
from stablenew.learning.plans import LearningPlan
from stablenew.learning.records import LearningRecord
from stablenew.learning.report import report_for
from stablenew.learning.store import LearningStore
from stablenew.learning.suggest import next_experiment, recommend_for
from stablenew.learning.taste import fit_taste
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.records import ImageRecord, RunTags


def _image(i: int, template: str | None, *, steps: int = 20) -> ImageRecord:
    prompt = "a red fox" if template is None else f"a red fox, {template} light"
    config = PipelineConfig().with_changes({"txt2img.prompt": prompt, "txt2img.seed": i,
                                            "txt2img.steps": steps})
    tags = RunTags(original_prompt="a red fox" if template else None, enhance_template=template,
                   auto_loras=("neon:0.8",) if i == 0 else None)
    return ImageRecord(run_id=f"run-{i}", image_index=0, config=config, seed=i, stages=("txt2img",),
                       node="n", node_kind="a1111", path=Path(f"/images/{i}.png"), tags=tags,
                       created_at=1000.0 + i)


@pytest.fixture
def store(tmp_path):
    """20 images enhanced with 'cinematic' rated about 4.4, 20 sent as written about 2.9; the
    steps vary too but make no difference."""
    rng = random.Random(7)
    store = LearningStore(tmp_path / "learning.db")
    for i in range(40):
        template = "cinematic" if i % 2 == 0 else None
        record = store.add_record(LearningRecord.from_image_record(
            _image(i, template, steps=20 + 5 * (i % 4 // 2))))
        mean = 4.4 if template else 2.9
        store.rate(record.id, max(1, min(5, round(rng.gauss(mean, 0.6)))))
    yield store
    store.close()


def test_the_record_keeps_its_prompt_steps_and_the_template_is_a_value(store):
    first = store.get(1)
    assert first.enhance_template == "cinematic" and first.original_prompt == "a red fox"
    assert first.auto_loras == ("neon:0.8",)
    assert first.parameter_values()["enhance"] == "cinematic"
    assert store.get(2).parameter_values()["enhance"] == "none"  # no template is a value too
    assert first.to_json()["auto_loras"] == ["neon:0.8"]


def test_insights_say_that_enhancing_with_cinematic_scores_higher(store):
    insight = insights_for(store).parameter("enhance")
    assert insight is not None and insight.conclusive
    assert "enhanced with 'cinematic' scores higher than not enhanced" in insight.summary
    assert insight.recommended == "cinematic"
    assert [v.label for v in insight.values] == ["enhanced with 'cinematic'", "not enhanced"]
    steps = insights_for(store).parameter("steps")
    assert steps is not None and not steps.conclusive


def test_recommend_taste_and_report_name_the_template(store):
    preset = recommend_for(store)
    change = next(c for c in preset.changes if c.parameter == "enhance")
    assert change.value == "cinematic" and change.confidence is not None and change.confidence > 0.9
    assert "enhance" not in str(preset.partial())  # a Settings choice, not a preset value
    assert preset.apply_to(PipelineConfig()) == PipelineConfig()

    model = fit_taste(store)
    effect = model.parameter("enhance")
    assert effect is not None
    assert effect.bins[effect.best].bin.values == ("cinematic",)
    assert effect.spread > 1.0

    rows = {(r.kind, r.name): r for r in report_for(store)}
    assert rows[("Enhance style", "cinematic")].verdict == "scores well"
    assert rows[("Enhance style", "none (sent as written)")].verdict == "scores poorly"


def test_the_next_experiment_is_one_a_learning_run_can_make(store):
    suggestion = next_experiment(fit_taste(store))
    assert suggestion.parameter != "enhance"
    suggestion.plan(PipelineConfig().with_changes({"txt2img.prompt": "a fox"}))  # it can run
    with pytest.raises(PlanInvalid, match="cannot vary the enhance style"):
        LearningPlan.create(PipelineConfig(), "enhance", ["none", "cinematic"])
