"""Queue overhead: 1,000 images through the persistent queue vs the bare PipelineRunner.

Both paths render the same 1,000 images (64×64, zero time per step) on the fake A1111
server, which runs in its own process so it shares neither our event loop nor our GIL. The
bare runner gets its best case: ten runs of 100 images. The queue stores 1,000 work items in
SQLite (WAL), claims each in a transaction, marks it running and done, and writes each image
under its deterministic name — everything a crash-safe overnight batch does. A third figure
is the runner as the app used it before the queue, one run per image. The three are measured
in rounds of rotating order (1,000 images each in all) so machine load hits all alike.

Prints `RESULT queue_overhead_ratio=<queue throughput ÷ bare runner throughput>`; target >= 0.9.
Run from the repository root: `.venv/bin/python bench/queue_overhead.py [--images 1000]`.
"""

# ruff: noqa: E402  (imports follow the sys.path fix below, on purpose)
from __future__ import annotations

import os
import sys

# This file is called queue.py, and Python puts its folder first on sys.path: without this,
# `import queue` anywhere (concurrent.futures does it) would find this script, not the stdlib.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stablenew.backends.connect import connect
from stablenew.cluster.jobs import per_image_configs
from stablenew.cluster.queue_runner import QueueRunner
from stablenew.cluster.queue_store import QueueStore
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.runner import PipelineRunner
from tests.fakes.sdwebui import serving_in_process

BATCH = 100


def config(count: int) -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.prompt": "a lighthouse on a cliff at dusk", "txt2img.steps": 4,
        "txt2img.width": 64, "txt2img.height": 64, "txt2img.seed": 1,
        "txt2img.sampler": "Euler a", "txt2img.scheduler": "Automatic",
        "txt2img.batch_count": count})


async def bare(backend, images: int, out: Path) -> float:
    runner = PipelineRunner(out)
    started = time.perf_counter()
    left = images
    while left:
        n = min(BATCH, left)
        result = await runner.run(config(n), backend, CancelToken(), output_dir=out / "bare")
        assert len(result.records) == n, result.message
        left -= n
    return time.perf_counter() - started


async def queued(store: QueueStore, backend, images: int, out: Path) -> float:
    # Adding is part of the queue's cost: the items are inserted in one transaction.
    started = time.perf_counter()
    store.add_job(config(1), count=images, output_dir=out / "queued")
    summary = await QueueRunner(store, backend, node="fake").run(until_empty=True)
    seconds = time.perf_counter() - started
    assert summary.done == images, summary
    return seconds


async def single_runs(backend, images: int, out: Path) -> float:
    """The runner as the app used it before the queue: one run per image, one after another."""
    runner = PipelineRunner(out)
    started = time.perf_counter()
    for index, cfg in enumerate(per_image_configs(config(1), count=images)):
        result = await runner.run(cfg, backend, CancelToken(), output_dir=out / "single",
                                  name_prefix=f"img-{index:05d}")
        assert len(result.records) == 1, result.message
    return time.perf_counter() - started


async def measure(url: str, images: int, rounds: int, out: Path) -> tuple[float, float, float]:
    """Total seconds (bare batches, queue, single runs), measured in rounds whose order
    rotates, so that load from other programs on the machine falls on all sides alike."""
    backend = await connect(url, kind="a1111")
    try:
        await bare(backend, 20, out / "warm")  # caches, imports, the connection
        totals = [0.0, 0.0, 0.0]
        with QueueStore(out / "queue.db") as store:
            share = [images // rounds + (1 if r < images % rounds else 0) for r in range(rounds)]
            for r, n in enumerate(share):
                sides = [
                    (0, lambda n=n, r=r: bare(backend, n, out / f"b{r}")),
                    (1, lambda n=n, r=r: queued(store, backend, n, out / f"q{r}")),
                    (2, lambda n=n, r=r: single_runs(backend, n, out / f"s{r}")),
                ]
                shift = r % 3
                for side, run in sides[shift:] + sides[:shift]:
                    totals[side] += await run()
            assert len(store.reads.items()) == images
        return totals[0], totals[1], totals[2]
    finally:
        await backend.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with serving_in_process(0, cwd=str(ROOT)) as url, tempfile.TemporaryDirectory() as tmp:
        t_bare, t_queue, t_single = asyncio.run(
            measure(url, args.images, args.rounds, Path(tmp)))
    bare_rate, queue_rate = args.images / t_bare, args.images / t_queue
    single_rate = args.images / t_single
    ratio = queue_rate / bare_rate
    print(f"bare runner, batches of {BATCH}: {args.images} images in {t_bare:.2f} s "
          f"({bare_rate:.0f}/s)")
    print(f"bare runner, one run per image: {args.images} images in {t_single:.2f} s "
          f"({single_rate:.0f}/s)")
    print(f"queue (crash-safe, per-image items): {args.images} images in {t_queue:.2f} s "
          f"({queue_rate:.0f}/s)")
    print(f"RESULT queue_overhead_ratio={ratio:.3f} vs_single_runs={queue_rate / single_rate:.3f} "
          f"bare_images_per_s={bare_rate:.1f} queue_images_per_s={queue_rate:.1f}")


if __name__ == "__main__":
    main()
