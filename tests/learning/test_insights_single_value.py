"""Insights find an effect that sits on one value, against a simulated rater (seeded).

The rater likes CFG 4, 6 and 8 about equally (3.5–3.65 stars) and dislikes CFG 10 (2.55), with
the spread of real star ratings (whole stars, about one star of noise). Comparing windows of
two neighbours halves that penalty (4–6 against 8–10), so it went unreported; an insight must
name CFG 10 as the weak value at 80 images already, and must not invent effects where there
are none.
"""

from __future__ import annotations

import random

from stablenew.learning.insights import build_insights, insights_for
from stablenew.learning.store import LearningStore, ValueStats

PENALTY = {"4": 3.5, "6": 3.6, "8": 3.65, "10": 2.55}
FLAT = {"4": 3.4, "6": 3.4, "8": 3.4, "10": 3.4}
SEEDS = range(50)


def rate(rng: random.Random, mean: float) -> int:
    return max(1, min(5, round(rng.gauss(mean, 0.95))))


def simulated_stats(means: dict[str, float], images: int, seed: int) -> list[ValueStats]:
    rng = random.Random(seed)
    per_value = images // len(means)
    stats = []
    for value, mean in means.items():
        ratings = [rate(rng, mean) for _ in range(per_value)]
        stats.append(ValueStats("cfg", value, per_value, float(sum(ratings)),
                                float(sum(r * r for r in ratings))))
    return stats


def finds_the_penalty(stats: list[ValueStats]) -> bool:
    insight = build_insights(stats, {}, "P").parameter("cfg")
    assert insight is not None
    return insight.conclusive and "10" not in insight.best_values and insight.recommended != "10"


def detection_rate(images: int) -> float:
    return sum(finds_the_penalty(simulated_stats(PENALTY, images, s)) for s in SEEDS) / len(SEEDS)


def test_a_penalty_on_one_extreme_value_is_found_at_80_and_480_images():
    at_80, at_480 = detection_rate(80), detection_rate(480)
    print(f"detection of the CFG 10 penalty: {at_80:.0%} at 80 images, {at_480:.0%} at 480")
    assert at_80 >= 0.9
    assert at_480 == 1.0


def test_the_summary_names_the_weak_value_against_its_neighbours():
    insight = build_insights(simulated_stats(PENALTY, 480, 0), {}, "P").parameter("cfg")
    assert insight.conclusive and insight.best_values == ("4", "6", "8")
    assert insight.summary == ("For P, CFG scale 10 scores lower than CFG scale 4–8: 2.6 vs 3.5 "
                               "stars over 480 images.")


def test_a_rater_without_preference_gets_no_winner_most_of_the_time():
    for images in (80, 480):
        false = sum(build_insights(simulated_stats(FLAT, images, s), {}, "P")
                    .parameter("cfg").conclusive for s in SEEDS)
        assert false <= 0.1 * len(SEEDS), (images, false)


def test_a_dip_in_the_middle_is_found_and_said_plainly(tmp_path):
    from stablenew.learning.records import LearningRecord
    from stablenew.pipeline.config import PipelineConfig
    from tests.learning.helpers import image_record

    rng = random.Random(11)
    records = []
    for i in range(160):
        cfg = (4, 6, 8, 10)[i % 4]
        config = PipelineConfig().with_changes({"txt2img.cfg_scale": cfg})
        image = image_record(tmp_path, i, config=config, png=False)
        records.append(LearningRecord.from_image_record(image)
                       .with_rating(rate(rng, 2.4 if cfg == 6 else 3.7)))
    with LearningStore(tmp_path / "db.sqlite") as store:
        store.add_records(records)
        insight = insights_for(store, "Portraits").parameter("cfg")
    assert insight.conclusive and "6" not in insight.best_values
    assert insight.summary.startswith(
        "For Portraits, CFG scale 6 scores lower than the other values: 2.")
