"""Cluster makespan: StableNew's scheduler vs round-robin vs SwarmUI's policy, through the real
dispatcher against four fake A1111 nodes.

The lab: four nodes at relative speeds 1, 0.7, 0.5, 0.25 with 16/12/8/4 GB and different
model lists (the 8 GB card has no room for SDXL with hires, the 4 GB laptop has no SDXL and no
R-ESRGAN), and 200 mixed items — SD1.5 512², SD1.5 with hires, SDXL 1024², SDXL with hires,
SDXL with a 2× upscale — queued as batches of 10–30 images of one kind, in shuffled order (how
people fill a queue; a batch of big images near the end is what makes a slow card hold up a
fast one under SwarmUI's policy). The nodes run in a separate process (so they
share neither our event loop nor our GIL); each answers after the time its GPU would need:
`unit` seconds per work unit (steps × megapixels, as `stablenew.cluster.work` counts them)
divided by its speed. Images are rendered at most 64 px wide, so the time measured is the
scheduled GPU time rather than PNG encoding on one CPU.

Each policy runs the same 200 items from a fresh queue through `ClusterDispatcher` (the same
workers: one running plus one ready request per node); the makespan is the wall time from the
first item sent to the last one finished. Round-robin hands item k to the next eligible node in
turn; SwarmUI's policy lets a node that frees up take the next queued item it is eligible for
(least used first when several are free). StableNew starts knowing nothing of the nodes' speeds
(it learns them from finished items). The lower bound respects eligibility
(`makespan_lower_bound` with the nodes' true speeds) and ignores every per-image overhead.

Prints `RESULT makespan_vs_lower_bound=<ratio> vs_round_robin=<ratio> vs_least_used=<ratio>`
(StableNew's makespan divided by each); targets <= 1.10 and < 1.0 against both baselines.
Run from the repository root: `.venv/bin/python bench/cluster.py [--unit 0.006] [--items 200]`.
"""

from __future__ import annotations

import os
import sys

# Python puts this script's folder first on sys.path; take it off so a sibling script can never
# shadow a standard module.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

XL = "sd_xl_base_1.0.safetensors"
SD15 = "dreamshaper_8.safetensors"
GB = 1024**3
ALL_UPSCALERS = ("None", "Lanczos", "Nearest", "R-ESRGAN 4x+", "ESRGAN_4x")
#: name, relative speed, VRAM GB, checkpoints, upscalers
LAB = (
    ("rtx4080", 1.0, 16, (XL, SD15), ALL_UPSCALERS),
    ("rtx3060", 0.7, 12, (XL, SD15), ALL_UPSCALERS),
    ("rtx3070", 0.5, 8, (XL, SD15), ALL_UPSCALERS),
    ("laptop", 0.25, 4, (SD15,), ("None", "Lanczos", "Nearest")),
)


# --- the nodes (child process) ---------------------------------------------------------------------


