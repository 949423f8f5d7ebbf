"""ETA accuracy: how close the time left the window shows is to the time it really took.

Two measurements against fake A1111 servers (real HTTP on 127.0.0.1, in threads of this
process), whose speed per image varies ±30% (seeded):

1. ETA: 60 images through the persistent queue on one node that starts unmeasured and halves
   its speed after image 30. Every 100 ms the estimate the queue row and the command bar show
   (`QueueEstimates`, read as the queue controller reads it) is compared with the time the
   job really still took: `eta_error` is the median of |ETA − actual left| ÷ actual left over
   the samples after 20% of the images (target <= 0.15). The old estimate (the store's recent
   throughput) is measured alongside.
2. Plan: three nodes of different speeds (1×, 1.6×, 2.8× the time per step). A short first
   batch measures them (as any earlier session would have); the dry-run plan of the next
   45 images (`stablenew plan`, with the speeds kept in node_speeds.json) is compared with
   the makespan the cluster then really needs, from its first image sent to its last one
   saved: `plan_error` = |planned − actual| ÷ actual (target <= 0.25). The plan made with
   the VRAM-based guess alone is printed for contrast.

Prints `RESULT eta_error=<fraction> plan_error=<fraction>`. Time is scaled down (tens of ms
per sampling step); the whole bench takes about half a minute.
Run from the repository root: `.venv/bin/python bench/eta_accuracy.py [--seed 7]`.
"""

