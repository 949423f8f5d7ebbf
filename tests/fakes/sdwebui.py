"""A fake AUTOMATIC1111 / Forge / SD.Next WebUI: a real aiohttp server on 127.0.0.1.

It answers the `/sdapi/v1` endpoints with the real request and response shapes, validates
types like the real server (422), ignores unknown fields like the real server but records
them, renders a deterministic PNG per image (size, seed and prompt drawn into it, A1111
infotext in the `parameters` chunk), reports progress while it "samples" (`step_ms` per step),
serialises generation behind one FIFO lock and honours interrupt/skip. Faults are injected on
demand with `inject()`. Use it with `async with FakeSDWebUI() as fake`, in a thread with
`running_in_thread()`, through the `fake_sdwebui` / `fake_sdwebui_thread` fixtures, or
standalone: `python -m tests.fakes.sdwebui --port 7861 --step-ms 20`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from PIL import Image, ImageDraw, PngImagePlugin
from pydantic import ValidationError

from tests.fakes.sdwebui_schema import (
    REQUEST_MODELS,
    ADetailerTab,
    create_infotext,
    parse_infotext,
    validation_detail,
)
from tests.fakes.serving import ServesItself

FLAVORS = ("a1111", "forge", "sdnext")
FAULTS = ("500", "422", "stall", "truncated", "bad_base64", "bad_image", "bad_json", "drop", "drip")

DEFAULT_CHECKPOINTS = ("sd_xl_base_1.0.safetensors", "SD15/dreamshaper_8.safetensors",
                       "sd_xl_refiner_1.0.safetensors")
DEFAULT_SAMPLERS = ("DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "Euler a", "Euler", "LMS", "Heun",
                    "DPM2", "DDIM", "UniPC")
SCHEDULERS = (("automatic", "Automatic"), ("uniform", "Uniform"), ("karras", "Karras"),
              ("exponential", "Exponential"), ("polyexponential", "Polyexponential"),
              ("sgm_uniform", "SGM Uniform"), ("kl_optimal", "KL Optimal"),
              ("align_your_steps", "Align Your Steps"), ("simple", "Simple"),
              ("normal", "Normal"), ("ddim", "DDIM"), ("beta", "Beta"))
DEFAULT_UPSCALERS = ("None", "Lanczos", "Nearest", "ESRGAN_4x", "R-ESRGAN 4x+",
                     "R-ESRGAN 4x+ Anime6B", "SwinIR 4x")
LATENT_MODES = ("Latent", "Latent (antialiased)", "Latent (bicubic)",
                "Latent (bicubic antialiased)", "Latent (nearest)", "Latent (nearest-exact)")
DEFAULT_LORAS = ("add_detail", "film_grain")
DEFAULT_EMBEDDINGS = ("EasyNegative", "bad-hands-5")
DEFAULT_ADETAILER = ("face_yolov8n.pt", "face_yolov8s.pt", "hand_yolov8n.pt",
                     "person_yolov8n-seg.pt", "mediapipe_face_full")
VERSIONS = {"a1111": "v1.10.1", "forge": "f2.0.1v1.10.1-previous-669-gdfdcbab6",
            "sdnext": "2025-06-30"}
ADETAILER_VERSION = "25.3.0"
_ORDINALS = ("", " 2nd", " 3rd", " 4th", " 5th", " 6th")
# Open to anyone even with --api-auth: extension routes and the webui's internal routes.
_OPEN_SDAPI = {"/sdapi/v1/loras", "/sdapi/v1/refresh-loras"}


class _HTTPError(Exception):
    """An HTTPException raised by the API (has a status and a detail text)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Crash(Exception):
    """Any other exception in a handler: A1111/Forge answer 500 with the class and message."""

    def __init__(self, cls: str, message: str) -> None:
        super().__init__(message)
        self.cls = cls
        self.message = message


@dataclass
class RecordedRequest:
    method: str
    path: str
    payload: Any


@dataclass
class _Fault:
    kind: str
    path: str | None
    times: int
    seconds: float
    chunk: int


@dataclass
class _Job:
    """The global `shared.state` of the webui while one job runs."""

    task_id: str
    job: str
    job_count: int = -1
    job_no: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0
    started: float = field(default_factory=time.monotonic)
    timestamp: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S"))
    interrupted: bool = False
    skipped: bool = False


def _hash10(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:10]


def _decode_image(data: str | None) -> Image.Image:
    if not data:
        raise _HTTPError(500, "Invalid encoded image")
    if data.startswith("data:image/"):
        data = data.split(";", 1)[1].split(",", 1)[-1]
    try:
        raw = base64.b64decode(data, validate=True)
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (binascii.Error, ValueError, OSError) as exc:
        raise _HTTPError(500, "Invalid encoded image") from exc
    return image