def serve(unit: float) -> None:
    from tests.fakes import sdwebui

    original = sdwebui.render_image

    def small(width: int, height: int, *args, **kwargs) -> bytes:
        return original(min(width, 64), min(height, 64), *args, **kwargs)

    sdwebui.render_image = small

    class TimedNode(sdwebui.FakeSDWebUI):
        """A fake whose generation takes `unit / speed` seconds per work unit of the request."""

        def __init__(self, speed: float, **kw) -> None:
            super().__init__(**kw)
            self.speed = speed

        async def _sample(self, path, kind, req, job, init):
            w, h = req.width or 512, req.height or 512
            steps = req.steps or 20
            units, total_steps = steps * w * h / 1e6, steps
            if kind == "txt2img" and req.enable_hr:
                scale = req.hr_scale or 2.0
                hr_steps = req.hr_second_pass_steps or steps
                units += hr_steps * (w * scale) * (h * scale) / 1e6 * max(
                    req.denoising_strength or 0.5, 0.2)
                total_steps += hr_steps
            # One sleep for the whole job (called under the node's lock, so jobs queue up as
            # on a real GPU); the per-step loop of the fake then runs at zero time per step.
            await asyncio.sleep(unit * units / self.speed)
            self.step_s = 0.0
            return await super()._sample(path, kind, req, job, init)

        async def _extras(self, request):
            req = await self._parse(request)
            w, h = req.upscaling_resize_w or 512, req.upscaling_resize_h or 512
            async with self._lock:
                await asyncio.sleep(unit * 2.0 * w * h / 1e6 / self.speed)
            image = sdwebui._decode_image(req.image)
            import io

            out = io.BytesIO()
            image.save(out, format="PNG", compress_level=1)
            return sdwebui.web.json_response({"html_info": "", "image": sdwebui._b64(out.getvalue())})

    async def main() -> None:
        nodes = []
        for name, speed, vram, checkpoints, upscalers in LAB:
            fake = TimedNode(speed, checkpoints=checkpoints, upscalers=upscalers,
                             vram_total=vram * GB, vram_free=vram * GB)
            await fake.start()
            nodes.append({"name": name, "url": fake.url})
        print(json.dumps(nodes), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


# --- the items ---------------------------------------------------------------------------------------


def jobs(count: int, seed: int = 7) -> list[tuple[str, list]]:
    """The queue: batches (jobs) of 10–30 images of one kind each, as people add them, in a
    shuffled order; `count` images in all, about 45% SD1.5 512², 15% SD1.5 with hires, 25%
    SDXL 1024², 10% SDXL with hires, 5% SDXL with a 2× upscale."""
    from stablenew.pipeline.config import PipelineConfig

    rng = random.Random(seed)
    base = PipelineConfig().with_changes({
        "txt2img.prompt": "a lighthouse at dusk", "txt2img.sampler": "Euler a",
        "txt2img.scheduler": "Automatic", "txt2img.seed": 1})
    shares = {"sd15": 0.45, "sd15_hires": 0.15, "xl": 0.25, "xl_hires": 0.10, "xl_upscale": 0.05}
    batches: list[tuple[str, int]] = []
    for kind, share in shares.items():
        left = round(count * share)
        while left > 0:
            n = min(left, rng.randint(10, 30))
            batches.append((kind, n))
            left -= n
    rng.shuffle(batches)
    out = []
    seed_no = 0
    for kind, n in batches:
        changes: dict = {}
        if kind.startswith("sd15"):
            changes.update({"txt2img.checkpoint": SD15, "txt2img.width": 512,
                            "txt2img.height": 512, "txt2img.steps": 20})
        else:
            changes.update({"txt2img.checkpoint": XL, "txt2img.width": 1024,
                            "txt2img.height": 1024, "txt2img.steps": 25})
        if kind == "sd15_hires":
            changes.update({"txt2img.hires.enabled": True, "txt2img.hires.scale": 2.0,
                            "txt2img.hires.upscaler": "Latent", "txt2img.hires.denoise": 0.5,
                            "txt2img.hires.steps": 10})
        if kind == "xl_hires":
            changes.update({"txt2img.hires.enabled": True, "txt2img.hires.scale": 1.5,
                            "txt2img.hires.upscaler": "R-ESRGAN 4x+", "txt2img.hires.denoise": 0.4,
                            "txt2img.hires.steps": 12})
        if kind == "xl_upscale":
            changes.update({"upscale.enabled": True, "upscale.upscaler": "R-ESRGAN 4x+",
                            "upscale.target_width": 2048, "upscale.target_height": 2048})
        config = base.with_changes(changes)
        images = []
        for _ in range(n):
            images.append(config.with_changes({"txt2img.seed": seed_no}))
            seed_no += 1
        out.append((kind, images))
    return out


# --- one policy's run ---------------------------------------------------------------------------------


async def run_policy(policy: str, nodes, queue, folder: Path) -> tuple[float, dict[str, int]]:
    from stablenew.cluster.dispatcher import ClusterDispatcher
    from stablenew.cluster.jobs import ItemState, JobKind
    from stablenew.cluster.queue_events import ItemFinished, ItemStarted
    from stablenew.cluster.queue_store import QueueStore

    folder.mkdir(parents=True, exist_ok=True)
    store = QueueStore(folder / f"{policy}.db")
    for kind, images in queue:
        store.add_job(images, kind=JobKind.plan, name=kind, output_dir=folder / policy)
    total = sum(len(images) for _, images in queue)
    first: list[float] = []
    last: list[float] = []

    def on_event(event) -> None:
        if isinstance(event, ItemStarted) and not first:
            first.append(time.perf_counter())
        if isinstance(event, ItemFinished) and event.state is ItemState.done:
            last[:] = [time.perf_counter()]

    dispatcher = ClusterDispatcher(store, nodes, policy=policy, health_interval=5.0,
                                   poll_interval=0.05, on_event=on_event,
                                   runner_kwargs={"thumbnails": False})
    summary = await asyncio.wait_for(dispatcher.run(until_empty=True), 300)
    states = {i.state for i in store.reads.items()}
    store.close()
    if summary.done != total or states != {ItemState.done}:
        raise SystemExit(f"{policy}: {summary.done} of {total} done, {summary.failures[:3]}")
    return last[0] - first[0], dict(summary.per_node)


def lower_bound(items, unit: float) -> float:
    from stablenew.backends.types import BackendKind, Capabilities
    from stablenew.cluster.scheduler import NodeView, makespan_lower_bound
    from stablenew.cluster.work import requirements_for

    views = []
    for name, speed, vram, checkpoints, upscalers in LAB:
        caps = Capabilities(kind=BackendKind.a1111, vram_total=vram * GB, checkpoints=checkpoints,
                            upscalers=upscalers, adetailer_models=())
        rate = speed / unit
        views.append(NodeView(name, caps, speeds={c: rate for c in ("small", "medium", "large")}))
    return makespan_lower_bound([requirements_for(c) for c in items], views)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", type=float, default=0.006, help="seconds per work unit at speed 1")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.unit)
        return 0

    # The nodes render at most 64 px: the runner's "size differs" warnings are expected here.
    logging.getLogger("stablenew").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="stablenew-bench-") as tmp:
        os.environ["STABLENEW_HOME"] = str(Path(tmp) / "home")
        from stablenew.cluster.nodes import NodeConfig

        proc = subprocess.Popen([sys.executable, __file__, "--serve", "--unit", str(args.unit)],
                                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout is not None
            nodes = [NodeConfig(name=n["name"], url=n["url"], kind="a1111")
                     for n in json.loads(proc.stdout.readline())]
            queue = jobs(args.items)
            bound = lower_bound([c for _, images in queue for c in images], args.unit)
            # Untimed warm-up: the first images of a process import the image and output
            # code (a few hundred ms on the event loop); no policy should pay that alone.
            asyncio.run(run_policy("least_used", nodes, [(k, images[:2]) for k, images in queue],
                                   Path(tmp) / "warm-up"))
            results = {}
            for policy in ("earliest_finish", "round_robin", "least_used"):
                makespan, per_node = asyncio.run(run_policy(policy, nodes, queue, Path(tmp)))
                results[policy] = makespan
                print(f"{policy:<16} makespan {makespan:6.2f} s  per node {per_node}", flush=True)
        finally:
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
    ours = results["earliest_finish"]
    print(f"lower bound      makespan {bound:6.2f} s (eligibility respected)")
    print(f"RESULT makespan_vs_lower_bound={ours / bound:.3f} "
          f"vs_round_robin={ours / results['round_robin']:.3f} "
          f"vs_least_used={ours / results['least_used']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
