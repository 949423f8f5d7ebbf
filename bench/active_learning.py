"""Benchmark: does "next experiment" find a user's favourite settings with fewer ratings?

A simulated user has a hidden taste over four settings (steps, CFG, sampler, scheduler): a
peak in steps and in CFG at a place drawn per seed, a liked and a disliked sampler and
scheduler, and an interaction (Euler a wants a lower CFG). Stars are that taste plus noise
(0.7 star) plus a slow drift of the whole scale over the evening, rounded to 1–5.

Three ways to look for good settings, each starting from the defaults, each rating images:
- active: the taste model's next experiment (a 9-image learning run, 3 seeds × 3 values) on
  the current best settings, which then take the model's best value of every setting;
- sweep: one setting at a time, all 5 values × 3 seeds, keep the best mean, next setting;
- random: random settings, one image each, keep the best-rated one seen so far.
Counted: ratings until the kept settings are within 5 % of the best possible (the taste
scaled 0–1 over all 500 combinations); median over the seeds (capped at MAX_RATINGS).

Also timed: fitting the model and suggesting on 10,000 records (goal < 500 ms).

Run from the repo root: `.venv/bin/python bench/active_learning.py [--seeds 50]`.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from stablenew.learning.store import TasteImage, TasteInputs  # noqa: E402
from stablenew.learning.suggest import next_experiment  # noqa: E402
from stablenew.learning.taste import fit_inputs  # noqa: E402

SPACE: dict[str, tuple[str, ...]] = {
    "steps": ("15", "20", "25", "30", "35"),
    "cfg": ("4", "5.5", "7", "8.5", "10"),
    "sampler": ("DPM++ 2M", "Euler a", "Euler", "DPM++ SDE", "DDIM"),
    "scheduler": ("Automatic", "Karras", "Exponential", "SGM Uniform"),
}
START = {"steps": "20", "cfg": "7", "sampler": "DPM++ 2M", "scheduler": "Automatic"}
MAX_RATINGS = 400
WITHIN = 0.95

Config = dict[str, str]


class SimulatedUser:
    """A hidden taste, noisy stars and a drifting scale (seeded)."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.rng = random.Random(seed + 10_000)
        self.best_steps = rng.uniform(15, 35)
        self.best_cfg = rng.uniform(4, 10)
        self.sampler = {s: rng.uniform(-0.6, 0.6) for s in SPACE["sampler"]}
        self.scheduler = {s: rng.uniform(-0.4, 0.4) for s in SPACE["scheduler"]}
        self.drift = 0.0
        values = [self.taste(dict(zip(SPACE, combo, strict=True)))
                  for combo in itertools.product(*SPACE.values())]
        self.low, self.high = min(values), max(values)

    def taste(self, config: Config) -> float:
        cfg, steps = float(config["cfg"]), float(config["steps"])
        peak = self.best_cfg - (1.5 if config["sampler"] == "Euler a" else 0.0)
        return (-((cfg - peak) / 3.0) ** 2 - ((steps - self.best_steps) / 12.0) ** 2
                + self.sampler[config["sampler"]] + self.scheduler[config["scheduler"]])

    def score(self, config: Config) -> float:
        """0 for the worst combination, 1 for the best."""
        return (self.taste(config) - self.low) / (self.high - self.low)

    def stars(self, config: Config) -> int:
        self.drift = max(-0.5, min(0.5, self.drift + self.rng.gauss(0, 0.03)))
        value = 1 + 4 * self.score(config) + self.rng.gauss(0, 0.7) + self.drift
        return max(1, min(5, round(value)))


def active(user: SimulatedUser) -> int:
    images: list[TasteImage] = []
    base = dict(START)
    while len(images) < MAX_RATINGS:
        model = fit_inputs(TasteInputs(images, []), None)
        if images:
            base = {**base, **{p.parameter: p.bins[p.best].bin.center for p in model.parameters}}
            if user.score(base) >= WITHIN:
                return len(images)
        suggestion = next_experiment(model)
        for value in suggestion.values:
            config = {**base, suggestion.parameter: value}
            for _seed in range(suggestion.images_per_value):
                images.append(TasteImage(len(images), user.stars(config), dict(config), []))
    return MAX_RATINGS


def sweep(user: SimulatedUser) -> int:
    base, rated = dict(START), 0
    for key in itertools.cycle(SPACE):
        if user.score(base) >= WITHIN:
            return rated
        if rated >= MAX_RATINGS:
            return MAX_RATINGS
        means = {}
        for value in SPACE[key]:
            stars = [user.stars({**base, key: value}) for _ in range(3)]
            rated += 3
            means[value] = sum(stars) / 3
        base[key] = max(means, key=lambda v: means[v])
    return MAX_RATINGS


def random_search(user: SimulatedUser) -> int:
    rng = random.Random(user.rng.random())
    best, best_stars = dict(START), 0
    for rated in range(1, MAX_RATINGS + 1):
        config = {k: rng.choice(v) for k, v in SPACE.items()}
        stars = user.stars(config)
        if stars > best_stars:
            best, best_stars = config, stars
        if user.score(best) >= WITHIN:
            return rated
    return MAX_RATINGS


def median_ratings(strategy: Callable[[SimulatedUser], int], seeds: int) -> float:
    return statistics.median(strategy(SimulatedUser(seed)) for seed in range(seeds))


def fit_time(records: int = 10_000, rounds: int = 5) -> float:
    rng = random.Random(5)
    user = SimulatedUser(1)
    images = []
    for i in range(records):
        config = {k: rng.choice(v) for k, v in SPACE.items()}
        images.append(TasteImage(i, user.stars(config), config, []))
    choices = [(rng.randrange(records), rng.randrange(records), rng.random() < 0.2)
               for _ in range(1000)]
    inputs = TasteInputs(images, [c for c in choices if c[0] != c[1]])
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        next_experiment(fit_inputs(inputs, None))
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    args = parser.parse_args()
    medians = {name: median_ratings(fn, args.seeds) for name, fn in
               (("active", active), ("sweep", sweep), ("random", random_search))}
    for name, value in medians.items():
        print(f"{name:>7}: median {value:g} ratings to within 5 % of the best settings")
    seconds = fit_time()
    print(f"fit + suggest on 10,000 records (and 1,000 choices): {seconds * 1000:.0f} ms")
    print(f"RESULT active_vs_sweep={medians['active'] / medians['sweep']:.2f} "
          f"active_vs_random={medians['active'] / medians['random']:.2f} "
          f"fit_10k_ms={seconds * 1000:.0f}")


if __name__ == "__main__":
    main()