# ruff: noqa: E402  (imports follow the sys.path fix below, on purpose)
from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/<name>.py`: put the repo root first, and take bench/ itself off the
# path so a sibling script can never shadow a standard module.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import argparse
import asyncio
import contextlib
import logging
import random
import statistics
import tempfile
import threading
import time

IMAGES = 60
STEPS = 8
STEP_MS = 20.0  # one image ≈ 0.16 s before the slowdown, ≈ 0.32 s after
JITTER = 0.30
PLAN_WARMUP = 24
PLAN_IMAGES = 45
#: Relative time per step of the three nodes of the plan measurement.
LAB = (("fast", 1.0), ("mid", 1.6), ("slow", 2.8))


def config(images: int, seed: int = 1):
    from stablenew.pipeline.config import PipelineConfig

    # 64 px images: encoding PNGs is not what is measured (time comes from steps × delay).
    return PipelineConfig().with_changes({
        "txt2img.prompt": "a lighthouse on a cliff at dusk", "txt2img.steps": STEPS,
        "txt2img.width": 64, "txt2img.height": 64, "txt2img.seed": seed,
        "txt2img.sampler": "Euler a", "txt2img.scheduler": "Automatic",
        "txt2img.batch_count": images})


class Pace:
    """The fake's time factor per generation: ±JITTER (seeded), ×*slowdown* after *after*."""

    def __init__(self, seed: int, *, after: int | None = None, slowdown: float = 2.0) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._after = after
        self._slowdown = slowdown
        self.count = 0

    def __call__(self) -> float:
        with self._lock:
            self.count += 1
            factor = self._rng.uniform(1 - JITTER, 1 + JITTER)
            if self._after is not None and self.count > self._after:
                factor *= self._slowdown
            return factor


# --- 1. the ETA of a run whose node slows down --------------------------------------------------------


Sample = tuple[float, float | None, float | None, int]  # time, our ETA, the old ETA, images done


async def eta_run(url: str, folder: Path) -> tuple[list[Sample], float]:
    from stablenew.backends.connect import connect
    from stablenew.cluster.estimates import QueueEstimates
    from stablenew.cluster.jobs import ItemState
    from stablenew.cluster.queue_events import ItemFinished
    from stablenew.cluster.queue_runner import QueueRunner
    from stablenew.cluster.queue_store import QueueStore

    store = QueueStore(folder / "eta.db")
    job = store.add_job(config(IMAGES), name="eta", output_dir=folder / "eta")
    estimates = QueueEstimates()  # a node never measured: the first image teaches it
    finished: list[float] = []

    def on_event(event) -> None:
        estimates.on_queue_event(event)
        if isinstance(event, ItemFinished) and event.state is ItemState.done:
            finished.append(time.monotonic())

    backend = await connect(url, kind="a1111")
    samples: list[Sample] = []
    runner = QueueRunner(store, backend, node="bench", on_event=on_event, thumbnails=False)
    run = asyncio.ensure_future(runner.run(until_empty=True))
    try:
        while not run.done():
            # As the queue controller reads its snapshot: off the loop, then the rows' figure.
            jobs = await asyncio.to_thread(estimates.read_jobs, store)
            ours = next(j for j in jobs if j.id == job.id)
            old = await asyncio.to_thread(lambda: next(
                j for j in store.reads.list_jobs() if j.id == job.id).eta_seconds)
            samples.append((time.monotonic(), ours.eta_seconds, old, len(finished)))
            await asyncio.wait((run,), timeout=0.1)
        await run
    finally:
        await backend.aclose()
        store.close()
    if len(finished) != IMAGES:
        raise SystemExit(f"the run made {len(finished)} of {IMAGES} images")
    return samples, finished[-1]


def errors(samples, end: float, *, which: int, after: int) -> list[float]:
    out = []
    for sample in samples:
        t, done, estimate = sample[0], sample[3], sample[which]
        actual = end - t
        if done >= after and actual > 0:
            out.append(abs((estimate if estimate is not None else 0.0) - actual) / actual)
    return out


# --- 2. the dry-run plan over three nodes ---------------------------------------------------------------


async def cluster_run(store, nodes, speeds_path: Path, estimates) -> tuple[float, dict[str, int]]:
    from stablenew.cluster.dispatcher import ClusterDispatcher
    from stablenew.cluster.estimates import load_speeds, save_speeds
    from stablenew.cluster.jobs import ItemState
    from stablenew.cluster.queue_events import ItemFinished, ItemStarted

    first: list[float] = []
    last: list[float] = []

    def on_event(event) -> None:
        estimates.on_queue_event(event)
        if isinstance(event, ItemStarted) and not first:
            first.append(time.monotonic())
        if isinstance(event, ItemFinished) and event.state is ItemState.done:
            last[:] = [time.monotonic()]

    dispatcher = ClusterDispatcher(store, nodes, speeds=load_speeds(speeds_path),
                                   health_interval=5.0, poll_interval=0.05, on_event=on_event,
                                   runner_kwargs={"thumbnails": False})
    summary = await asyncio.wait_for(dispatcher.run(until_empty=True), 120)
    # What the app keeps when a cluster run ends: the dispatcher's and the queue's speeds.
    save_speeds(speeds_path, dispatcher.speeds())
    await asyncio.to_thread(estimates.read_jobs, store)
    estimates.save()
    if summary.failed:
        raise SystemExit(f"the cluster failed images: {summary.failures[:3]}")
    # From the first image sent: the nodes' probe at start-up is a fixed cost that the time
    # scale of this bench (20 ms steps) would blow up several times over.
    return last[0] - first[0], dict(summary.per_node)


async def planned(store, nodes, speeds_path: Path) -> float:
    """`stablenew plan`: probe the nodes, plan with the speeds kept on disk, send nothing."""
    from stablenew.cluster.dispatcher import ClusterDispatcher
    from stablenew.cluster.dry_run import dry_run
    from stablenew.cluster.estimates import load_speeds
    from stablenew.cluster.health import NodeMonitor

    monitor = NodeMonitor(nodes)
    try:
        await monitor.check_all()
    finally:
        await monitor.aclose()
    views = ClusterDispatcher(store, monitor, speeds=load_speeds(speeds_path)).views()
    return dry_run(store, views).makespan


async def plan_measurement(urls: dict[str, str], folder: Path) -> tuple[float, float, float, dict]:
    from stablenew.cluster.estimates import QueueEstimates, speeds_file
    from stablenew.cluster.nodes import NodeConfig
    from stablenew.cluster.queue_store import QueueStore

    nodes = [NodeConfig(name=name, url=url, kind="a1111") for name, url in urls.items()]
    speeds_path = speeds_file(folder)
    store = QueueStore(folder / "plan.db")
    estimates = QueueEstimates(path=speeds_path)
    try:
        with QueueStore(folder / "guess.db") as guess:  # nothing measured yet: VRAM guesses
            guess.add_job(config(PLAN_IMAGES, seed=5), name="plan", output_dir=folder / "plan")
            guessed = await planned(guess, nodes, speeds_path)
        # An earlier batch measured the nodes (its speeds are kept in node_speeds.json).
        store.add_job(config(PLAN_WARMUP, seed=3), name="warm-up", output_dir=folder / "warm")
        await cluster_run(store, nodes, speeds_path, estimates)
        store.clear_finished()
        store.add_job(config(PLAN_IMAGES, seed=5), name="plan", output_dir=folder / "plan")
        plan = await planned(store, nodes, speeds_path)
        actual, per_node = await cluster_run(store, nodes, speeds_path, estimates)
    finally:
        store.close()
    return plan, guessed, actual, per_node


# --- main -------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    # The client cancels its progress poll when a job ends; the fake's aiohttp logs each
    # dropped poll as an error, which is noise here.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    from tests.fakes.sdwebui import FakeSDWebUI

    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pace = Pace(args.seed, after=IMAGES // 2)
        fake = FakeSDWebUI(step_ms=STEP_MS, pace=pace)
        with fake.running_in_thread():
            samples, end = asyncio.run(eta_run(fake.url, folder))
        after = IMAGES // 5
        ours = errors(samples, end, which=1, after=after)
        old = errors(samples, end, which=2, after=after)
        before_change = errors([s for s in samples if s[3] < IMAGES // 2], end, which=1, after=after)
        after_change = errors([s for s in samples if s[3] >= IMAGES // 2 + 3], end, which=1,
                              after=after)
        eta_error = statistics.median(ours)
        print(f"ETA: {IMAGES} images, {STEPS} steps of {STEP_MS:g} ms ±{JITTER:.0%}, speed halves "
              f"after image {IMAGES // 2}; run took {end - samples[0][0]:.1f} s, "
              f"{len(ours)} samples after {after} images")
        print(f"  median |ETA error|: {eta_error:.3f} (old queue-row estimate "
              f"{statistics.median(old):.3f}); before the slowdown {statistics.median(before_change):.3f}"
              f" (it cannot be foreseen), from 3 images after it {statistics.median(after_change):.3f}")

        fakes = [FakeSDWebUI(step_ms=STEP_MS * factor, pace=Pace(args.seed + k))
                 for k, (_, factor) in enumerate(LAB)]
        with contextlib.ExitStack() as stack:
            for f in fakes:
                stack.enter_context(f.running_in_thread())
            urls = {name: f.url for (name, _), f in zip(LAB, fakes, strict=True)}
            plan, guessed, actual, per_node = asyncio.run(plan_measurement(urls, folder / "plan"))
        plan_error = abs(plan - actual) / actual
        print(f"Plan: {PLAN_IMAGES} images on 3 nodes ({', '.join(f'{n} {f:g}×' for n, f in LAB)} "
              f"the time per step), measured by a first batch of {PLAN_WARMUP}")
        print(f"  planned {plan:.2f} s, took {actual:.2f} s (per node {per_node}): error "
              f"{plan_error:.3f}; planned from VRAM guesses alone {guessed:.2f} s "
              f"(error {abs(guessed - actual) / actual:.2f})")
    print(f"bench took {time.monotonic() - began:.1f} s")
    print(f"RESULT eta_error={eta_error:.3f} plan_error={plan_error:.3f} "
          f"old_eta_error={statistics.median(old):.3f}")


if __name__ == "__main__":
    main()
