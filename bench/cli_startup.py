"""CLI start-up: from launching `stablenew run CONFIG --node URL` to the server receiving its
txt2img request, against a direct client (a fresh interpreter that imports httpx and posts the
same request) measured in the same run. Best of 7 each, interleaved, bytecode cached.

A second baseline, the floor, is the least any client built on our stack pays: a fresh
interpreter that reads a small config from YAML, validates it with a pydantic model and posts
it with httpx's asyncio client (no probe of the server, no queue, no settings). What
`stablenew run` costs beyond the floor is ours to cut; the floor itself is not.

The fake A1111 serves from a thread of this process and notes when each request arrives; both
processes are timed from just before they are spawned.

    .venv/bin/python bench/cli_startup.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
ROUNDS = 7
TXT2IMG = "/sdapi/v1/txt2img"
#: The environment the bench was started in: importing stablenew below sets variables of its
#: own (PYDANTIC_DISABLE_PLUGINS), which must not reach the baselines' processes.
ENVIRON = dict(os.environ)

_DIRECT = r"""
import sys, httpx
httpx.post(sys.argv[1] + "/sdapi/v1/txt2img", json={"prompt": "a fox", "steps": 1, "width": 64,
           "height": 64}, timeout=30)
"""

_FLOOR = r"""
import asyncio, sys
import httpx, yaml
from pydantic import BaseModel, Field


class Txt2Img(BaseModel):
    prompt: str = ""
    steps: int = Field(20, ge=1, le=150)
    width: int = Field(512, ge=64, le=4096)
    height: int = Field(512, ge=64, le=4096)


class Config(BaseModel):
    txt2img: Txt2Img = Txt2Img()


config = Config.model_validate(yaml.safe_load(
    "txt2img: {prompt: a fox, steps: 1, width: 64, height: 64}"))


async def main():
    async with httpx.AsyncClient() as client:
        await client.post(sys.argv[1] + "/sdapi/v1/txt2img", json=config.txt2img.model_dump(),
                          timeout=30)

asyncio.run(main())
"""


def _first_request(fake, args: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning *args* to the fake receiving a txt2img request; the process is
    then left to finish."""
    before = len(fake.requests_to(TXT2IMG))
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while len(fake.requests_to(TXT2IMG)) == before:
            if proc.poll() is not None and len(fake.requests_to(TXT2IMG)) == before:
                raise RuntimeError(f"{args[2:4]} ended without a request (exit {proc.returncode})")
            time.sleep(0.0005)
        return time.perf_counter() - started
    finally:
        proc.wait(timeout=60)


def main() -> None:
    from stablenew.pipeline.config import PipelineConfig
    from tests.fakes.sdwebui import FakeSDWebUI

    with tempfile.TemporaryDirectory() as tmp, FakeSDWebUI(step_ms=0).running_in_thread() as fake:
        home = Path(tmp) / "home"
        config = Path(tmp) / "one.yaml"
        config.write_text(PipelineConfig().with_changes({
            "txt2img.prompt": "a fox", "txt2img.steps": 1, "txt2img.width": 64,
            "txt2img.height": 64, "txt2img.seed": 1}).to_yaml(), encoding="utf-8")
        env = {**ENVIRON, "STABLENEW_HOME": str(home), "PYTHONPATH": str(ROOT)}
        # A user's Python caches bytecode (pip compiles an installed package); without that,
        # every launch here compiled our ~70 modules again (a quarter of the time), which no
        # user pays after the first start. The warm-up launch below writes the cache.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cli = [sys.executable, "-m", "stablenew", "run", str(config), "--node", fake.url,
               "--kind", "a1111", "--out", str(Path(tmp) / "out"), "--quiet"]
        direct = [sys.executable, "-c", _DIRECT, fake.url]
        floor = [sys.executable, "-c", _FLOOR, fake.url]
        for args in (cli, direct, floor):  # bytecode and the OS file cache, for all three
            _first_request(fake, args, env)
        ours, theirs, floors = [], [], []
        for _ in range(ROUNDS):
            ours.append(_first_request(fake, cli, env))
            theirs.append(_first_request(fake, direct, env))
            floors.append(_first_request(fake, floor, env))
    best, baseline, least = min(ours), min(theirs), min(floors)
    print(f"stablenew run: first request after {best * 1000:.0f} ms (best of {ROUNDS}); "
          f"a direct httpx client: {baseline * 1000:.0f} ms; the floor (asyncio, pydantic, "
          f"PyYAML, httpx): {least * 1000:.0f} ms")
    print(f"RESULT cli_first_request_s={best:.3f} direct_client_s={baseline:.3f} "
          f"cli_startup_ratio={best / baseline:.2f} floor_client_s={least:.3f} "
          f"floor_ratio={least / baseline:.2f} cli_over_floor_ratio={best / least:.2f}")


if __name__ == "__main__":
    main()
