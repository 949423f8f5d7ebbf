"""Dispatch overhead: StableNew's runner against a bare httpx loop, same server, same payloads.

The fake A1111 server (its own process) spends no time per step, so everything that is not
the server's own rendering shows: the runner's metadata, thumbnails, records and events
against a loop that only posts, decodes and writes the PNGs.
Prints `RESULT dispatch_ratio=<runner images/s / bare images/s>` (target >= 0.95).
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
import base64  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from tests.fakes.sdwebui import serving_in_process  # noqa: E402

IMAGES = 200
CHUNKS = 8


def _config():
    from stablenew.pipeline.config import PipelineConfig

    return PipelineConfig().with_changes({
        "txt2img.prompt": "a lighthouse on a cliff, stormy sea, dramatic light",
        "txt2img.negative_prompt": "blurry, lowres", "txt2img.width": 512,
        "txt2img.height": 512, "txt2img.steps": 20, "txt2img.seed": 1234,
        "txt2img.batch_count": 1})


async def bare_loop(url: str, out: Path, count: int) -> float:
    """Post the runner's own payloads one after another; decode and write each PNG."""
    import httpx

    from stablenew.backends.a1111_payloads import txt2img_payload
    from stablenew.backends.types import BackendKind
    from stablenew.pipeline.stages import txt2img_job

    config = _config()
    out.mkdir(parents=True, exist_ok=True)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        started = time.perf_counter()
        for i in range(count):
            job = txt2img_job(config, 1234 + i, f"task({uuid.uuid4().hex})")
            reply = await client.post("/sdapi/v1/txt2img",
                                      json=txt2img_payload(job, BackendKind.a1111))
            reply.raise_for_status()
            data = base64.b64decode(reply.json()["images"][0])
            (out / f"{i:04d}.png").write_bytes(data)
        return count / (time.perf_counter() - started)


async def stablenew_runner(url: str, out: Path, count: int) -> float:
    from stablenew.backends.connect import connect
    from stablenew.pipeline.cancel import CancelToken
    from stablenew.pipeline.events import RunStatus
    from stablenew.pipeline.runner import PipelineRunner

    # A config holds at most 100 batches: more images are several runs back to back.
    sizes = [min(100, count - start) for start in range(0, count, 100)]
    records: list = []
    events: list = []
    backend = await connect(url, kind="a1111")
    try:
        runner = PipelineRunner(out, record_hooks=[records.append], log_dir=out / "logs",
                                thumbnails=True)
        started = time.perf_counter()
        for size in sizes:
            config = _config().with_changes({"txt2img.batch_count": size})
            result = await runner.run(config, backend, CancelToken(), events.append)
            if result.status is not RunStatus.completed:
                raise SystemExit(f"the runner did not complete: {result.status} {result.message}")
        seconds = time.perf_counter() - started
    finally:
        await backend.aclose()
    if len(records) != count:
        raise SystemExit(f"the runner saved {len(records)} of {count} images")
    return count / seconds


async def main() -> None:
    with serving_in_process(0, cwd=str(ROOT)) as url, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Warm both paths (imports, connection pools, the server's first render).
        await bare_loop(url, root / "warm-bare", 5)
        await stablenew_runner(url, root / "warm-sn", 5)
        # 200 images each, in 8 interleaved chunks so load from elsewhere on the machine
        # falls on both sides alike; throughput is total images over total time.
        chunk = IMAGES // CHUNKS
        bare_s = ours_s = 0.0
        for c in range(CHUNKS):
            bare_s += chunk / await bare_loop(url, root / f"bare{c}", chunk)
            ours_s += chunk / await stablenew_runner(url, root / f"sn{c}", chunk)
    bare, ours = IMAGES / bare_s, IMAGES / ours_s
    ratio = ours / bare
    print(f"bare httpx loop : {bare:7.1f} images/s")
    print(f"StableNew runner: {ours:7.1f} images/s (metadata, thumbnails, records, events, run log)")
    print(f"RESULT dispatch_ratio={ratio:.3f} bare_ips={bare:.1f} stablenew_ips={ours:.1f} "
          f"images={IMAGES}")


if __name__ == "__main__":
    asyncio.run(main())
