"""Benchmark: does "next experiment" find a user's favourite settings with fewer ratings?

Simulated users, each with a hidden taste drawn per seed, in several scenarios:
- stars: four settings (steps, CFG, sampler, scheduler); a peak in steps and CFG, a liked and
  a disliked sampler and scheduler, one interaction (Euler a wants a lower CFG). Stars are the
  taste plus noise (0.7 star) plus a slow drift of the whole scale over the evening, 1–5.
- choices: five settings (the four and hires denoise); the user never gives stars, only says
  which of two images is better, wrongly when the two are close (noise of 0.12 on a 0–1 taste,
  and 5 % of answers at random), and "the same" when they look alike.
- interactions: six settings (the four, hires denoise and a LoRA's weight) where the settings
  lean on each other: every sampler has its own favourite scheduler, ancestral samplers want
  more steps, a strong LoRA wants a lower CFG and denoise; stars with noise and drift.
- six settings: the interactions' six settings with only the stars scenario's mild coupling:
  more settings to search, as with a real pack.

Three ways to look for good settings, each starting from the defaults:
- active: the taste model's next experiment (a learning run, 3 seeds × its values) on the
  current best settings, which then take the model's best value of every setting; with
  choices, each seed's images of different values are compared with each other;
- sweep: one setting at a time over all its values, 3 images each (with choices: each value
  against the one kept, best of 3), keep the best, next setting, round and round;
- random: random settings, one image each, keep the best seen (with choices: each against
  the one kept).
Counted: ratings (or choices) until the kept settings are within 5 % of the best possible
(the taste scaled 0–1 over every combination); median over the seeds (capped at
MAX_RATINGS). The overall figures are the worst scenario's: the goal (≤ 0.5× sweeps) holds
only when it holds in each.

Also timed: fitting the model and suggesting on 10,000 records (goal < 500 ms).

Run from the repo root: `.venv/bin/python bench/active_learning.py [--seeds 50]`.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from stablenew.learning.store import TasteImage, TasteInputs  # noqa: E402
from stablenew.learning.suggest import next_experiment  # noqa: E402
from stablenew.learning.taste import fit_inputs  # noqa: E402

Config = dict[str, str]
Taste = Callable[[Config], float]

BASIC: dict[str, tuple[str, ...]] = {
    "steps": ("15", "20", "25", "30", "35"),
    "cfg": ("4", "5.5", "7", "8.5", "10"),
    "sampler": ("DPM++ 2M", "Euler a", "Euler", "DPM++ SDE", "DDIM"),
    "scheduler": ("Automatic", "Karras", "Exponential", "SGM Uniform"),
}
HIRES = {"hires_denoise": ("0.3", "0.4", "0.5", "0.6")}
LORA = {"lora:detail": ("0.4", "0.6", "0.8", "1")}
START: Config = {"steps": "20", "cfg": "7", "sampler": "DPM++ 2M", "scheduler": "Automatic",
                 "hires_denoise": "0.4", "lora:detail": "0.8"}
ANCESTRAL = ("Euler a", "DPM++ SDE")
MAX_RATINGS = 400
WITHIN = 0.95
STAR_NOISE = 0.7
CHOICE_NOISE = 0.12  # on the 0–1 taste: two images 0.12 apart are told apart 80 % of the time
LAPSE = 0.05  # answers given at random
SAME_BELOW = 0.03  # taste difference under which the user says "the same"


def _peak(value: str, best: float, width: float) -> float:
    return -((float(value) - best) / width) ** 2


def mild_taste(rng: random.Random, space: dict[str, tuple[str, ...]]) -> Taste:
    """Peaks in steps and CFG (and hires denoise, LoRA weight), liked and disliked samplers
    and schedulers, and Euler a wanting a lower CFG."""
    best_steps, best_cfg = rng.uniform(15, 35), rng.uniform(4, 10)
    sampler = {s: rng.uniform(-0.6, 0.6) for s in BASIC["sampler"]}
    scheduler = {s: rng.uniform(-0.4, 0.4) for s in BASIC["scheduler"]}
    best_hires, best_lora = rng.uniform(0.3, 0.6), rng.uniform(0.4, 1.0)

    def taste(c: Config) -> float:
        peak = best_cfg - (1.5 if c["sampler"] == "Euler a" else 0.0)
        value = (_peak(c["cfg"], peak, 3.0) + _peak(c["steps"], best_steps, 12.0)
                 + sampler[c["sampler"]] + scheduler[c["scheduler"]])
        if "hires_denoise" in space:
            value += _peak(c["hires_denoise"], best_hires, 0.25)
        if "lora:detail" in space:
            value += _peak(c["lora:detail"], best_lora, 0.5)
        return value
    return taste


def coupled_taste(rng: random.Random, space: dict[str, tuple[str, ...]]) -> Taste:
    """Settings that lean on each other: a favourite scheduler per sampler, more steps for
    ancestral samplers, a lower CFG and hires denoise under a strong LoRA."""
    best_steps, best_cfg = rng.uniform(15, 30), rng.uniform(4, 10)
    sampler = {s: rng.uniform(-0.5, 0.5) for s in BASIC["sampler"]}
    pairs = {(s, t): rng.uniform(-0.5, 0.5) for s in BASIC["sampler"] for t in BASIC["scheduler"]}
    best_hires, best_lora = rng.uniform(0.3, 0.6), rng.uniform(0.4, 1.0)

    def taste(c: Config) -> float:
        lora = float(c["lora:detail"])
        steps = best_steps + (8.0 if c["sampler"] in ANCESTRAL else 0.0)
        return (_peak(c["cfg"], best_cfg - 4.0 * (lora - 0.7), 2.5)
                + _peak(c["steps"], steps, 10.0)
                + sampler[c["sampler"]] + pairs[(c["sampler"], c["scheduler"])]
                + _peak(c["hires_denoise"], best_hires - 0.3 * (lora - 0.7), 0.2)
                + _peak(c["lora:detail"], best_lora, 0.4))
    return taste


@dataclass(frozen=True)
class Scenario:
    """A kind of simulated user: the settings, how the taste is drawn and how they answer."""

    name: str
    space: dict[str, tuple[str, ...]]
    taste: Callable[[random.Random, dict[str, tuple[str, ...]]], Taste]
    choices: bool  # answers by pairwise choices instead of stars


SCENARIOS = (
    Scenario("stars with drift", BASIC, mild_taste, choices=False),
    Scenario("noisy choices", {**BASIC, **HIRES}, mild_taste, choices=True),
    Scenario("interactions", {**BASIC, **HIRES, **LORA}, coupled_taste, choices=False),
    Scenario("six settings", {**BASIC, **HIRES, **LORA}, mild_taste, choices=False),
)


class SimulatedUser:
    """A hidden taste, noisy stars on a drifting scale or noisy choices (seeded)."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.space = scenario.space
        self.start = {k: START[k] for k in self.space}
        self.rng = random.Random(seed + 10_000)
        self._taste = scenario.taste(random.Random(seed), self.space)
        values = [self._taste(dict(zip(self.space, combo, strict=True)))
                  for combo in itertools.product(*self.space.values())]
        self.low, self.high = min(values), max(values)
        self.drift = 0.0
        self.answers = 0  # ratings and choices given

    def score(self, config: Config) -> float:
        """0 for the worst combination, 1 for the best."""
        return (self._taste(config) - self.low) / (self.high - self.low)

    def stars(self, config: Config) -> int:
        self.answers += 1
        self.drift = max(-0.5, min(0.5, self.drift + self.rng.gauss(0, 0.03)))
        value = 1 + 4 * self.score(config) + self.rng.gauss(0, STAR_NOISE) + self.drift
        return max(1, min(5, round(value)))

    def prefers(self, a: Config, b: Config) -> bool | None:
        """True: a is better, False: b is, None: the same to this user."""
        self.answers += 1
        if self.rng.random() < LAPSE:
            return self.rng.random() < 0.5
        diff = self.score(a) - self.score(b)
        if abs(diff) < SAME_BELOW:
            return None
        return diff + self.rng.gauss(0, CHOICE_NOISE) > 0


