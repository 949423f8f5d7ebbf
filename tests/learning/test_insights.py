from __future__ import annotations

import random

from stablenew.learning.insights import (
    advice_for,
    build_insights,
    insights_for,
    recommend,
)
from stablenew.learning.store import LearningStore, ValueStats
from stablenew.pipeline.config import PipelineConfig
from tests.learning.helpers import synthetic_records


def test_seeded_dataset_gives_the_right_ordering_and_a_plain_summary(tmp_path):
    with LearningStore(tmp_path / "db.sqlite") as store:
        store.add_records(synthetic_records(200, packs=("Portraits",)))
        insights = insights_for(store, "Portraits")
    steps = insights.parameter("steps")
    assert steps is not None and steps.conclusive
    means = [v.mean for v in steps.values]
    assert [v.value for v in steps.values] == ["15", "20", "25", "30", "35"]
    assert means[0] < means[2] < means[3]
    assert steps.best_values == ("30", "35") and steps.recommended in ("30", "35")
    assert steps.summary.startswith("For Portraits, 30–35 steps scores higher than 15–20: ")
    assert "stars over 160 images" in steps.summary
    for v in steps.values:
        assert 1.0 <= v.low <= v.mean <= v.high <= 5.0 and v.n == 40
    # The sampler has no effect in this data set: no winner is named.
    sampler = insights.parameter("sampler")
    assert sampler is not None and not sampler.conclusive
    assert "no clear difference" in sampler.summary


def test_thin_data_refuses_to_conclude():
    # Two images per value: even a big difference is not evidence yet.
    stats = [ValueStats("steps", "15", 2, 2.0, 2.0), ValueStats("steps", "35", 2, 10.0, 50.0)]
    insights = build_insights(stats, {}, "Portraits")
    steps = insights.parameter("steps")
    assert not steps.conclusive
    assert steps.summary == ("For Portraits: not enough ratings yet — try a learning run on steps.")
    assert recommend(insights).empty


def test_noisy_small_difference_is_not_called_a_winner():
    rng = random.Random(5)
    stats = []
    for value in ("4", "7"):
        ratings = [rng.choice([2, 3, 4, 5]) for _ in range(6)]
        stats.append(ValueStats("cfg", value, 6, sum(ratings), sum(r * r for r in ratings)))
    insight = build_insights(stats, {}, None).parameter("cfg")
    assert not insight.conclusive


def test_empty_store_suggests_rating_and_a_learning_run(tmp_path):
    with LearningStore(tmp_path / "db.sqlite") as store:
        insights = insights_for(store)
    assert insights.rated == 0
    assert insights.lines() == ["Across all packs: no ratings yet — rate a few images (keys 1–5) or "
                                "try a learning run on steps."]


def test_tags_turn_into_advice_in_plain_words():
    assert advice_for("Too Noisy") == "Try lowering noise (denoise) or adding steps."
    assert advice_for("too smooth") == "Try raising CFG or lowering denoise."
    assert advice_for("grainy") == advice_for("too noisy")
    assert advice_for("purple") is None
    insights = build_insights([], {"too noisy": 3, "purple": 5, "blurry": 1}, "P")
    assert [(a.tag, a.count) for a in insights.advice] == [("too noisy", 3)]
    assert '"too noisy" on 3 images: Try lowering noise (denoise) or adding steps.' in insights.lines()


def test_recommended_preset_is_a_preview_built_from_the_best_supported_values(tmp_path):
    with LearningStore(tmp_path / "db.sqlite") as store:
        store.add_records(synthetic_records(200, packs=("Portraits",)))
        preset = recommend(insights_for(store, "Portraits"))
    assert [c.parameter for c in preset.changes] == ["steps"]
    base = PipelineConfig().with_changes({"txt2img.steps": 20, "txt2img.cfg_scale": 6})
    preview = preset.apply_to(base)
    assert preview.txt2img.steps in (30, 35) and preview.txt2img.cfg_scale == 6
    assert base.txt2img.steps == 20  # the base is untouched: nothing is applied silently
    assert preset.partial() == {"txt2img": {"steps": preview.txt2img.steps}}
    assert preset.describe()[0].startswith("Steps: ")


