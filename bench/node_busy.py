"""Node busy fraction: how much of a run's wall time the server spends generating.

The fake A1111 server (its own thread and event loop) takes 200 ms per image (20 steps of
10 ms); StableNew's runner makes 50 images of 512x512 with metadata, thumbnails, records
and events. Prints `RESULT node_busy=<server generating seconds / run wall seconds>`
(target >= 0.98: the next request is always waiting, so the server never idles on us).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python bench/<name>.py`: put the repo root first, and take bench/ itself off the
# path so a sibling script can never shadow a standard module.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import asyncio  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

IMAGES = 50
STEPS = 20
STEP_MS = 10.0


async def run(url: str, out: Path) -> tuple[float, int]:
    from stablenew.backends.connect import connect
    from stablenew.pipeline.cancel import CancelToken
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.pipeline.events import RunStatus
    from stablenew.pipeline.runner import PipelineRunner

    config = PipelineConfig().with_changes({
        "txt2img.prompt": "a lighthouse on a cliff, stormy sea, dramatic light",
        "txt2img.width": 512, "txt2img.height": 512, "txt2img.steps": STEPS,
        "txt2img.seed": 99, "txt2img.batch_count": IMAGES})
    records: list = []
    events: list = []
    backend = await connect(url, kind="a1111")
    try:
        runner = PipelineRunner(out, record_hooks=[records.append], log_dir=out / "logs")
        started = time.perf_counter()
        result = await runner.run(config, backend, CancelToken(), events.append)
        wall = time.perf_counter() - started
    finally:
        await backend.aclose()
    if result.status is not RunStatus.completed:
        raise SystemExit(f"the run did not complete: {result.status} {result.message}")
    return wall, len(records)


def main() -> None:
    import logging

    from tests.fakes.sdwebui import FakeSDWebUI

    # The client cancels its progress poll when a job ends; the fake's aiohttp logs each
    # dropped poll as an error, which is noise here.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)

    fake = FakeSDWebUI(step_ms=STEP_MS)
    with fake.running_in_thread(), tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(fake.url, Path(tmp) / "warm"))  # imports, pools, first render
        fake.busy_intervals.clear()
        wall, saved = asyncio.run(run(fake.url, Path(tmp) / "run"))
        busy = fake.busy_seconds
        gaps = [b[0] - a[1] for a, b in zip(fake.busy_intervals, fake.busy_intervals[1:],
                                            strict=False)]
    fraction = busy / wall
    print(f"{saved} images in {wall:.2f} s; server generating {busy:.2f} s; "
          f"largest gap between jobs {max(gaps, default=0) * 1000:.1f} ms")
    print(f"RESULT node_busy={fraction:.3f} wall_s={wall:.2f} busy_s={busy:.2f} images={saved}")


if __name__ == "__main__":
    main()
