"""The fake ComfyUI reproduces the observed protocol (so client tests mean something)."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.fakes.comfyui import FakeComfyUI

ROOT = Path(__file__).resolve().parents[2]


def graph(steps: int = 3, seed: int = 1, *, output: str = "SaveImage") -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15_base.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a"}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["2", 0],
                "latent_image": ["3", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {
            "class_type": output,
            "inputs": {
                "images": ["5", 0],
                **({"filename_prefix": "probe/basic"} if output == "SaveImage" else {}),
            },
        },
    }


@asynccontextmanager
async def socket(fake: FakeComfyUI, client_id: str, *, metadata: bool = False):
    async with connect(f"ws://127.0.0.1:{fake.port}/ws?clientId={client_id}", max_size=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello == {
            "type": "status",
            "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id},
        }
        if metadata:
            await ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
            flags = json.loads(await ws.recv())
            assert flags["type"] == "feature_flags" and flags["data"]["supports_preview_metadata"]
        yield ws


async def until_done(ws, pid: str) -> list:
    messages = []
    async with asyncio.timeout(10):
        while True:
            raw = await ws.recv()
            if isinstance(raw, bytes):
                messages.append(("binary", raw))
                continue
            msg = json.loads(raw)
            messages.append((msg["type"], msg["data"]))
            if msg["type"] == "executing" and msg["data"]["node"] is None and msg["data"]["prompt_id"] == pid:
                return messages


def kinds(messages) -> list[str]:
    return [k for k, _ in messages]


async def post(http, body) -> httpx.Response:
    return await http.post("/prompt", json=body)


async def test_success_then_cached_rerun_follow_the_observed_order():
    async with (
        FakeComfyUI(step_ms=1) as fake,
        httpx.AsyncClient(base_url=fake.url) as http,
        socket(fake, "me") as ws,
    ):
        pid = str(uuid.uuid4())
        answer = (await post(http, {"prompt": graph(), "client_id": "me", "prompt_id": pid})).json()
        assert answer == {"prompt_id": pid, "number": 0, "node_errors": {}}
        seq = kinds(await until_done(ws, pid))
        core = [k for k in seq if k not in ("progress_state", "progress")]
        assert core[:3] == ["status", "status", "execution_start"] and core[3] == "execution_cached"
        assert core[-4:] == ["executed", "execution_success", "status", "executing"]
        assert seq.count("progress") == 3
        hist = (await http.get(f"/history/{pid}")).json()[pid]
        assert hist["status"] == {
            "status_str": "success",
            "completed": True,
            "messages": hist["status"]["messages"],
        }
        image = hist["outputs"]["6"]["images"][0]
        assert image["subfolder"] == "probe" and image["type"] == "output"
        view = await http.get("/view", params=image)
        assert view.status_code == 200 and view.content.startswith(b"\x89PNG")
        # Identical graph: every node cached, no per-node `executing`, output replayed.
        pid2 = str(uuid.uuid4())
        await post(http, {"prompt": graph(), "client_id": "me", "prompt_id": pid2})
        messages = await until_done(ws, pid2)
        cached = next(d for k, d in messages if k == "execution_cached")
        assert sorted(cached["nodes"]) == ["1", "2", "3", "4", "5", "6"]
        assert [d for k, d in messages if k == "executing"] == [{"node": None, "prompt_id": pid2}]
        assert "executed" in kinds(messages)


async def test_error_and_interrupt_sequences():
    async with (
        FakeComfyUI(step_ms=5) as fake,
        httpx.AsyncClient(base_url=fake.url) as http,
        socket(fake, "me") as ws,
    ):
        fake.fail_node("VAEDecode", "IndexError", "boom")
        pid = str(uuid.uuid4())
        await post(http, {"prompt": graph(), "client_id": "me", "prompt_id": pid})
        seq = [k for k in kinds(await until_done(ws, pid)) if k not in ("progress_state", "progress")]
        assert seq[-4:] == ["executing", "execution_error", "status", "executing"]
        assert "execution_success" not in seq
        fake.clear_failures()
        pid = str(uuid.uuid4())
        await post(http, {"prompt": graph(steps=200, seed=9), "client_id": "me", "prompt_id": pid})
        async with asyncio.timeout(5):
            while not fake.queue_snapshot()["queue_running"]:
                await asyncio.sleep(0.005)
        await http.post("/interrupt", json={"prompt_id": str(uuid.uuid4())})  # not running: ignored
        await asyncio.sleep(0.03)
        assert fake.queue_snapshot()["queue_running"]
        await http.post("/interrupt", json={"prompt_id": pid})
        seq = [k for k in kinds(await until_done(ws, pid)) if k != "progress_state"]
        assert seq[-4:] == ["progress", "execution_interrupted", "status", "executing"]
        hist = (await http.get(f"/history/{pid}")).json()[pid]
        assert hist["status"]["status_str"] == "error" and hist["outputs"] == {}


async def test_bare_interrupt_stops_whatever_runs_even_another_clients_prompt():
    async with (
        FakeComfyUI(step_ms=5) as fake,
        httpx.AsyncClient(base_url=fake.url) as http,
        socket(fake, "them") as ws,
    ):
        pid = str(uuid.uuid4())
        await post(http, {"prompt": graph(steps=200), "client_id": "them", "prompt_id": pid})
        async with asyncio.timeout(5):
            while not fake.queue_snapshot()["queue_running"]:
                await asyncio.sleep(0.005)
        await http.post("/interrupt")
        assert "execution_interrupted" in kinds(await until_done(ws, pid))


async def test_events_route_only_to_the_owner_and_queue_delete_and_jobs_cancel():
    async with (
        FakeComfyUI(step_ms=5) as fake,
        httpx.AsyncClient(base_url=fake.url) as http,
        socket(fake, "me") as mine,
        socket(fake, "other") as other,
    ):
        running, pending, third = (str(uuid.uuid4()) for _ in range(3))
        await post(http, {"prompt": graph(steps=60), "client_id": "other", "prompt_id": running})
        await post(http, {"prompt": graph(seed=2), "client_id": "me", "prompt_id": pending})
        await post(http, {"prompt": graph(seed=3), "client_id": "me", "prompt_id": third})
        queue = (await http.get("/queue")).json()
        assert [item[1] for item in queue["queue_pending"]] == [pending, third]
        assert len(queue["queue_pending"][0]) == 5
        await http.post("/queue", json={"delete": [pending, "unknown-id"]})
        assert (await http.post(f"/api/jobs/{third}/cancel")).json() == {"cancelled": True}
        assert (await http.post(f"/api/jobs/{third}/cancel")).json() == {"cancelled": False}
        assert (await http.get("/queue")).json()["queue_pending"] == []
        assert (await http.get(f"/history/{pending}")).json() == {}
        await until_done(other, running)
        assert not [m for m in fake.sent.get("me", []) if m["type"] != "status"]
        mine_status = json.loads(await mine.recv())
        assert mine_status["type"] == "status"  # status is broadcast to everyone


async def test_validation_shapes():
    async with FakeComfyUI(step_ms=1) as fake, httpx.AsyncClient(base_url=fake.url) as http:
        bad = graph()
        bad["1"]["inputs"]["ckpt_name"] = "x.safetensors"
        resp = await post(http, {"prompt": bad})
        body = resp.json()
        assert resp.status_code == 400 and body["error"]["type"] == "prompt_outputs_failed_validation"
        err = body["node_errors"]["1"]["errors"][0]
        assert err["type"] == "value_not_in_list" and err["extra_info"]["received_value"] == "x.safetensors"
        assert body["node_errors"]["1"]["class_type"] == "CheckpointLoaderSimple"
        # Partly valid: 200 with node_errors, only the valid output runs.
        partial = graph()
        partial["7"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
        partial["8"] = {"class_type": "LoadImage", "inputs": {"image": "nope.png"}}
        resp = await post(http, {"prompt": partial})
        assert resp.status_code == 200 and "8" in resp.json()["node_errors"]
        unknown = {"1": {"class_type": "Nope", "inputs": {}, "_meta": {"title": "T"}}}
        body = (await post(http, {"prompt": unknown})).json()
        assert (
            body["error"]["type"] == "missing_node_type" and body["error"]["extra_info"]["node_title"] == "T"
        )
        assert (await post(http, {"prompt": graph(), "prompt_id": "ABC"})).json()["error"][
            "type"
        ] == "invalid_prompt_id"
        assert (await post(http, {})).json()["error"]["type"] == "no_prompt"
        resp = await http.post("/prompt", content=b"{not json")
        assert resp.status_code == 500 and resp.headers["content-type"].startswith("text/plain")
        resp = await http.post("/prompt", json={"prompt": graph()}, headers={"Origin": "http://elsewhere:1"})
        assert resp.status_code == 403 and resp.content == b""
        assert (await http.get("/object_info/NoSuchClass")).json() == {}
        stats = (await http.get("/system_stats")).json()
        assert stats["system"]["comfyui_version"] == "0.33.0"


async def test_upload_and_view_of_inputs():
    async with FakeComfyUI(step_ms=1) as fake, httpx.AsyncClient(base_url=fake.url) as http:
        files = {"image": ("my_upload.png", b"\x89PNG-one", "image/png")}
        first = (await http.post("/upload/image", files=files, data={"subfolder": "sub"})).json()
        assert first == {"name": "my_upload.png", "subfolder": "sub", "type": "input"}
        same = (await http.post("/upload/image", files=files, data={"subfolder": "sub"})).json()
        assert same["name"] == "my_upload.png"
        other = {"image": ("my_upload.png", b"\x89PNG-two", "image/png")}
        renamed = (await http.post("/upload/image", files=other, data={"subfolder": "sub"})).json()
        assert renamed["name"] == "my_upload (1).png"
        assert (await http.post("/upload/image", data={"subfolder": "x"})).status_code == 400
        view = await http.get(
            "/view", params={"filename": "my_upload.png", "subfolder": "sub", "type": "input"}
        )
        assert view.content == b"\x89PNG-one"
        assert (await http.get("/view", params={"filename": "../x.png"})).status_code == 400
        assert (await http.get("/view", params={"filename": "gone.png"})).status_code == 404


@pytest.mark.parametrize("metadata", [False, True])
async def test_preview_frames_in_both_layouts_and_orders(metadata):
    async with (
        FakeComfyUI(step_ms=1) as fake,
        httpx.AsyncClient(base_url=fake.url) as http,
        socket(fake, "me", metadata=metadata) as ws,
    ):
        pid = str(uuid.uuid4())
        await post(
            http,
            {
                "prompt": graph(steps=3),
                "client_id": "me",
                "prompt_id": pid,
                "extra_data": {"preview_method": "auto"},
            },
        )
        messages = [m for m in await until_done(ws, pid) if m[0] in ("binary", "progress")]
        frames = [d for k, d in messages if k == "binary"]
        assert len(frames) == 2
        event = struct.unpack(">I", frames[0][:4])[0]
        assert event == (4 if metadata else 1)
        # Legacy: progress, then frame; with metadata: frame first.
        first_two = [k for k, _ in messages[:2]]
        assert first_two == (["binary", "progress"] if metadata else ["progress", "binary"])


async def test_reconnecting_owner_gets_the_running_node_without_prompt_id():
    async with FakeComfyUI(step_ms=10) as fake, httpx.AsyncClient(base_url=fake.url) as http:
        first = await connect(f"ws://127.0.0.1:{fake.port}/ws?clientId=me")
        json.loads(await first.recv())
        pid = str(uuid.uuid4())
        await post(http, {"prompt": graph(steps=100), "client_id": "me", "prompt_id": pid})
        async with asyncio.timeout(5):
            while fake.queue_snapshot()["queue_running"] == []:
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        await fake.drop_sockets()
        first.transport.abort()  # it stopped reading, so it would not notice by itself
        async with connect(f"ws://127.0.0.1:{fake.port}/ws?clientId=me") as ws, asyncio.timeout(5):
            json.loads(await ws.recv())  # status with sid
            again = json.loads(await ws.recv())
            assert again == {"type": "executing", "data": {"node": "4"}}
            await http.post("/interrupt", json={"prompt_id": pid})


def test_runs_standalone():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.comfyui", "--port", "0", "--step-ms", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "Fake ComfyUI listening on http://127.0.0.1:" in line
        url = line.split(" on ")[1].split()[0]
        assert httpx.get(f"{url}/system_stats", timeout=5).json()["system"]["comfyui_version"]
    finally:
        proc.terminate()
        proc.wait(10)
