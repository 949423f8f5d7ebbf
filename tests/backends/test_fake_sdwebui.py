"""The fake SD WebUI itself behaves like the real API (so tests against it mean something)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.fakes.sdwebui import FakeSDWebUI, render_image

ROOT = Path(__file__).resolve().parents[2]


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


async def post(fake: FakeSDWebUI, path: str, body: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fake.url, timeout=10) as client:
        return await client.post(path, json=body)


@pytest.mark.parametrize("flavor", ["a1111", "forge"])
async def test_bad_types_get_422_like_fastapi(flavor):
    async with FakeSDWebUI(flavor=flavor) as fake:
        reply = await post(fake, "/sdapi/v1/txt2img", {"steps": "many", "width": 7.5})
    assert reply.status_code == 422
    detail = reply.json()["detail"]
    assert [d["loc"] for d in detail] == [["body", "steps"], ["body", "width"]]
    assert ("input" in detail[0]) == (flavor == "forge")  # pydantic v2 wording on Forge only


async def test_batch_and_iterations_use_seed_plus_i_and_hires_size(fake_sdwebui):
    reply = await post(fake_sdwebui, "/sdapi/v1/txt2img", {
        "prompt": "fox", "seed": 10, "batch_size": 2, "n_iter": 2, "steps": 2, "width": 64, "height": 32,
        "enable_hr": True, "hr_scale": 2, "denoising_strength": 0.5})
    data = reply.json()
    info = json.loads(data["info"])
    assert info["all_seeds"] == [10, 11, 12, 13]
    assert len(data["images"]) == 4 and len(info["infotexts"]) == 4
    assert decode(data["images"][0]).size == (128, 64)
    assert (info["width"], info["height"]) == (64, 32)  # info keeps the first-pass size
    assert "Seed: 13" in decode(data["images"][3]).info["parameters"]
    assert fake_sdwebui.images_generated == 4


def test_images_are_deterministic_and_show_the_payload():
    a = render_image(64, 64, 5, "fox", "text")
    assert a == render_image(64, 64, 5, "fox", "text")
    assert a != render_image(64, 64, 6, "fox", "text")
    assert Image.open(io.BytesIO(a)).info["parameters"] == "text"


@pytest.mark.parametrize(("flavor", "body", "words"), [
    ("a1111", {"enable_hr": True}, "NoneType"),  # hires without denoising_strength
    ("forge", {"enable_hr": True, "denoising_strength": 0.4}, "not iterable"),
    ("a1111", {"enable_hr": True, "denoising_strength": 0.4, "hr_sampler_name": "Use same sampler"},
     "Use same sampler"),
    ("a1111", {"enable_hr": True, "denoising_strength": 0.4, "hr_upscaler": "Nope"},
     "could not find upscaler"),
    ("a1111", {"override_settings": {"no_such_option": 1}}, "no_such_option"),
])
async def test_the_real_servers_crashes_are_reproduced(flavor, body, words):
    async with FakeSDWebUI(flavor=flavor) as fake:
        reply = await post(fake, "/sdapi/v1/txt2img", {"steps": 2, "width": 64, "height": 64, **body})
    assert reply.status_code == 500
    assert words in reply.text


async def test_forge_without_hr_cfg_runs_hires_at_cfg_1():
    async with FakeSDWebUI(flavor="forge") as fake:
        reply = await post(fake, "/sdapi/v1/txt2img", {
            "steps": 2, "width": 64, "height": 64, "enable_hr": True, "denoising_strength": 0.4,
            "hr_additional_modules": ["Use same choices"]})
    assert "Hires CFG Scale: 1.0" in json.loads(reply.json()["info"])["infotexts"][0]


async def test_img2img_without_init_image_is_404(fake_sdwebui):
    reply = await post(fake_sdwebui, "/sdapi/v1/img2img", {"prompt": "x"})
    assert reply.status_code == 404 and reply.json()["detail"] == "Init image not found"


async def test_progress_while_sampling_and_when_idle():
    async with FakeSDWebUI(step_ms=10) as fake, httpx.AsyncClient(base_url=fake.url, timeout=10) as client:
        idle = (await client.get("/sdapi/v1/progress")).json()
        assert idle["progress"] == 0 and idle["state"]["job_count"] == 0
        run = asyncio.create_task(client.post("/sdapi/v1/txt2img", json={
            "steps": 20, "width": 64, "height": 64, "force_task_id": "a"}))
        queued = asyncio.create_task(client.post("/sdapi/v1/txt2img", json={
            "steps": 1, "width": 64, "height": 64, "force_task_id": "b"}))
        async with asyncio.timeout(5):
            while fake.current_task != "a" or "b" not in fake._pending:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)
        busy = (await client.get("/sdapi/v1/progress")).json()
        assert 0 < busy["progress"] < 1 and busy["state"]["sampling_steps"] == 20
        assert busy["current_image"]
        mine = (await client.post("/internal/progress", json={"id_task": "a"})).json()
        assert mine["active"] and mine["live_preview"].startswith("data:image/png;base64,")
        other = (await client.post("/internal/progress", json={"id_task": "b"})).json()
        assert other["queued"] and other["textinfo"] == "In queue: 1/1"
        await asyncio.wait_for(asyncio.gather(run, queued), 5)
        done = (await client.post("/internal/progress", json={"id_task": "a"})).json()
    assert done["completed"] and not done["active"]
    assert fake.busy_seconds >= 0.2 and len(fake.busy_intervals) == 2


async def test_interrupt_while_idle_does_nothing(fake_sdwebui):
    await post(fake_sdwebui, "/sdapi/v1/interrupt", {})
    reply = await post(fake_sdwebui, "/sdapi/v1/txt2img", {"steps": 3, "width": 64, "height": 64})
    assert reply.status_code == 200
    assert fake_sdwebui.interrupts == [None]


async def test_options_reject_unknown_keys_and_models(fake_sdwebui):
    assert (await post(fake_sdwebui, "/sdapi/v1/options", {"nope": 1})).status_code == 500
    bad = await post(fake_sdwebui, "/sdapi/v1/options", {"sd_model_checkpoint": "missing"})
    assert bad.status_code == 500 and "not found" in bad.json()["errors"]


def test_threaded_runner_serves_a_plain_client():
    with FakeSDWebUI(step_ms=1).running_in_thread() as fake:
        reply = httpx.post(f"{fake.url}/sdapi/v1/txt2img", json={"steps": 2, "width": 64, "height": 64},
                           timeout=10)
        assert reply.status_code == 200
        assert fake.images_generated == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{fake.url}/sdapi/v1/options", timeout=2)


def test_fixture_in_a_thread(fake_sdwebui_thread):
    assert httpx.get(f"{fake_sdwebui_thread.url}/sdapi/v1/samplers", timeout=5).status_code == 200


def test_runs_standalone_from_the_command_line():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.sdwebui", "--port", str(port),
                             "--step-ms", "1", "--flavor", "forge", "--auth", "u:p"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line
        deadline = time.monotonic() + 10
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/sdapi/v1/sd-modules", auth=("u", "p"), timeout=2)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert reply.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/sdapi/v1/options", timeout=2).status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