def active(user: SimulatedUser) -> int:
    images: list[TasteImage] = []
    choices: list[tuple[int, int, bool]] = []
    base = dict(user.start)
    while user.answers < MAX_RATINGS:
        model = fit_inputs(TasteInputs(images, choices), None)
        if images:
            base = {**base, **{p.parameter: p.bins[p.best].bin.center for p in model.parameters}}
            if user.score(base) >= WITHIN:
                return user.answers
        suggestion = next_experiment(model)
        runs: list[list[TasteImage]] = []
        for value in suggestion.values:
            config = {**base, suggestion.parameter: value}
            made = [TasteImage(len(images) + i, None, dict(config), [])
                    for i in range(suggestion.images_per_value)]
            images.extend(made)
            runs.append(made)
        if user.scenario.choices:
            for a, b in itertools.combinations(runs, 2):
                for left, right in zip(a, b, strict=True):
                    better = user.prefers(left.params, right.params)
                    won, lost = (left, right) if better in (True, None) else (right, left)
                    choices.append((won.id, lost.id, better is None))
        else:
            for i in range(len(images) - sum(map(len, runs)), len(images)):
                old = images[i]
                images[i] = TasteImage(old.id, user.stars(old.params), old.params, [])
    return MAX_RATINGS


def sweep(user: SimulatedUser) -> int:
    base = dict(user.start)
    for key in itertools.cycle(user.space):
        if user.score(base) >= WITHIN:
            return user.answers
        if user.answers >= MAX_RATINGS:
            return MAX_RATINGS
        if user.scenario.choices:
            for value in user.space[key]:
                if value != base[key]:
                    wins = sum(user.prefers({**base, key: value}, base) is True for _ in range(3))
                    if wins >= 2:
                        base = {**base, key: value}
            continue
        means = {value: statistics.mean(user.stars({**base, key: value}) for _ in range(3))
                 for value in user.space[key]}
        base[key] = max(means, key=lambda v: means[v])
    return MAX_RATINGS


