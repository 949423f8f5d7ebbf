"""`learning report`: which samplers, models, LoRAs and packs score well or poorly, with counts,
and no verdict where the ratings are too few or too close."""

from __future__ import annotations

import json
import random

from stablenew.learning.report import Pool, build_report
from stablenew.learning.store import LearningStore, ValueStats
from tests.learning.helpers import synthetic_records
from tests.learning.test_cli import main


def _stats(param: str, value: str, ratings: list[int]) -> ValueStats:
    return ValueStats(param, value, len(ratings), float(sum(ratings)), float(sum(r * r for r in ratings)))


def _ratings(rng: random.Random, mean: float, n: int) -> list[int]:
    return [max(1, min(5, round(rng.gauss(mean, 0.8)))) for _ in range(n)]


def test_a_weak_sampler_and_a_strong_lora_are_named_with_their_counts():
    rng = random.Random(3)
    euler, dpm, ddim = _ratings(rng, 3.6, 40), _ratings(rng, 3.7, 40), _ratings(rng, 2.2, 40)
    everything = euler + dpm + ddim
    stats = [_stats("sampler", "Euler a", euler), _stats("sampler", "DPM++ 2M", dpm),
             _stats("sampler", "DDIM", ddim),
             _stats("steps", "20", everything),
             _stats("lora:neon", "0.8", [5, 5, 4, 5, 5, 4, 5, 5]),
             _stats("lora:rare", "1", [5, 5])]
    rows = {(r.kind, r.name): r for r in build_report(stats)}
    ddim_row = rows[("Sampler", "DDIM")]
    assert ddim_row.verdict == "scores poorly" and ddim_row.images == 40 and ddim_row.others == 80
    assert ddim_row.text.startswith("Sampler DDIM scores poorly: 2.")
    assert "over 40 images, against 3." in ddim_row.text and "for the other 80." in ddim_row.text
    assert rows[("Sampler", "Euler a")].verdict in ("about the same", "scores well")
    assert rows[("LoRA", "neon")].verdict == "scores well"
    assert rows[("LoRA", "rare")].verdict == "too few ratings"
    assert rows[("LoRA", "rare")].text == "LoRA rare: too few ratings yet (2 images)."


def test_no_difference_gives_no_verdict_and_one_value_is_not_compared():
    rng = random.Random(5)
    same_a, same_b = _ratings(rng, 3.4, 60), _ratings(rng, 3.4, 60)
    stats = [_stats("sampler", "A", same_a), _stats("sampler", "B", same_b),
             _stats("checkpoint", "only_model", same_a + same_b)]
    rows = build_report(stats)
    assert {r.verdict for r in rows} == {"about the same"}
    assert not [r for r in rows if r.kind == "Model"]  # nothing to compare one model with


def test_packs_are_compared_with_each_other():
    rng = random.Random(9)
    packs = {"Portraits": Pool.of([_stats("steps", "20", _ratings(rng, 4.2, 50))]),
             "Landscapes": Pool.of([_stats("steps", "20", _ratings(rng, 3.0, 50))])}
    rows = {r.name: r for r in build_report([], packs)}
    assert rows["Portraits"].verdict == "scores well" and rows["Landscapes"].verdict == "scores poorly"


def test_the_command_prints_what_stands_out_and_json(capsys):
    with LearningStore() as store:
        records = synthetic_records(150, packs=("Portraits", "Landscapes"))
        store.add_records(records)
    assert main(["learning", "report"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("- ") or out.startswith("Nothing stands out yet")
    assert main(["learning", "report", "--all", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    samplers = {row["name"]: row for row in data if row["kind"] == "Sampler"}
    assert set(samplers) == {"Euler a", "DPM++ 2M"}
    assert sum(row["images"] for row in samplers.values()) == 150
    assert {row["name"] for row in data if row["kind"] == "Pack"} == {"Portraits", "Landscapes"}