def _color(seed: int, prompt: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{seed}|{prompt}".encode()).digest()
    return digest[0], digest[1], digest[2]


def render_image(width: int, height: int, seed: int, prompt: str, infotext: str = "",
                 samples_format: str = "png", note: str = "") -> bytes:
    """Deterministic picture: a colour from (seed, prompt) with size, seed and prompt drawn in."""
    image = Image.new("RGB", (width, height), _color(seed, prompt))
    draw = ImageDraw.Draw(image)
    lines = [f"{width}x{height}", f"seed {seed}", prompt[:48], note]
    for i, text in enumerate(line for line in lines if line):
        draw.text((4, 4 + 12 * i), text, fill=(255, 255, 255))
    out = io.BytesIO()
    if samples_format in ("jpg", "jpeg"):
        image.save(out, format="JPEG", quality=80)
    elif samples_format == "webp":
        image.save(out, format="WEBP", quality=80)
    else:
        info = PngImagePlugin.PngInfo()
        if infotext:
            info.add_text("parameters", infotext)
        image.save(out, format="PNG", pnginfo=info, compress_level=1)
    return out.getvalue()


#: Preprocessors of sd-webui-controlnet 1.1.45 (`/controlnet/module_list`), the ones our kinds use.
CONTROLNET_MODULES = ("none", "canny", "depth_midas", "depth_anything_v2", "openpose", "openpose_full",
                      "lineart_realistic", "lineart_standard", "tile_resample", "ip-adapter-auto",
                      "ip-adapter_clip_sd15", "ip-adapter_clip_sdxl_plus_vith", "ip-adapter_face_id_plus")


#: Forge's built-in ControlNet (`/controlnet/module_list`, Forge main dfdcbab6): its own names,
#: case-sensitive, "None" first; no InsightFace-only FaceID preprocessor.
FORGE_CONTROLNET_MODULES = ("None", "canny", "depth_midas", "depth_anything", "depth_anything_v2",
                            "openpose", "openpose_full", "dw_openpose_full", "lineart_realistic",
                            "lineart_standard (from white bg & black line)", "tile_resample",
                            "CLIP-ViT-H (IPAdapter)", "CLIP-ViT-bigG (IPAdapter)",
                            "InsightFace+CLIP-H (IPAdapter)", "InsightFace (InstantID)")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class FakeSDWebUI(ServesItself):
    """A fake SD WebUI server (A1111, Forge or SD.Next flavour) for tests and benchmarks."""

    def __init__(self, step_ms: float = 0.0, flavor: str = "a1111", auth: tuple[str, str] | None = None,
                 *, host: str = "127.0.0.1", port: int = 0,
                 checkpoints: tuple[str, ...] = DEFAULT_CHECKPOINTS,
                 samplers: tuple[str, ...] = DEFAULT_SAMPLERS,
                 upscalers: tuple[str, ...] = DEFAULT_UPSCALERS,
                 loras: tuple[str, ...] = DEFAULT_LORAS,
                 embeddings: tuple[str, ...] = DEFAULT_EMBEDDINGS,
                 adetailer_models: tuple[str, ...] | None = DEFAULT_ADETAILER,
                 controlnet_models: tuple[str, ...] | None = None,
                 vram_total: int | None = 24 * 1024**3, vram_free: int | None = 20 * 1024**3,
                 internal_routes: bool = True, samples_format: str = "png",
                 version: str | None = None,
                 pace: Callable[[], float] | None = None, decode_ms: float = 0.0) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}, not {flavor!r}")
        self.step_s = step_ms / 1000.0
        #: Called once per generation: a factor on `step_ms` for it (a node whose speed varies).
        self.pace = pace
        #: The VAE decode after an image's last pass: the server's state stays at its last step.
        self.decode_s = decode_ms / 1000.0
        self.flavor = flavor
        self.auth = auth
        self.host = host
        self.port = port
        self.checkpoints = tuple(checkpoints)
        self.samplers = tuple(samplers)
        self.upscalers = tuple(upscalers)
        self.loras = tuple(loras)
        #: The safetensors `__metadata__` (all strings) of a LoRA in `loras`, by that name.
        self.lora_metadata: dict[str, dict[str, str]] = {}
        #: A folder of real .safetensors LoRAs served too, as A1111 serves models/Lora.
        self.lora_dir: Path | None = None
        self.embeddings = tuple(embeddings)
        #: Files put into the model folders since the last rescan: like A1111, the lists show
        #: them only after `/sdapi/v1/refresh-checkpoints` (or refresh-loras).
        self.unlisted: dict[str, list[str]] = {"checkpoints": [], "loras": []}
        #: None means the ADetailer extension is not installed.
        self.adetailer_models = None if adetailer_models is None else tuple(adetailer_models)
        #: None means the ControlNet extension is not installed; else its model_list titles.
        self.controlnet_models = None if controlnet_models is None else tuple(controlnet_models)
        self.controlnet_modules = FORGE_CONTROLNET_MODULES if flavor == "forge" else CONTROLNET_MODULES
        #: Forge's VAE and text-encoder files (`/sdapi/v1/sd-modules`).
        self.sd_modules = ("ae.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors",
                           "t5xxl_fp8_e4m3fn.safetensors")
        #: The extension raises inside its script (a preprocessor crashed): A1111 logs it and
        #: returns the image without any control.
        self.controlnet_crashes = False
        self.vram_total = vram_total
        self.vram_free = vram_free
        #: False simulates `--nowebui`: no `/internal/*` routes.
        self.internal_routes = internal_routes
        self.version = version or VERSIONS[flavor]
        self.options: dict[str, Any] = {
            "sd_model_checkpoint": self._title(self.checkpoints[0]) if self.checkpoints else "",
            "CLIP_stop_at_last_layers": 1, "samples_format": samples_format,
            "sd_vae": "Automatic", "eta_noise_seed_delta": 0, "randn_source": "GPU",
            "live_previews_enable": True, "show_progress_every_n_steps": 1, "return_grid": True,
            "live_previews_image_format": "png", "face_restoration": False, "tiling": False,
        }
        if flavor == "forge":
            self.options.update({"forge_additional_modules": [], "forge_preset": "all",
                                 "forge_unet_storage_dtype": "Automatic"})
        #: A job of one of `hang_kinds` that reaches this step hangs there (None: never).
        self.hang_at_step: int | None = None
        self.hang_kinds: tuple[str, ...] = ("txt2img",)
        # Observation for tests and benchmarks.
        self.requests: list[RecordedRequest] = []
        #: (path, field name) of every field the real server would have ignored silently.
        self.unknown_fields: list[tuple[str, str]] = []
        #: The task id that was running when each interrupt arrived (None when idle).
        self.interrupts: list[str | None] = []
        self.skips: list[str | None] = []
        self.images_generated = 0
        self.busy_intervals: list[tuple[float, float]] = []
        self._faults: list[_Fault] = []
        self._lock = asyncio.Lock()  # asyncio.Lock wakes waiters in FIFO order
        self._job: _Job | None = None
        self._current_task: str | None = None
        self._pending: list[str] = []
        self._finished: deque[str] = deque(maxlen=16)
        self._task_counter = 0
        self._closing: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ----- lifecycle -----

    async def start(self) -> str:
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()
        app = web.Application(middlewares=[self._fault_middleware, self._auth_middleware],
                              client_max_size=512 * 1024**2)
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.port = port
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----- test controls -----

    def add_files(self, *, checkpoints: tuple[str, ...] = (), loras: tuple[str, ...] = ()) -> None:
        """Files copied into the server's model folders while it runs (listed after a rescan)."""
        self.unlisted["checkpoints"] += checkpoints
        self.unlisted["loras"] += loras

    def inject(self, fault: str, *, path: str | None = None, times: int = 1, seconds: float = 3600.0,
               chunk: int = 16) -> None:
        """Make the next `times` requests (to `path`, or any path) fail with `fault`.

        `stall` waits `seconds` before answering; `drip` sends `chunk` bytes every 50 ms.
        """
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, not {fault!r}")
        self._faults.append(_Fault(fault, path, times, seconds, chunk))

    @property
    def busy_seconds(self) -> float:
        return sum(end - start for start, end in self.busy_intervals)

    @property
    def current_task(self) -> str | None:
        return self._current_task

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def _title(self, filename: str) -> str:
        return f"{filename} [{_hash10(filename)}]"

    # ----- middleware -----

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.path in (None, path) and fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault
        return None

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler) -> web.StreamResponse:
        fault = self._take_fault(request.path)
        if fault is None:
            return await self._guarded(request, handler)
        kind = fault.kind
        if kind == "500":
            return self._error_response(_Crash("OutOfMemoryError",
                                               "CUDA out of memory. Tried to allocate 2.00 GiB"))
        if kind == "422":
            detail = [{"loc": ["body", "steps"], "msg": "Input should be a valid integer",
                       "type": "int_parsing"}]
            return web.json_response({"detail": detail}, status=422)
        if kind == "stall":
            await self._sleep(fault.seconds)
            return await self._guarded(request, handler)
        if kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError()
        response = await self._guarded(request, handler)
        body = response.body if isinstance(response, web.Response) else b""
        body = bytes(body or b"")
        if kind in ("bad_base64", "bad_image"):
            data = json.loads(body)
            bad = "%%not*base64%%" if kind == "bad_base64" else _b64(b"this is not an image at all")
            if isinstance(data.get("images"), list):
                data["images"] = [bad for _ in data["images"]] or [bad]
            if "image" in data:
                data["image"] = bad
            return web.json_response(data, status=response.status)
        if kind == "bad_json":
            return web.Response(body=b'{"images": ["iVBOR', status=200, content_type="application/json")
        stream = web.StreamResponse(status=response.status,
                                    headers={"Content-Type": "application/json"})
        stream.content_length = len(body)
        await stream.prepare(request)
        if kind == "truncated":
            await stream.write(body[: len(body) // 2])
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError()
        for start in range(0, len(body), fault.chunk):  # drip
            await stream.write(body[start:start + fault.chunk])
            if await self._sleep(0.05):
                break
        await stream.write_eof()
        return stream

    async def _guarded(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except _HTTPError as exc:
            return self._error_response(exc)
        except _Crash as exc:
            return self._error_response(exc)

    def _error_response(self, exc: _HTTPError | _Crash) -> web.Response:
        forge = self.flavor == "forge"
        if isinstance(exc, _HTTPError):
            body = ({"detail": exc.detail} if forge else
                    {"error": "HTTPException", "detail": exc.detail, "body": "",
                     "errors": f"{exc.status}: {exc.detail}"})
            return web.json_response(body, status=exc.status)
        key = "message" if forge else "errors"
        return web.json_response({"error": exc.cls, "detail": "", "body": "", key: exc.message},
                                 status=500)

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler) -> web.StreamResponse:
        path = request.path
        routed = request.match_info.http_exception is None  # unknown routes give 404, not 401
        if self.auth and routed and path.startswith("/sdapi/v1/") and path not in _OPEN_SDAPI:
            header = request.headers.get("Authorization", "")
            challenge = {"WWW-Authenticate": "Basic"}
            if not header.startswith("Basic "):
                return web.json_response({"detail": "Not authenticated"}, status=401, headers=challenge)
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            if (user, password) != tuple(self.auth):
                return web.json_response({"detail": "Incorrect username or password"}, status=401,
                                         headers=challenge)
        return await handler(request)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, but wake at once when the server stops; True when it is stopping."""
        assert self._closing is not None
        if seconds <= 0:
            await asyncio.sleep(0)
            return self._closing.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
        return self._closing.is_set()

    # ----- routes -----

    def _routes(self, app: web.Application) -> None:
        get, post = app.router.add_get, app.router.add_post
        post("/sdapi/v1/txt2img", self._txt2img)
        post("/sdapi/v1/img2img", self._img2img)
        post("/sdapi/v1/extra-single-image", self._extras)
        post("/sdapi/v1/png-info", self._png_info)
        get("/sdapi/v1/progress", self._progress)
        post("/sdapi/v1/interrupt", self._interrupt)
        post("/sdapi/v1/skip", self._skip)
        get("/sdapi/v1/options", self._get_options)
        post("/sdapi/v1/options", self._set_options)
        get("/sdapi/v1/cmd-flags", self._cmd_flags)
        get("/sdapi/v1/sd-models", self._sd_models)
        post("/sdapi/v1/refresh-checkpoints", self._refresh)
        post("/sdapi/v1/refresh-vae", self._refresh)
        if self.flavor != "sdnext":  # A1111 1.8+, Forge
            post("/sdapi/v1/refresh-embeddings", self._refresh)
        get("/sdapi/v1/samplers", self._samplers)
        get("/sdapi/v1/upscalers", self._upscalers)
        get("/sdapi/v1/embeddings", self._embeddings)
        get("/sdapi/v1/memory", self._memory)
        get("/sdapi/v1/loras", self._loras)
        post("/sdapi/v1/refresh-loras", self._refresh)
        get("/sdapi/v1/scripts", self._scripts)
        if self.flavor != "sdnext":
            get("/sdapi/v1/schedulers", self._schedulers)
            get("/sdapi/v1/latent-upscale-modes", self._latent_modes)
        if self.controlnet_models is not None:
            # Extension routes: registered on the app, outside /sdapi/v1 and its auth. Forge's
            # built-in ControlNet has the two lists but no version route.
            if self.flavor != "forge":
                get("/controlnet/version", self._controlnet_version)
            get("/controlnet/model_list", self._controlnet_models)
            get("/controlnet/module_list", self._controlnet_modules)
        if self.flavor == "forge":
            get("/sdapi/v1/sd-modules", self._sd_modules)
        else:
            get("/sdapi/v1/sd-vae", self._sd_vae)
        if self.flavor == "sdnext":
            get("/sdapi/v1/version", self._sdnext_version)
            get("/sdapi/v1/status", self._sdnext_status)
        if self.internal_routes:
            post("/internal/progress", self._internal_progress)
            get("/internal/pending-tasks", self._pending_tasks)
        if self.adetailer_models is not None:
            get("/adetailer/v1/version", self._ad_version)
            get("/adetailer/v1/ad_model", self._ad_models)

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError as exc:
            raise _HTTPError(422, [{"loc": ["body"], "msg": "JSON decode error",
                                    "type": "json_invalid"}]) from exc
        self.requests.append(RecordedRequest(request.method, request.path, payload))
        return payload

    async def _parse(self, request: web.Request):
        payload = await self._body(request)
        model = REQUEST_MODELS[self.flavor][request.path]
        try:
            parsed = model.model_validate(payload if payload is not None else {})
        except ValidationError as exc:
            raise _HTTPError(422, validation_detail(exc, with_input=self.flavor == "forge")) from exc
        for name in parsed.model_extra or {}:
            self.unknown_fields.append((request.path, name))
        return parsed

    def _record(self, path: str, payload: Any) -> None:
        self.requests.append(RecordedRequest("GET", path, payload))

    # --- listings ---

    async def _sd_models(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response([
            {"title": self._title(name), "model_name": name.rsplit(".", 1)[0].replace("/", "_"),
             "hash": _hash10(name)[:8], "sha256": hashlib.sha256(name.encode()).hexdigest(),
             "filename": f"C:\\webui\\models\\Stable-diffusion\\{name}", "config": None}
            for name in self.checkpoints])

    async def _samplers(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response([{"name": n, "aliases": [n.lower().replace(" ", "_")], "options": {}}
                                  for n in self.samplers])

    async def _schedulers(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response([{"name": n, "label": label, "aliases": None, "default_rho": -1,
                                   "need_inner_model": False} for n, label in SCHEDULERS])

    async def _upscalers(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response([{"name": n, "model_name": None, "model_path": None, "model_url": None,
                                   "scale": 4.0} for n in self.upscalers])

    async def _latent_modes(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response([{"name": n} for n in LATENT_MODES])

    async def _loras(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        listed = [a1111_lora_item(n, self.lora_metadata.get(n, {})) for n in self.loras]
        listed += [a1111_lora_item(n, meta) for n, (meta, _hash) in read_lora_folder(self.lora_dir).items()]
        return web.json_response(listed)

    def _lora_hashes(self, prompt: str) -> str | None:
        """`Lora hashes` as the Lora extension writes it for the LoRAs a prompt names."""
        known: dict[str, str] = {}
        for name in self.loras:
            known_hash = self.lora_metadata.get(name, {}).get("sshs_model_hash")
            if known_hash:
                known[name.rsplit("/", 1)[-1]] = known_hash
        for name, (meta, full) in read_lora_folder(self.lora_dir).items():
            known[name.rsplit("/", 1)[-1]] = full
            if meta.get("ss_output_name"):
                known.setdefault(meta["ss_output_name"], full)
        pairs = {}
        for mentioned in re.findall(r"<lora:([^:>]+)", prompt):
            if mentioned in known:
                pairs[mentioned.replace(":", "").replace(",", "")] = known[mentioned][:12]
        return ", ".join(f"{k}: {v}" for k, v in pairs.items()) or None

    async def _embeddings(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        loaded = {n: {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": 768,
                      "vectors": 1} for n in self.embeddings}
        return web.json_response({"loaded": loaded, "skipped": {}})

    async def _memory(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        ram = {"free": 20 * 1024**3, "used": 3 * 1024**3, "total": 32 * 1024**3}
        if self.vram_total is None:
            cuda: dict[str, Any] = {"error": "unavailable"}
        else:
            free = self.vram_free if self.vram_free is not None else self.vram_total
            used = self.vram_total - free
            cuda = {"system": {"free": free, "used": used, "total": self.vram_total},
                    "active": {"current": used, "peak": used}, "allocated": {"current": used, "peak": used},
                    "reserved": {"current": used, "peak": used}, "inactive": {"current": 0, "peak": 0},
                    "events": {"retries": 0, "oom": 0}}
        return web.json_response({"ram": ram, "cuda": cuda})

    async def _scripts(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        always = ["adetailer"] if self.adetailer_models is not None else []
        always += ["controlnet"] if self.controlnet_models is not None else []
        return web.json_response({"txt2img": ["x/y/z plot", *always], "img2img": ["x/y/z plot", *always]})

    async def _cmd_flags(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response({"api": True, "nowebui": not self.internal_routes,
                                  "api_auth": ":".join(self.auth) if self.auth else None})

    async def _sd_vae(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response([{"model_name": "sdxl_vae.safetensors", "filename": "sdxl_vae.safetensors"}])

    async def _sd_modules(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        # As Forge's `get_sd_modules`: the file name, and its full path under models/VAE or
        # models/text_encoder.
        folders = {"ae.safetensors": "VAE"}
        return web.json_response([
            {"model_name": name,
             "filename": f"C:\\webui\\models\\{folders.get(name, 'text_encoder')}\\{name}"}
            for name in self.sd_modules])

    async def _sdnext_version(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response({"app": "sd.next", "updated": self.version, "hash": "431bcc3",
                                  "branch": "master", "url": "https://github.com/vladmandic/automatic"})

    async def _sdnext_status(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response({"status": "running" if self._job else "idle",
                                  "task": self._current_task or ""})

    async def _ad_version(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response({"version": ADETAILER_VERSION})

    async def _ad_models(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response({"ad_model": list(self.adetailer_models or ())})

    async def _refresh(self, request: web.Request) -> web.Response:
        await self._body(request)
        async with self._lock:  # as A1111's rescans: after the running job
            if request.path.endswith("/refresh-checkpoints"):
                self.checkpoints += tuple(self.unlisted["checkpoints"])
                self.unlisted["checkpoints"] = []
            elif request.path.endswith("/refresh-loras"):
                self.loras += tuple(self.unlisted["loras"])
                self.unlisted["loras"] = []
            return web.json_response(None)

    # --- options ---

    async def _get_options(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response(self.options)

    async def _set_options(self, request: web.Request) -> web.Response:
        payload = await self._body(request)
        if not isinstance(payload, dict):
            raise _HTTPError(422, [{"loc": ["body"], "msg": "Input should be a valid dictionary",
                                    "type": "dict_type"}])
        for key in payload:
            if key not in self.options:
                raise _Crash("KeyError", repr(key))
        if "sd_model_checkpoint" in payload:
            name = self._checkpoint_for(payload["sd_model_checkpoint"])
            if name is None:
                raise _Crash("RuntimeError", f"model {payload['sd_model_checkpoint']!r} not found")
            payload = {**payload, "sd_model_checkpoint": self._title(name)}
            if self.flavor != "forge":  # A1111 loads the model behind the running job
                async with self._lock:
                    self.options.update(payload)
                return web.json_response(None)
        self.options.update(payload)
        return web.json_response(None)

    def _checkpoint_for(self, alias: Any) -> str | None:
        """The checkpoint filename an exact alias names (title, name, model_name, stem, hash)."""
        if not isinstance(alias, str):
            return None
        for name in self.checkpoints:
            stem = name.rsplit(".", 1)[0]
            aliases = {name, self._title(name), stem, stem.replace("/", "_"), stem.rsplit("/", 1)[-1],
                       _hash10(name), _hash10(name)[:8], hashlib.sha256(name.encode()).hexdigest(),
                       f"{stem} [{_hash10(name)}]"}
            if alias in aliases:
                return name
        return None

    # --- progress, interrupt, skip ---

    def _fraction(self, job: _Job) -> float:
        if job.job_count <= 0:
            return 0.0
        step = job.sampling_step / job.sampling_steps if job.sampling_steps else 0.0
        return min(1.0, job.job_no / job.job_count + step / job.job_count)

    def _preview(self, job: _Job) -> str:
        return _b64(render_image(64, 64, job.sampling_step, job.task_id, note=f"step {job.sampling_step}"))

    async def _progress(self, request: web.Request) -> web.Response:
        self._record(request.path, dict(request.query))
        job = self._job
        skip_image = request.query.get("skip_current_image", "false").lower() == "true"
        if job is None:
            state = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "",
                     "job_count": 0, "job_timestamp": "0", "job_no": 0, "sampling_step": 0,
                     "sampling_steps": 0}
            if self.flavor == "sdnext":
                del state["stopping_generation"]
            return web.json_response({"progress": 0, "eta_relative": 0, "state": state,
                                      "current_image": None, "textinfo": None})
        progress = min(1.0, 0.01 + self._fraction(job))
        elapsed = time.monotonic() - job.started
        state = {"skipped": job.skipped, "interrupted": job.interrupted, "stopping_generation": False,
                 "job": job.job, "job_count": job.job_count, "job_timestamp": job.timestamp,
                 "job_no": job.job_no, "sampling_step": job.sampling_step,
                 "sampling_steps": job.sampling_steps}
        if self.flavor == "sdnext":
            del state["stopping_generation"]
        image = None
        if not skip_image and job.sampling_step > 0 and self.options["live_previews_enable"]:
            image = self._preview(job)
        return web.json_response({"progress": progress, "eta_relative": elapsed / progress - elapsed,
                                  "state": state, "current_image": image, "textinfo": None})

    async def _internal_progress(self, request: web.Request) -> web.Response:
        req = await self._parse(request)
        task = req.id_task
        job = self._job
        active = job is not None and self._current_task == task
        queued = task in self._pending
        completed = task in self._finished
        out: dict[str, Any] = {"active": active, "queued": queued, "completed": completed,
                               "progress": None, "eta": None, "live_preview": None,
                               "id_live_preview": req.id_live_preview if req.id_live_preview is not None
                               else -1, "textinfo": None}
        if active and job is not None:
            progress = self._fraction(job)
            elapsed = time.monotonic() - job.started
            out["progress"] = progress
            out["eta"] = elapsed / progress - elapsed if progress > 0 else None
            preview_id = job.job_no * 100000 + job.sampling_step
            # As modules/progress.py: a frame only with live previews on and a new preview id.
            if req.live_preview is not False and self.options["live_previews_enable"] and \
                    job.sampling_step > 0 and preview_id != req.id_live_preview:
                out["live_preview"] = "data:image/png;base64," + self._preview(job)
                out["id_live_preview"] = preview_id
        elif queued:
            out["textinfo"] = f"In queue: {self._pending.index(task) + 1}/{len(self._pending)}"
        else:
            out["textinfo"] = "Waiting..."
        return web.json_response(out)

    async def _pending_tasks(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response({"size": len(self._pending), "tasks": list(self._pending)})

    async def _interrupt(self, request: web.Request) -> web.Response:
        await self._body(request)
        self.interrupts.append(self._current_task if self._job else None)
        if self._job is not None:
            self._job.interrupted = True
        return web.json_response({})

    async def _skip(self, request: web.Request) -> web.Response:
        await self._body(request)
        self.skips.append(self._current_task if self._job else None)
        if self._job is not None:
            self._job.skipped = True
        return web.json_response(None)

    # --- generation ---

    def _resolve_sampler(self, name: str | None, index: str | None, scheduler: str | None
                         ) -> tuple[str, str]:
        labels = {n: label for n, label in SCHEDULERS}
        by_label = {label.lower(): label for _, label in SCHEDULERS}
        sched = "Automatic"
        if scheduler:
            sched = labels.get(scheduler.lower()) or by_label.get(scheduler.lower()) or "Automatic"
        wanted = name or index or "Euler"
        known = {s.lower(): s for s in self.samplers}
        for sampler in self.samplers:
            known.setdefault(sampler.lower().replace(" ", "_"), sampler)
        if wanted.lower() in known:
            return known[wanted.lower()], sched
        for _, label in SCHEDULERS:  # "DPM++ 2M Karras" -> "DPM++ 2M" + "Karras"
            if wanted.endswith(" " + label) and wanted[: -len(label) - 1].lower() in known:
                return known[wanted[: -len(label) - 1].lower()], label if sched == "Automatic" else sched
        return self.samplers[0], sched  # unknown names fall back silently, like A1111

    def _overrides(self, overrides: dict | None) -> dict[str, Any]:
        overrides = dict(overrides or {})
        for key in overrides:
            if key not in self.options:
                raise _Crash("KeyError", repr(key))
        if "sd_model_checkpoint" in overrides:
            name = self._checkpoint_for(overrides["sd_model_checkpoint"])
            if name is None:
                del overrides["sd_model_checkpoint"]  # dropped silently, like A1111
            else:
                overrides["sd_model_checkpoint"] = self._title(name)
        return {**self.options, **overrides}

    async def _controlnet_version(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        return web.json_response({"version": 2})

    async def _controlnet_models(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        forge = ["None"] if self.flavor == "forge" else []  # Forge lists "None" first
        return web.json_response({"model_list": forge + list(self.controlnet_models or ())})

    async def _controlnet_modules(self, request: web.Request) -> web.Response:
        self._record(request.path, None)
        if self.flavor == "forge":  # its module_detail is a TODO in lib_controlnet/api.py
            return web.json_response({"module_list": list(self.controlnet_modules)})
        return web.json_response({"module_list": list(self.controlnet_modules),
                                  "module_detail": {m: {"model_free": False, "sliders": []}
                                                    for m in self.controlnet_modules}})

    def _controlnet_units(self, scripts: dict | None) -> list[str]:
        """Infotext values of the ControlNet units that run. As in the extension, a bad unit
        (unknown module or model, weight outside 0..2, start after end, no image) raises inside
        the script, which A1111 logs and skips: the image comes back without any control.
        Forge looks names up exactly: its "None" module, a model's full "name [hash]" title."""
        for key, value in (scripts or {}).items():
            if key.lower() != "controlnet" or self.controlnet_crashes:
                continue
            args = (value or {}).get("args", []) if isinstance(value, dict) else []
            out = []
            titles = set(self.controlnet_models or ())
            names = {re.sub(r"\s*\[[0-9a-f]+\]$", "", t) for t in titles}
            for unit in args:
                if not isinstance(unit, dict) or not unit.get("enabled", False):
                    continue
                module, model = unit.get("module", "none"), unit.get("model", "None")
                weight = float(unit.get("weight", 1.0))
                start, end = float(unit.get("guidance_start", 0.0)), float(unit.get("guidance_end", 1.0))
                if self.flavor == "forge":
                    known_module, known_model = module in self.controlnet_modules, model in titles
                else:
                    known_module = module == "none" or module in self.controlnet_modules
                    known_model = model in titles or model in names
                if not (known_module and known_model) or not 0 <= weight <= 2 or start > end:
                    return []
                try:
                    _decode_image(unit.get("image") or "")
                except _HTTPError:
                    return []
                title = model if model in titles else next(t for t in titles if t.startswith(model + " ["))
                out.append(f"Module: {module}, Model: {title}, Weight: {weight}, "
                           f"Resize Mode: {unit.get('resize_mode', 'Crop and Resize')}, Processor Res: 512, "
                           f"Threshold A: 100.0, Threshold B: 200.0, Guidance Start: {start}, "
                           f"Guidance End: {end}, Pixel Perfect: {unit.get('pixel_perfect', False)}, "
                           f"Control Mode: {unit.get('control_mode', 'Balanced')}")
            return out
        return []

    def _adetailer_tabs(self, path: str, scripts: dict | None) -> tuple[bool, list[tuple[int, dict]]]:
        """(skip_img2img, [(tab number from 0, tab)] of the tabs that run) from alwayson_scripts;
        bad or switched-off tabs are skipped like ADetailer does, keeping the others' numbers
        (its infotext suffix comes from the tab's place: tab 3 says "3rd" even if tab 2 is off)."""
        skip, tabs = False, []
        for key, value in (scripts or {}).items():
            if key.lower() == "controlnet" and self.controlnet_models is not None:
                continue  # read by _controlnet_units
            if key.lower() != "adetailer" or self.adetailer_models is None:
                raise _HTTPError(422, f"always on script {key} not found")
            args = (value or {}).get("args", []) if isinstance(value, dict) else []
            enabled = args[0] if args and isinstance(args[0], bool) else True
            if len(args) > 1 and isinstance(args[1], bool):
                skip = args[1]
            if not enabled:
                return False, []
            for number, tab in enumerate([a for a in args if isinstance(a, dict)][:4]):
                try:
                    parsed = ADetailerTab.model_validate(tab)
                except ValidationError:
                    continue
                extra = list(parsed.model_extra or {})
                for name in extra:
                    self.unknown_fields.append((f"{path}#ADetailer", name))
                if extra or parsed.ad_model in (None, "None") or parsed.ad_tab_enable is False:
                    continue
                if parsed.ad_model not in self.adetailer_models:
                    continue  # the detector fails inside the script; the request still succeeds
                tabs.append((number, parsed.model_dump(exclude_none=True)))
        return skip, tabs

    def _new_task_id(self, kind: str) -> str:
        self._task_counter += 1
        return f"task({kind}-{self._task_counter:07d})"

    async def _txt2img(self, request: web.Request) -> web.Response:
        req = await self._parse(request)
        return await self._generate(request.path, "txt2img", req)

    async def _img2img(self, request: web.Request) -> web.Response:
        req = await self._parse(request)
        if req.init_images is None:
            raise _HTTPError(404, "Init image not found")
        init = [_decode_image(data) for data in req.init_images]
        if req.mask is not None:
            _decode_image(req.mask)
        return await self._generate(request.path, "img2img", req, init)

    async def _generate(self, path: str, kind: str, req, init: list[Image.Image] | None = None
                        ) -> web.Response:
        task_id = getattr(req, "force_task_id", None) or self._new_task_id(kind)
        self._pending.append(task_id)
        try:
            async with self._lock:
                self._pending.remove(task_id)
                return await self._run(path, kind, req, task_id, init)
        finally:
            if task_id in self._pending:
                self._pending.remove(task_id)

    async def _run(self, path: str, kind: str, req, task_id: str, init: list[Image.Image] | None
                   ) -> web.Response:
        started = time.perf_counter()
        self._current_task = task_id
        job = _Job(task_id=task_id, job=f"scripts_{kind}")
        self._job = job
        try:
            result = await self._sample(path, kind, req, job, init)
        finally:
            self._job = None
            self.busy_intervals.append((started, time.perf_counter()))
        self._current_task = None  # an exception above leaves the task "active", like A1111
        self._finished.append(task_id)
        return result

    async def _sample(self, path: str, kind: str, req, job: _Job, init: list[Image.Image] | None
                      ) -> web.Response:
        opts = self._overrides(req.override_settings)
        sampler, scheduler = self._resolve_sampler(req.sampler_name, req.sampler_index, req.scheduler)
        steps = req.steps if req.steps is not None else 50
        n_iter = req.n_iter or 1
        batch = req.batch_size or 1
        width = req.width if req.width is not None else 512
        height = req.height if req.height is not None else 512
        cfg = req.cfg_scale if req.cfg_scale is not None else 7.0
        prompt = req.prompt or ""
        negative = req.negative_prompt or ""
        seed = req.seed if req.seed not in (None, -1) else random.randrange(2**32)
        hires = kind == "txt2img" and bool(req.enable_hr)
        skip_img2img, ad_tabs = self._adetailer_tabs(path, req.alwayson_scripts)
        checkpoint = opts["sd_model_checkpoint"]
        model_file = self._checkpoint_for(checkpoint) or ""
        model_name = model_file.rsplit(".", 1)[0].replace("/", "_")
        clip_skip = int(opts.get("CLIP_stop_at_last_layers") or 1)

        params: dict[str, Any] = {"Steps": steps, "Sampler": sampler}
        if scheduler != "Automatic":
            params["Schedule type"] = scheduler
        params["CFG scale"] = cfg
        if self.flavor == "forge" and "flux" in model_file.lower():
            # Forge writes it only for a model that uses distilled guidance (Flux).
            dcfg = getattr(req, "distilled_cfg_scale", None)
            params["Distilled CFG Scale"] = dcfg if dcfg is not None else 3.5
        params["Seed"] = seed
        out_w, out_h = width, height
        if kind == "img2img" and skip_img2img and init:
            out_w, out_h = init[0].size
            steps = 1  # ADetailer reduces the main pass to one step
        params["Size"] = f"{out_w}x{out_h}"
        params["Model hash"] = _hash10(model_file)
        params["Model"] = model_name
        if req.refiner_checkpoint:
            refiner = self._checkpoint_for(req.refiner_checkpoint)
            if refiner is None:
                raise _Crash("RuntimeError", f"Could not find checkpoint with name {req.refiner_checkpoint}")
        if kind == "img2img":
            params["Denoising strength"] = req.denoising_strength if req.denoising_strength is not None \
                else 0.75
        hr_steps = 0
        if hires:
            hr_denoise = req.denoising_strength
            if self.flavor == "sdnext":
                hr_denoise = getattr(req, "hr_denoising_strength", None)
                hr_denoise = 0.5 if hr_denoise is None else hr_denoise
            if hr_denoise is None:
                raise _Crash("TypeError", "unsupported operand type(s) for *: 'NoneType' and 'int'")
            if self.flavor == "forge" and req.hr_additional_modules is None:
                raise _Crash("TypeError", "argument of type 'NoneType' is not iterable")
            if req.hr_sampler_name == "Use same sampler":  # a UI placeholder, not a sampler
                raise _Crash("AssertionError", "Sampler not found: Use same sampler")
            upscaler = req.hr_upscaler or "Latent"
            if upscaler not in self.upscalers and upscaler not in LATENT_MODES:
                raise _Crash("AssertionError", f"could not find upscaler named {upscaler}")
            params["Denoising strength"] = hr_denoise
            scale = req.hr_scale if req.hr_scale is not None else 2.0
            rx, ry = req.hr_resize_x or 0, req.hr_resize_y or 0
            if rx == 0 and ry == 0:
                out_w, out_h = int(width * scale), int(height * scale)
            elif rx == 0:
                out_w, out_h = ry * width // height, ry
            elif ry == 0:
                out_w, out_h = rx, rx * height // width
            else:
                out_w, out_h = rx, ry
            # The second pass runs on a latent of target // 8, so the image is floored to 8.
            out_w, out_h = out_w // 8 * 8, out_h // 8 * 8
            hr_steps = req.hr_second_pass_steps or 0
        if clip_skip > 1:
            params["Clip skip"] = clip_skip
        if hires:
            if (req.hr_resize_x or 0) == 0 and (req.hr_resize_y or 0) == 0:
                params["Hires upscale"] = req.hr_scale if req.hr_scale is not None else 2.0
            else:
                params["Hires resize"] = f"{req.hr_resize_x or 0}x{req.hr_resize_y or 0}"  # as asked
            if hr_steps:
                params["Hires steps"] = hr_steps
            params["Hires upscaler"] = req.hr_upscaler or "Latent"
            if req.hr_sampler_name:
                hr_sampler, _ = self._resolve_sampler(req.hr_sampler_name, None, None)
                if hr_sampler != sampler:
                    params["Hires sampler"] = hr_sampler
            if self.flavor == "forge":
                # Forge's hires pass runs at hr_cfg, which defaults to 1.0 over the API.
                params["Hires CFG Scale"] = req.hr_cfg if req.hr_cfg is not None else 1.0
        if req.refiner_checkpoint:
            refiner = self._checkpoint_for(req.refiner_checkpoint) or ""
            params["Refiner"] = self._title(refiner)
            params["Refiner switch at"] = req.refiner_switch_at if req.refiner_switch_at is not None else 0.8
        for number, tab in ad_tabs:
            sfx = _ORDINALS[number]
            params[f"ADetailer model{sfx}"] = tab["ad_model"]
            if tab.get("ad_prompt"):
                params[f"ADetailer prompt{sfx}"] = tab["ad_prompt"]
            params[f"ADetailer confidence{sfx}"] = tab.get("ad_confidence", 0.3)
            params[f"ADetailer mask blur{sfx}"] = tab.get("ad_mask_blur", 4)
            params[f"ADetailer denoising strength{sfx}"] = tab.get("ad_denoising_strength", 0.4)
            params[f"ADetailer inpaint only masked{sfx}"] = tab.get("ad_inpaint_only_masked", True)
            params[f"ADetailer inpaint padding{sfx}"] = tab.get("ad_inpaint_only_masked_padding", 32)
        for number, unit_text in enumerate(self._controlnet_units(req.alwayson_scripts)):
            params[f"ControlNet {number}"] = unit_text
        if ad_tabs:
            params["ADetailer version"] = ADETAILER_VERSION
        params["Lora hashes"] = self._lora_hashes(prompt)
        params["Version"] = self.version

        passes = [steps] + ([hr_steps or steps] if hires else [])
        passes += [max(1, steps // 2)] * len(ad_tabs)  # each detection is one inpaint pass
        job.job_count = n_iter * len(passes)
        images: list[str] = []
        infotexts: list[str] = []
        seeds: list[int] = []
        fmt = str(opts.get("samples_format", "png")).lower()
        step_s = self.step_s * (self.pace() if self.pace is not None else 1.0)
        for iteration in range(n_iter):
            if job.interrupted:
                break
            job.skipped = False
            size = (out_w, out_h)
            for number, pass_steps in enumerate(passes):
                job.sampling_steps = pass_steps
                for step in range(pass_steps):
                    if job.interrupted or job.skipped:
                        break
                    if await self._sleep(step_s):
                        raise _Crash("RuntimeError", "the server is shutting down")
                    job.sampling_step = step + 1
                    if self.hang_at_step is not None and kind in self.hang_kinds \
                            and step + 1 == self.hang_at_step:
                        # A stuck sampler: the job stays active at this step while every other
                        # route still answers (until interrupted or the server stops).
                        while not job.interrupted and not await self._sleep(0.05):
                            pass
                if number == len(passes) - 1 and self.decode_s and not job.interrupted:
                    await self._sleep(self.decode_s)
                job.sampling_step = 0
                job.job_no += 1
                if job.interrupted or job.skipped:
                    if hires and number == 0:
                        size = (width, height)  # stopped in the first pass: no hires pass
                    break
            # The VAE decodes what was sampled, stopped or not (about two steps, at most 0.1 s).
            if await self._sleep(min(self.step_s * 2, 0.1)):
                raise _Crash("RuntimeError", "the server is shutting down")
            for b in range(batch):
                image_seed = seed + iteration * batch + b
                text = create_infotext(prompt, negative, {**params, "Seed": image_seed})
                data = await asyncio.to_thread(render_image, *size, image_seed, prompt, text, fmt,
                                               "interrupted" if job.interrupted else "")
                images.append(_b64(data))
                infotexts.append(text)
                seeds.append(image_seed)
                self.images_generated += 1
        info = {
            "prompt": prompt, "all_prompts": [prompt] * len(seeds), "negative_prompt": negative,
            "all_negative_prompts": [negative] * len(seeds), "seed": seeds[0] if seeds else seed,
            "all_seeds": seeds, "subseed": -1, "all_subseeds": [-1] * len(seeds),
            "subseed_strength": req.subseed_strength or 0, "width": width, "height": height,
            "sampler_name": sampler, "cfg_scale": cfg, "steps": steps, "batch_size": batch,
            "restore_faces": bool(req.restore_faces), "face_restoration_model": None,
            "sd_model_name": model_name, "sd_model_hash": _hash10(model_file),
            "sd_vae_name": None, "sd_vae_hash": None, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
            "denoising_strength": params.get("Denoising strength"),
            "extra_generation_params": {k: v for k, v in params.items()
                                        if k.startswith(("Hires", "Schedule", "ADetailer", "Refiner"))},
            "index_of_first_image": 0, "infotexts": infotexts, "styles": req.styles or [],
            "job_timestamp": job.timestamp, "clip_skip": clip_skip,
            "is_using_inpainting_conditioning": False, "version": self.version,
        }
        parameters = req.model_dump()
        if kind == "img2img" and not req.include_init_images:
            parameters["init_images"] = None
            parameters["mask"] = None
        if req.send_images is False:
            images = []
        return web.json_response({"images": images, "parameters": parameters, "info": json.dumps(info)})

    # --- extras, png-info ---

    async def _extras(self, request: web.Request) -> web.Response:
        req = await self._parse(request)
        image = _decode_image(req.image)
        for name in (req.upscaler_1 or "None", req.upscaler_2 or "None"):
            if name not in self.upscalers:
                raise _Crash("AssertionError", f"could not find upscaler named {name}")
        async with self._lock:
            started = time.perf_counter()
            try:
                if req.resize_mode == 1:
                    size = (req.upscaling_resize_w or 512, req.upscaling_resize_h or 512)
                else:
                    factor = req.upscaling_resize if req.upscaling_resize is not None else 2.0
                    size = (int(image.width * factor), int(image.height * factor))
                await self._sleep(self.step_s * 5)

                def work() -> bytes:
                    out = io.BytesIO()
                    info = PngImagePlugin.PngInfo()
                    text = image.info.get("parameters")
                    if text:
                        info.add_text("parameters", text)
                    info.add_text("postprocessing", f"Postprocess upscaler: {req.upscaler_1}")
                    image.convert("RGB").resize(size, Image.Resampling.NEAREST).save(
                        out, format="PNG", pnginfo=info, compress_level=1)
                    return out.getvalue()

                data = await asyncio.to_thread(work)
            finally:
                self.busy_intervals.append((started, time.perf_counter()))
        self.images_generated += 1
        html = (f"<p>Postprocess upscale by: {req.upscaling_resize}, "
                f"Postprocess upscaler: {req.upscaler_1}</p>")
        return web.json_response({"html_info": html, "image": _b64(data)})

    async def _png_info(self, request: web.Request) -> web.Response:
        req = await self._parse(request)
        image = _decode_image(req.image)
        text = image.info.get("parameters", "")
        items = {k: v for k, v in image.info.items() if k != "parameters" and isinstance(v, str)}
        return web.json_response({"info": text, "items": items,
                                  "parameters": parse_infotext(text) if text else {}})


# ----- pytest fixtures (import them into a conftest.py) -----

def read_lora_folder(folder: Path | None) -> dict[str, tuple[dict[str, str], str]]:
    """"sub/stem" -> (header metadata, A1111's LoRA hash) for each .safetensors under *folder*.

    The hash is what `extensions-builtin/Lora/network.py` uses: the embedded `sshs_model_hash`,
    else `hashes.addnet_hash_safetensors` (sha256 of everything after the header).
    """
    found: dict[str, tuple[dict[str, str], str]] = {}
    if folder is None:
        return found
    for path in sorted(Path(folder).rglob("*.safetensors")):
        data = path.read_bytes()
        length = int.from_bytes(data[:8], "little")
        try:
            header = json.loads(data[8:8 + length])
        except ValueError:
            continue  # A1111 lists it without metadata; the fake simply leaves it out
        meta = header.get("__metadata__") or {}
        full = meta.get("sshs_model_hash") or hashlib.sha256(data[8 + length:]).hexdigest()
        found[path.relative_to(folder).with_suffix("").as_posix()] = (meta, full)
    return found


def a1111_lora_item(name: str, metadata: dict[str, str]) -> dict[str, Any]:
    """One item of `/sdapi/v1/loras` as the built-in Lora extension builds it (`create_lora_json`).

    *name* may carry sub-folders ("style/neon"); A1111's name is the bare file stem, the alias
    `ss_output_name` or that stem, and metadata values starting with "{" arrive parsed as JSON
    (`read_metadata_from_safetensors`), so `ss_tag_frequency` is an object, not a string.
    """
    stem = name.rsplit("/", 1)[-1]
    parsed: dict[str, Any] = {}
    for key, value in metadata.items():
        parsed[key] = value
        if isinstance(value, str) and value[:1] == "{":
            with contextlib.suppress(ValueError):
                parsed[key] = json.loads(value)
    folder = name.replace("/", "\\")
    return {"name": stem, "alias": metadata.get("ss_output_name") or stem,
            "path": f"C:\\webui\\models\\Lora\\{folder}.safetensors", "metadata": parsed}


@pytest_asyncio.fixture
async def fake_sdwebui(request):
    """A started fake on the test's event loop; `@pytest.mark.parametrize(..., indirect=True)`
    with a dict of constructor arguments changes it."""
    kwargs = getattr(request, "param", None) or {}
    async with FakeSDWebUI(**kwargs) as fake:
        yield fake


@pytest.fixture
def fake_sdwebui_thread(request):
    """A fake serving from its own thread (for qasync GUI tests, subprocesses, benchmarks)."""
    kwargs = getattr(request, "param", None) or {}
    with FakeSDWebUI(**kwargs).running_in_thread() as fake:
        yield fake


@contextlib.contextmanager
def serving_in_process(step_ms: float = 0.0, *, cwd: str | None = None) -> Iterator[str]:
    """The fake in a process of its own (benchmarks: it shares neither our event loop nor our
    GIL); yields its URL and stops it afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.sdwebui", "--port", "0", "--step-ms", str(step_ms)],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "listening at" not in line:
            raise RuntimeError(f"the fake server did not start: {line!r}")
        yield line.split("listening at", 1)[1].split()[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake AUTOMATIC1111/Forge/SD.Next WebUI API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7861)
    parser.add_argument("--step-ms", type=float, default=20.0)
    parser.add_argument("--flavor", choices=FLAVORS, default="a1111")
    parser.add_argument("--auth", default=None, help="user:password for HTTP basic auth")
    parser.add_argument("--controlnet", metavar="MODEL", nargs="*", default=None,
                        help="serve the ControlNet routes with these model titles ('name [hash]')")
    args = parser.parse_args(argv)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None

    async def serve() -> None:
        fake = FakeSDWebUI(step_ms=args.step_ms, flavor=args.flavor, auth=auth, host=args.host,
                           port=args.port, controlnet_models=args.controlnet)
        url = await fake.start()
        print(f"Fake {args.flavor} WebUI listening at {url} (Ctrl+C to stop)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await fake.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