def test_per_pack_insights_do_not_mix_packs(tmp_path):
    good_high = synthetic_records(150, packs=("A",))
    good_low = synthetic_records(150, packs=("B",), seed=9,
                                 means={15: 4.4, 20: 4.2, 25: 3.3, 30: 2.6, 35: 2.4})
    for i, r in enumerate(good_low):  # distinct keys for the second set
        good_low[i] = r.__class__(**{**r.__dict__, "record_key": f"b-{r.record_key}"})
    with LearningStore(tmp_path / "db.sqlite") as store:
        store.add_records(good_high + good_low)
        a = insights_for(store, "A").parameter("steps")
        b = insights_for(store, "B").parameter("steps")
    assert a.conclusive and set(a.best_values) == {"30", "35"}
    assert b.conclusive and set(b.best_values) == {"15", "20"}


def test_lines_put_conclusions_first_then_advice_then_open_questions():
    strong = [ValueStats("steps", v, 10, m * 10, m * m * 10 + 4) for v, m in
              (("15", 2.0), ("20", 2.2), ("30", 4.4), ("35", 4.5))]
    thin = [ValueStats("cfg", "5", 2, 8.0, 32.0), ValueStats("cfg", "9", 1, 2.0, 4.0)]
    insights = build_insights(strong + thin, {"blurry": 2}, "Portraits")
    lines = insights.lines()
    assert lines[0].startswith("For Portraits, 30–35 steps scores higher than 15–20: 4.5 vs 2.1")
    assert lines[1].startswith('"blurry" on 2 images: Try more steps')
    assert lines[2] == "For Portraits: not enough ratings yet — try a learning run on cfg scale."
    assert len(lines) == 3
    only_strong = build_insights(strong, {}, "Portraits").lines()
    assert only_strong[-1] == "For Portraits: to learn more, try a learning run on cfg scale."


def _stats(param, table):
    return [ValueStats(param, v, n, m * n, m * m * n + n) for v, n, m in table]


def test_a_conclusive_learning_run_wins_over_confounded_everyday_images():
    # Everyday images: more steps look better (they came with a better model, say) ...
    everyday = _stats("steps", [("15", 20, 2.0), ("20", 20, 2.2), ("30", 20, 4.2), ("35", 20, 4.4)])
    # ... but the fair comparison, where nothing else changed, says the opposite.
    fair = _stats("steps", [("15", 6, 4.5), ("20", 6, 4.4), ("30", 6, 2.4), ("35", 6, 2.2)])
    insight = build_insights(everyday, {}, "P", fair).parameter("steps")
    assert insight.fair and insight.conclusive and insight.best_values == ("15", "20")
    assert "in your learning runs: 4.5 vs 2.3 stars over 24 images" in insight.summary
    # A thin learning run does not hide a conclusive everyday pattern.
    thin = _stats("steps", [("15", 1, 4.0), ("35", 1, 2.0)])
    insight = build_insights(everyday, {}, "P", thin).parameter("steps")
    assert not insight.fair and insight.conclusive and insight.best_values == ("30", "35")


def test_fair_stats_count_only_the_setting_each_learning_run_varied(tmp_path):
    from stablenew.learning.records import LearningRecord
    from tests.learning.helpers import image_record

    with LearningStore(tmp_path / "db.sqlite") as store:
        for i, (steps, cfg) in enumerate([(10, 5), (20, 5), (10, 9), (20, 9)]):
            config = PipelineConfig().with_changes({"txt2img.steps": steps, "txt2img.cfg_scale": cfg})
            image = image_record(tmp_path, i, config=config, learning_run_id="run-a", png=False)
            record = store.add_record(LearningRecord.from_image_record(image))
            store.rate(record.id, 1 + i)
        store.save_run("run-a", pack="Portraits", parameter="steps", status="completed", result={})
        fair = {(s.param, s.value): (s.n, s.total) for s in store.fair_stats()}
    assert fair == {("steps", "10"): (2, 4.0), ("steps", "20"): (2, 6.0)}