def random_search(user: SimulatedUser) -> int:
    rng = random.Random(user.rng.random())
    best, best_stars = dict(user.start), 0
    while user.answers < MAX_RATINGS:
        config = {k: rng.choice(v) for k, v in user.space.items()}
        if user.scenario.choices:
            if user.prefers(config, best) is True:
                best = config
        else:
            stars = user.stars(config)
            if stars > best_stars:
                best, best_stars = config, stars
        if user.score(best) >= WITHIN:
            return user.answers
    return MAX_RATINGS


STRATEGIES: dict[str, Callable[[SimulatedUser], int]] = {
    "active": active, "sweep": sweep, "random": random_search}


def median_ratings(scenario: Scenario, strategy: Callable[[SimulatedUser], int],
                   seeds: int) -> float:
    return statistics.median(strategy(SimulatedUser(scenario, seed)) for seed in range(seeds))


def fit_time(records: int = 10_000, rounds: int = 5) -> float:
    rng = random.Random(5)
    scenario = SCENARIOS[2]
    user = SimulatedUser(scenario, 1)
    images = []
    for i in range(records):
        config = {k: rng.choice(v) for k, v in scenario.space.items()}
        images.append(TasteImage(i, user.stars(config), config, []))
    choices = [(rng.randrange(records), rng.randrange(records), rng.random() < 0.2)
               for _ in range(1000)]
    inputs = TasteInputs(images, [c for c in choices if c[0] != c[1]])
    best = math.inf
    for _ in range(rounds):
        start = time.perf_counter()
        next_experiment(fit_inputs(inputs, None))
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    args = parser.parse_args()
    worst_sweep = worst_random = 0.0
    for scenario in SCENARIOS:
        medians = {name: median_ratings(scenario, fn, args.seeds)
                   for name, fn in STRATEGIES.items()}
        vs_sweep = medians["active"] / medians["sweep"]
        vs_random = medians["active"] / medians["random"]
        worst_sweep, worst_random = max(worst_sweep, vs_sweep), max(worst_random, vs_random)
        what = "choices" if scenario.choices else "ratings"
        counts = ", ".join(f"{name} {value:g}" for name, value in medians.items())
        print(f"{scenario.name:>16}: median {what} to within 5 % of the best: {counts}; "
              f"active/sweep {vs_sweep:.2f}, active/random {vs_random:.2f}")
    seconds = fit_time()
    print(f"fit + suggest on 10,000 records (and 1,000 choices): {seconds * 1000:.0f} ms")
    print(f"RESULT active_vs_sweep={worst_sweep:.2f} active_vs_random={worst_random:.2f} "
          f"fit_10k_ms={seconds * 1000:.0f}")


if __name__ == "__main__":
    main()
