"""Benchmark: insights over 100,000 learning records vs a bare GROUP BY on the same table.

Fills a fresh learning database (in a temporary folder) with synthetic rated records spread
over packs, steps, CFG, samplers and schedulers (4 % of them in 100 learning runs), then
times building the full insights (every parameter, per pack and overall, with intervals,
summaries, tag advice and the learning runs' fair comparisons) against
the cheapest useful query on the records table: `SELECT pack, COUNT(rating), AVG(rating)
FROM learning_records GROUP BY pack`. Both are timed warm, best of several rounds.

Run from the repo root: `.venv/bin/python bench/learning.py [--records N]`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Python puts this script's folder first on sys.path; take it off so a sibling script can
# never shadow a standard module, and import from the repo root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from stablenew.learning.insights import insights_for  # noqa: E402
from stablenew.learning.records import LearningRecord, config_hash  # noqa: E402
from stablenew.learning.store import LearningStore  # noqa: E402
from stablenew.pipeline.config import PipelineConfig  # noqa: E402

PACKS = ("Portraits", "Landscapes", "Anime", "Product shots", "")
STEPS = (15, 20, 25, 30, 35)
CFGS = (4.0, 5.5, 7.0, 8.5, 10.0)
SAMPLERS = ("DPM++ 2M", "Euler a", "Euler", "DDIM")
SCHEDULERS = ("Karras", "Automatic", "Exponential")
TAGS = ("too noisy", "too smooth", "blurry", "bad hands", "great")


def synthetic(n: int, rng: random.Random) -> list[LearningRecord]:
    # A few hundred distinct configs reused across records (as real runs repeat settings);
    # the seed, pack, rating and tags differ per record.
    configs = {}
    base = PipelineConfig().with_changes({"txt2img.prompt": "a portrait, soft light, 85mm"})
    for steps in STEPS:
        for cfg in CFGS:
            for sampler in SAMPLERS:
                for scheduler in SCHEDULERS:
                    config = base.with_changes({"txt2img.steps": steps, "txt2img.cfg_scale": cfg,
                                                "txt2img.sampler": sampler,
                                                "txt2img.scheduler": scheduler})
                    configs[(steps, cfg, sampler, scheduler)] = (config, config_hash(config))
    keys = list(configs)
    out = []
    for i in range(n):
        key = rng.choice(keys)
        config, digest = configs[key]
        steps, cfg = key[0], key[1]
        mean = 2.2 + (steps - 15) / 10 + (1.0 - abs(cfg - 7.0) / 4)
        rating = max(1, min(5, round(rng.gauss(mean, 0.9)))) if rng.random() < 0.7 else None
        tags = (rng.choice(TAGS),) if rng.random() < 0.1 else ()
        out.append(LearningRecord(
            record_key=f"bench-{i // 100}:{i % 100}", run_id=f"bench-{i // 100}",
            image_index=i % 100, config=config, config_hash=digest, seed=i, stages=("txt2img",),
            node="node-a", node_kind="a1111", path=f"out/bench-{i // 100}/{i % 100:05d}.png",
            pack=PACKS[i % len(PACKS)] or None, rating=rating, tags=tags,
            # Every 25th image belongs to one of 100 learning runs on steps (4 % of all).
            learning_run_id=f"learn-{i % 100}" if i % 25 == 0 else None,
            created_at=1_700_000_000.0 + i, updated_at=1_700_000_000.0 + i))
    return out


def best_ms(fn, rounds: int) -> float:
    fn()  # warm: pages cached, statements prepared
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return min(times), statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(20261121)
    with tempfile.TemporaryDirectory() as folder:
        store = LearningStore(Path(folder) / "stablenew.db")
        start = time.perf_counter()
        records = synthetic(args.records, rng)
        made_s = time.perf_counter() - start
        start = time.perf_counter()
        store.add_records(records)
        for run in range(100):
            store.save_run(f"learn-{run}", pack=None, parameter="steps", status="completed",
                           result={})
        insert_s = time.perf_counter() - start
        summary = store.summary()
        print(f"records: {summary.records} ({summary.rated} rated) in {len(summary.packs)} packs; "
              f"built in {made_s:.1f} s, stored in {insert_s:.1f} s "
              f"({summary.records / insert_s:,.0f} records/s, aggregates kept by triggers)")

        def insights_all() -> None:
            insights_for(store, None)
            for pack in summary.packs:
                insights_for(store, pack)

        def baseline() -> None:
            store.execute("SELECT pack, COUNT(rating), AVG(rating) FROM learning_records "
                          "GROUP BY pack")

        def from_scratch() -> None:
            store.stats_from_scratch(None)

        insights_best, insights_median = best_ms(insights_all, args.rounds)
        base_best, base_median = best_ms(baseline, args.rounds)
        scratch_best, _ = best_ms(from_scratch, 3)
        check = sorted((s.param, s.value, s.n, s.total) for s in store.stats())
        truth = sorted((s.param, s.value, s.n, s.total) for s in store.stats_from_scratch())
        if check != truth:
            print("ERROR: trigger-kept aggregates differ from a full GROUP BY", file=sys.stderr)
            return 1
        steps = insights_for(store, "Portraits").parameter("steps")
        print(f"insights (overall + {len(summary.packs)} packs): best {insights_best:.2f} ms, "
              f"median {insights_median:.2f} ms")
        print(f"baseline GROUP BY pack: best {base_best:.2f} ms, median {base_median:.2f} ms")
        print(f"for reference, one full GROUP BY over parameters x records: {scratch_best:.1f} ms")
        print(f"sample: {steps.summary if steps else 'no steps insight'}")
        store.close()
    ratio = insights_median / base_median
    print(f"RESULT insights_ms={insights_median:.2f} insights_ratio={ratio:.3f} "
          f"baseline_ms={base_median:.2f} records={args.records}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
