"""ComfyUIBackend against the fake ComfyUI over real HTTP + WebSocket."""

from __future__ import annotations

import asyncio
import copy
import io
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest
from PIL import Image

from stablenew.backends import Backend
from stablenew.backends.comfyui import ComfyUIBackend
from stablenew.backends.errors import (
    AuthFailed,
    JobInterrupted,
    MissingResource,
    RequestRejected,
    ServerError,
    ServerUnreachable,
)
from stablenew.backends.types import (
    ADetailerJob,
    BackendKind,
    HiresFix,
    Img2ImgJob,
    Refiner,
    Sampling,
    Txt2ImgJob,
    UpscaleJob,
)
from tests.fakes.comfyui import FakeComfyUI


@asynccontextmanager
async def running_node(tmp_path, previews: bool = False, **fake_options):
    """A fake ComfyUI plus a client of it."""
    async with (
        FakeComfyUI(**fake_options) as fake,
        ComfyUIBackend(fake.url, workflows_dir=tmp_path / "workflows", previews=previews) as backend,
    ):
        yield fake, backend


def sampling(**kw) -> Sampling:
    base = dict(
        prompt="a lighthouse at dusk",
        negative_prompt="blurry",
        checkpoint="sd15_base",
        sampler="DPM++ 2M",
        scheduler="Karras",
        steps=4,
        width=64,
        height=64,
        seed=42,
    )
    base.update(kw)
    return Sampling(**base)


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def png(w: int = 64, h: int = 48, color=(10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="PNG")
    return buf.getvalue()


async def test_implements_the_backend_protocol(comfy):
    assert isinstance(comfy, Backend)
    assert comfy.kind is BackendKind.comfyui


async def test_probe_reports_models_vram_and_node_classes(fake_comfyui, comfy):
    caps = await comfy.probe()
    assert caps.kind is BackendKind.comfyui
    assert caps.version == "0.33.0"
    assert caps.vram_total == fake_comfyui.vram_total and caps.vram_free == fake_comfyui.vram_free
    assert "sd15_base.safetensors" in caps.checkpoints
    # Samplers and schedulers in A1111's words first (presets stay portable), ComfyUI-only ones after.
    assert caps.samplers[:2] == ("DPM++ 2M", "DPM++ SDE") and "dpmpp_2m" not in caps.samplers
    # In the words users type: A1111's (Forge's "Euler CFG++" for euler_cfg_pp), then ComfyUI-only ones.
    assert "Euler CFG++" in caps.samplers and "Euler a" in caps.samplers
    assert "euler_cfg_pp" not in caps.samplers and "uni_pc_bh2" in caps.samplers
    assert caps.schedulers[:3] == ("Automatic", "Uniform", "Karras") and "linear_quadratic" in caps.schedulers
    assert "RealESRGAN_x4plus.pth" in caps.upscalers
    # A1111 names the node can serve, so the scheduler matches configs written for A1111.
    assert {"R-ESRGAN 4x+", "R-ESRGAN 2x+", "Lanczos", "Latent"} <= set(caps.upscalers)
    assert "R-ESRGAN 4x+ Anime6B" not in caps.upscalers
    assert "detail_tweaker.safetensors" in caps.loras
    assert "KSampler" in caps.node_classes and "FaceDetailer" not in caps.node_classes
    # Probed class by class (what our graphs use), never the ~1 MB /object_info.
    assert {"LoraLoader", "ImageUpscaleWithModel", "SetLatentNoiseMask"} <= caps.node_classes
    assert len(caps.node_classes) < 60
    await comfy.ping()


async def test_probe_sees_face_detailer_when_installed(tmp_path):
    async with running_node(tmp_path, step_ms=1, face_detailer=True) as (fake, backend):
        caps = await backend.probe()
    assert {"FaceDetailer", "UltralyticsDetectorProvider"} <= caps.node_classes
    assert "bbox/face_yolov8n.pt" in caps.adetailer_models


async def test_txt2img_success_with_progress_and_our_ids(fake_comfyui, comfy):
    progress = []
    task = str(uuid.uuid4())
    result = await comfy.txt2img(Txt2ImgJob(sampling(steps=6), task_id=task), progress.append)
    assert len(result.images) == 1 and result.images[0].seed == 42
    assert result.info["prompt_ids"] == [task] and result.info["prompts"][0]["1"]["class_type"]
    assert size_of(result.images[0].data) == (64, 64)
    body = fake_comfyui.received[-1]
    assert body["prompt_id"] == task  # the job's UUID is the prompt id
    assert body["client_id"] == comfy.client_id
    sampler = next(n for n in body["prompt"].values() if n["class_type"] == "KSampler")
    assert sampler["inputs"]["sampler_name"] == "dpmpp_2m" and sampler["inputs"]["scheduler"] == "karras"
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1.0
    assert [p.step for p in progress if p.step is not None][-1] == 6
    assert progress[-1].steps == 6


async def test_non_uuid_task_ids_map_to_fresh_prompt_ids(fake_comfyui, comfy):
    await comfy.txt2img(Txt2ImgJob(sampling(), task_id="run-7/img-2"))
    pid = fake_comfyui.received[-1]["prompt_id"]
    assert str(uuid.UUID(pid)) == pid


async def test_batch_gives_one_reproducible_seed_per_image(fake_comfyui, comfy):
    result = await comfy.txt2img(Txt2ImgJob(sampling(), task_id="b", batch_size=3))
    assert [i.seed for i in result.images] == [42, 43, 44]
    assert len({i.data for i in result.images}) == 3
    seeds = [
        next(n for n in b["prompt"].values() if n["class_type"] == "KSampler")["inputs"]["seed"]
        for b in fake_comfyui.received[-3:]
    ]
    assert seeds == [42, 43, 44]


async def test_hires_refiner_and_loras_reach_the_graph(fake_comfyui, comfy):
    job = Txt2ImgJob(
        sampling(prompt="ink sketch <lora:detail_tweaker:0.6> <lora:ink:0.3:0.8>"),
        task_id="h",
        hires=HiresFix(upscaler="R-ESRGAN 4x+", scale=2.0, denoise=0.4, steps=3),
        refiner=Refiner(checkpoint="sdxl_refiner_1.0", switch_at=0.5),
    )
    result = await comfy.txt2img(job)
    assert size_of(result.images[0].data) == (128, 128)
    graph = fake_comfyui.received[-1]["prompt"]
    classes = [n["class_type"] for n in graph.values()]
    assert classes.count("LoraLoader") == 2 and classes.count("KSamplerAdvanced") == 2
    assert "UpscaleModelLoader" in classes
    loras = [n["inputs"] for n in graph.values() if n["class_type"] == "LoraLoader"]
    assert {(lo["lora_name"], lo["strength_model"], lo["strength_clip"]) for lo in loras} == {
        ("detail_tweaker.safetensors", 0.6, 0.6),
        ("style/ink.safetensors", 0.8, 0.3),
    }
    texts = [n["inputs"]["text"] for n in graph.values() if n["class_type"] == "CLIPTextEncode"]
    assert "ink sketch" in texts and not any("<lora" in t for t in texts)


async def test_img2img_uploads_the_input_and_keeps_the_size(fake_comfyui, comfy):
    job = Img2ImgJob(
        sampling(width=96, height=64),
        init_image=png(48, 32),
        task_id="i",
        denoise=0.3,
        mask=png(48, 32, (255, 255, 255)),
    )
    result = await comfy.img2img(job)
    assert size_of(result.images[0].data) == (96, 64)
    assert len(fake_comfyui.uploads) == 2
    assert all(k.startswith("stablenew/") for k in fake_comfyui.uploads)
    sampler = next(n for n in fake_comfyui.received[-1]["prompt"].values() if n["class_type"] == "KSampler")
    assert sampler["inputs"]["denoise"] == 0.3


async def test_upscale_with_a_model_and_a_second_upscaler(fake_comfyui, comfy):
    result = await comfy.upscale(
        UpscaleJob(
            image=png(40, 30),
            task_id="u",
            upscaler="R-ESRGAN 4x+",
            scale=2.5,
            upscaler_2="4x-UltraSharp",
            upscaler_2_visibility=0.3,
        )
    )
    assert size_of(result.images[0].data) == (100, 75)
    classes = [n["class_type"] for n in fake_comfyui.received[-1]["prompt"].values()]
    assert classes.count("ImageUpscaleWithModel") == 2 and "ImageBlend" in classes


async def test_adetailer_needs_the_custom_nodes(comfy, fake_comfyui):
    with pytest.raises(MissingResource) as info:
        await comfy.adetailer(ADetailerJob(sampling(), image=png(), task_id="a"))
    assert info.value.what == "node_class" and "Impact" in info.value.message
    assert fake_comfyui.received == []


async def test_adetailer_runs_face_detailer_passes(tmp_path):
    async with running_node(tmp_path, step_ms=1, face_detailer=True) as (fake, backend):
        from stablenew.backends.types import ADetailerPass

        job = ADetailerJob(
            sampling(),
            image=png(),
            task_id="a",
            passes=(ADetailerPass(), ADetailerPass(model="hand_yolov8n.pt", prompt="hands")),
        )
        result = await backend.adetailer(job)
    assert size_of(result.images[0].data) == (64, 48)
    graph = fake.received[-1]["prompt"]
    detectors = sorted(
        n["inputs"]["model_name"] for n in graph.values() if n["class_type"] == "UltralyticsDetectorProvider"
    )
    assert detectors == ["bbox/face_yolov8n.pt", "bbox/hand_yolov8n.pt"]


async def test_missing_checkpoint_is_reported_before_sending(fake_comfyui, comfy):
    with pytest.raises(MissingResource) as info:
        await comfy.txt2img(Txt2ImgJob(sampling(checkpoint="x.safetensors"), task_id="m"))
    err = info.value
    assert err.what == "checkpoint" and err.name == "x.safetensors"
    assert err.message.startswith(
        "Checkpoint 'x.safetensors' is not installed on node 'den-3060' — installed: "
    )
    assert "sd15_base.safetensors" in err.message
    assert fake_comfyui.received == []


async def test_missing_lora_and_upscaler_and_sampler(fake_comfyui, comfy):
    with pytest.raises(MissingResource) as info:
        await comfy.txt2img(Txt2ImgJob(sampling(prompt="<lora:nope:1>"), task_id="l"))
    assert info.value.what == "lora"
    with pytest.raises(MissingResource) as info:
        await comfy.upscale(UpscaleJob(image=png(), task_id="u", upscaler="LDSR"))
    assert info.value.what == "upscaler"
    with pytest.raises(MissingResource) as info:
        await comfy.txt2img(Txt2ImgJob(sampling(sampler="PLMS"), task_id="s"))
    assert info.value.what == "sampler"
    assert fake_comfyui.received == []


async def test_runtime_error_names_the_node_without_tensor_dumps(fake_comfyui, comfy):
    fake_comfyui.fail_node("VAEDecode", "IndexError", "index 3 is out of bounds for dimension 3 with size 3")
    with pytest.raises(ServerError) as info:
        await comfy.txt2img(Txt2ImgJob(sampling(), task_id="e"))
    assert "VAEDecode" in info.value.message and "index 3 is out of bounds" in info.value.message
    assert "tensor(" not in info.value.message and "tensor(" not in info.value.detail


async def test_out_of_memory_says_what_to_do(fake_comfyui, comfy):
    fake_comfyui.fail_node("KSampler", "torch.OutOfMemoryError", "Allocation on device")
    with pytest.raises(ServerError) as info:
        await comfy.txt2img(Txt2ImgJob(sampling(), task_id="o"))
    assert "out of GPU memory" in info.value.message and "smaller" in info.value.message


async def test_history_race_loses_no_result(tmp_path):
    async with running_node(tmp_path, step_ms=1, history_lag_ms=150) as (fake, backend):
        result = await backend.txt2img(Txt2ImgJob(sampling(), task_id="race"))
    assert len(result.images) == 1


async def test_fully_cached_rerun_still_returns_the_image(fake_comfyui, comfy):
    job = Txt2ImgJob(sampling(), task_id="c1")
    first = await comfy.txt2img(job)
    progress = []
    second = await comfy.txt2img(Txt2ImgJob(sampling(), task_id="c2"), progress.append)
    assert first.images[0].data == second.images[0].data
    cached = [m for m in fake_comfyui.sent[comfy.client_id] if m["type"] == "execution_cached"][-1]
    assert len(cached["data"]["nodes"]) == len(fake_comfyui.received[-1]["prompt"])  # every node
    assert progress and progress[-1].fraction > 0.9


async def _wait_until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("jobs_api", [True, False])
async def test_cancel_our_running_prompt_leaves_another_clients_prompt(tmp_path, jobs_api):
    async with running_node(tmp_path, step_ms=20, jobs_api=jobs_api) as (fake, backend):
        run = asyncio.create_task(backend.txt2img(Txt2ImgJob(sampling(steps=200), task_id="ours")))
        await _wait_until(lambda: fake.queue_snapshot()["queue_running"])
        ours = fake.received[-1]["prompt_id"]
        # Someone else queues a job behind ours.
        other = copy.deepcopy(fake.received[-1])
        other.update(client_id="someone-else", prompt_id=str(uuid.uuid4()))
        for node in other["prompt"].values():
            if node["class_type"] == "KSampler":
                node["inputs"]["steps"] = 3
        async with httpx.AsyncClient(base_url=fake.url) as http:
            assert (await http.post("/prompt", json=other)).status_code == 200
        await backend.interrupt("ours")
        with pytest.raises(JobInterrupted):
            await asyncio.wait_for(run, 5)
        assert all(body is None or body.get("prompt_id") == ours for body in fake.interrupts)
        assert None not in fake.interrupts  # never a bare interrupt
        assert (fake.cancels == [ours]) if jobs_api else (fake.interrupts == [{"prompt_id": ours}])
        await _wait_until(lambda: fake.history(other["prompt_id"]) is not None, 15)
        assert fake.history(other["prompt_id"])["status"]["status_str"] == "success"
        assert fake.history(ours)["status"]["status_str"] == "error"


async def test_cancel_a_pending_prompt_removes_it_from_the_queue(tmp_path):
    async with (
        running_node(tmp_path, step_ms=20, jobs_api=False) as (fake, backend),
        httpx.AsyncClient(base_url=fake.url) as http,
    ):
        # Another client's long job occupies the node.
        blocker = asyncio.create_task(backend.txt2img(Txt2ImgJob(sampling(steps=100), task_id="first")))
        await _wait_until(lambda: fake.queue_snapshot()["queue_running"])
        body = dict(fake.received[-1])
        body.update(client_id="other", prompt_id=str(uuid.uuid4()))
        await backend.interrupt("first")
        with pytest.raises(JobInterrupted):
            await blocker
        assert (
            await http.post("/prompt", json={**body, "prompt": {k: v for k, v in body["prompt"].items()}})
        ).status_code == 200
        waiting = asyncio.create_task(backend.txt2img(Txt2ImgJob(sampling(steps=3), task_id="second")))
        await _wait_until(lambda: len(fake.queue_snapshot()["queue_pending"]) == 1)
        await backend.interrupt("second")
        with pytest.raises(JobInterrupted):
            await asyncio.wait_for(waiting, 5)
        assert fake.queue_snapshot()["queue_pending"] == []
        pending_id = fake.received[-1]["prompt_id"]
        assert not any(b and b.get("prompt_id") == pending_id for b in fake.interrupts)


async def test_dropped_socket_during_a_run_still_returns_the_image(tmp_path):
    async with running_node(tmp_path, step_ms=10) as (fake, backend):
        backend.idle_check_s = 0.2
        run = asyncio.create_task(backend.txt2img(Txt2ImgJob(sampling(steps=30), task_id="drop")))
        await _wait_until(lambda: fake.queue_snapshot()["queue_running"])
        await asyncio.sleep(0.05)
        await fake.drop_sockets()
        result = await asyncio.wait_for(run, 10)
        assert len(result.images) == 1
        await _wait_until(lambda: backend.reconnects >= 1)
        # Later jobs use the reconnected socket.
        again = await backend.txt2img(Txt2ImgJob(sampling(seed=5), task_id="after"))
        assert len(again.images) == 1


@pytest.mark.parametrize("metadata", [True, False], ids=["metadata-frames", "legacy-frames"])
async def test_previews_arrive_when_enabled(tmp_path, metadata):
    async with running_node(tmp_path, previews=True, step_ms=2, preview_metadata=metadata) as (fake, backend):
        progress = []
        await backend.txt2img(Txt2ImgJob(sampling(steps=5), task_id="p"), progress.append)
    previews = [p.preview for p in progress if p.preview]
    assert previews and all(size_of(p) == (16, 16) for p in previews)


async def test_unreachable_node(tmp_path):
    async with ComfyUIBackend("http://127.0.0.1:9", workflows_dir=tmp_path) as backend:
        with pytest.raises(ServerUnreachable):
            await backend.probe()
        with pytest.raises(ServerUnreachable):
            await backend.txt2img(Txt2ImgJob(sampling(), task_id="x"))


async def test_origin_refusal_is_explained(fake_comfyui, tmp_path):
    from stablenew.backends.comfyui_messages import post_prompt_error

    async with httpx.AsyncClient(base_url=fake_comfyui.url) as http:
        resp = await http.post("/prompt", json={"prompt": {}}, headers={"Origin": "http://evil.example"})
    err = post_prompt_error(resp.status_code, resp.content, "den")
    assert resp.status_code == 403 and isinstance(err, AuthFailed) and "Origin" in err.message


async def test_server_side_validation_errors_become_plain_words(fake_comfyui, comfy):
    # Skip our own check so the node's 400 answer is what we translate.
    async def no_check(wf):
        return None

    comfy._checked = no_check
    with pytest.raises(RequestRejected) as info:
        await comfy.txt2img(Txt2ImgJob(sampling(width=8), task_id="v"))
    assert "smaller than min" in info.value.message and "den-3060" in info.value.message


async def test_lost_events_are_recovered_from_history(fake_comfyui, comfy):
    comfy.idle_check_s = 0.1
    fake_comfyui.muted.add(comfy.client_id)  # the socket stays up but says nothing
    result = await asyncio.wait_for(comfy.txt2img(Txt2ImgJob(sampling(), task_id="quiet")), 5)
    assert len(result.images) == 1


async def test_a_job_the_node_forgot_is_a_transient_error(fake_comfyui, comfy):
    comfy.idle_check_s = 0.1
    fake_comfyui.step_ms = 20
    run = asyncio.create_task(comfy.txt2img(Txt2ImgJob(sampling(steps=100), task_id="lost")))
    await _wait_until(lambda: fake_comfyui.queue_snapshot()["queue_running"])
    fake_comfyui.muted.add(comfy.client_id)
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as http:
        pid = fake_comfyui.received[-1]["prompt_id"]
        await http.post("/interrupt", json={"prompt_id": pid})  # someone else stops it ...
        await _wait_until(lambda: fake_comfyui.history(pid) is not None)
        await http.post("/history", json={"delete": [pid]})  # ... and the record vanishes (restart)
    with pytest.raises(ServerError) as info:
        await asyncio.wait_for(run, 5)
    assert info.value.transient and "lost the job" in info.value.message


async def test_someone_elses_interrupt_is_reported_as_interrupted(fake_comfyui, comfy):
    fake_comfyui.step_ms = 20
    run = asyncio.create_task(comfy.txt2img(Txt2ImgJob(sampling(steps=100), task_id="theirs")))
    await _wait_until(lambda: fake_comfyui.queue_snapshot()["queue_running"])
    async with httpx.AsyncClient(base_url=fake_comfyui.url) as http:
        await http.post("/interrupt")
    with pytest.raises(JobInterrupted):
        await asyncio.wait_for(run, 5)


async def test_timeout_stops_our_prompt(fake_comfyui, comfy):
    fake_comfyui.step_ms = 20
    comfy.timeout = 0.3
    from stablenew.backends.errors import ServerTimeout

    with pytest.raises(ServerTimeout):
        await asyncio.wait_for(comfy.txt2img(Txt2ImgJob(sampling(steps=200), task_id="slow")), 5)
    await _wait_until(lambda: not fake_comfyui.queue_snapshot()["queue_running"])
    assert fake_comfyui.interrupts == [] or None not in fake_comfyui.interrupts


async def test_interrupt_during_a_batch_posts_no_more_prompts(fake_comfyui, comfy):
    fake_comfyui.step_ms = 20
    run = asyncio.create_task(comfy.txt2img(Txt2ImgJob(sampling(steps=100), task_id="batch", batch_size=4)))
    await _wait_until(lambda: fake_comfyui.queue_snapshot()["queue_running"])
    await comfy.interrupt("batch")
    with pytest.raises(JobInterrupted):
        await asyncio.wait_for(run, 5)
    assert len(fake_comfyui.received) == 1


async def test_partly_invalid_graph_accepted_with_200_is_an_error(fake_comfyui, comfy, tmp_path):
    import json
    import shutil

    from stablenew.storage.resources import resource_path

    folder = tmp_path / "workflows"
    folder.mkdir(exist_ok=True)
    shutil.copy(resource_path("workflows", "examples", "txt2img.json"), folder / "txt2img.json")
    data = json.loads((folder / "txt2img.json").read_text(encoding="utf-8"))
    # A second output branch whose input file does not exist on the node.
    data["nodes"]["20"] = {"class_type": "LoadImage", "inputs": {"image": "missing.png"}}
    data["nodes"]["21"] = {"class_type": "PreviewImage", "inputs": {"images": ["20", 0]}}
    (folder / "txt2img.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RequestRejected) as info:
        await comfy.txt2img(Txt2ImgJob(sampling(prompt="plain"), task_id="partial"))
    assert "LoadImage" in info.value.message and "missing.png" in info.value.message
    await _wait_until(lambda: not fake_comfyui.queue_snapshot()["queue_running"])
    pid = fake_comfyui.received[-1]["prompt_id"]
    assert fake_comfyui.history(pid) is None or fake_comfyui.history(pid)["status"]["status_str"] == "error"


async def test_basic_auth_reaches_http_and_websocket(tmp_path):
    async with running_node(tmp_path, step_ms=1, auth=("me", "secret")) as (fake, _):
        async with ComfyUIBackend(fake.url, auth=("me", "secret"), workflows_dir=tmp_path) as good:
            result = await good.txt2img(Txt2ImgJob(sampling(), task_id="auth"))
            assert len(result.images) == 1
        async with ComfyUIBackend(fake.url, auth=("me", "wrong"), workflows_dir=tmp_path) as bad:
            with pytest.raises(AuthFailed):
                await bad.probe()


async def test_two_jobs_at_once_queue_on_the_node_and_both_finish(fake_comfyui, comfy):
    progress_a, progress_b = [], []
    a, b = await asyncio.wait_for(
        asyncio.gather(
            comfy.txt2img(Txt2ImgJob(sampling(seed=1, steps=5), task_id="a"), progress_a.append),
            comfy.txt2img(Txt2ImgJob(sampling(seed=2, steps=5), task_id="b"), progress_b.append),
        ),
        10,
    )
    assert a.images[0].seed == 1 and b.images[0].seed == 2 and a.images[0].data != b.images[0].data
    assert progress_a[-1].fraction > 0.9 and progress_b[-1].fraction > 0.9


async def test_uploads_are_sent_again_when_the_node_lost_them(fake_comfyui, comfy):
    job = Img2ImgJob(sampling(), init_image=png(), task_id="i1")
    await comfy.img2img(job)
    fake_comfyui.uploads.clear()  # someone emptied ComfyUI's input folder
    result = await comfy.img2img(Img2ImgJob(sampling(seed=3), init_image=png(), task_id="i2"))
    assert len(result.images) == 1 and len(fake_comfyui.uploads) == 1


async def test_a_model_removed_since_our_check_is_reported_by_the_node(fake_comfyui, comfy):
    await comfy.probe()
    fake_comfyui._object_info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = [
        "other.safetensors"
    ]
    with pytest.raises(MissingResource) as info:
        await comfy.txt2img(Txt2ImgJob(sampling(), task_id="gone"))
    assert info.value.message.startswith(
        "Checkpoint 'sd15_base.safetensors' is not installed on node 'den-3060'"
    )
    assert info.value.installed == ("other.safetensors",)


async def test_a_restarted_node_is_used_again_without_a_new_client(tmp_path):
    first = FakeComfyUI(step_ms=1)
    await first.start()
    backend = ComfyUIBackend(first.url, workflows_dir=tmp_path)
    try:
        await backend.txt2img(Txt2ImgJob(sampling(), task_id="before"))
        await first.stop()
        with pytest.raises(ServerUnreachable):
            await backend.txt2img(Txt2ImgJob(sampling(), task_id="down"))
        async with FakeComfyUI(step_ms=1, port=first.port):
            result = await asyncio.wait_for(backend.txt2img(Txt2ImgJob(sampling(), task_id="after")), 10)
            assert len(result.images) == 1
    finally:
        await backend.aclose()


async def test_cancelling_the_awaiting_task_takes_our_prompt_off_the_node(fake_comfyui, comfy):
    fake_comfyui.step_ms = 20
    run = asyncio.create_task(comfy.txt2img(Txt2ImgJob(sampling(steps=200), task_id="dropped")))
    await _wait_until(lambda: fake_comfyui.queue_snapshot()["queue_running"])
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await _wait_until(lambda: not fake_comfyui.queue_snapshot()["queue_running"], 3)
    pid = fake_comfyui.received[-1]["prompt_id"]
    await _wait_until(lambda: fake_comfyui.history(pid) is not None, 3)
    assert fake_comfyui.history(pid)["status"]["status_str"] == "error"
