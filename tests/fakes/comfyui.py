"""A fake ComfyUI server: real HTTP + WebSocket on 127.0.0.1, reproducing observed behaviour.

Every behaviour here was observed on a real ComfyUI 0.33 (see tests/data/comfyui/ for the
recorded answers): the message order of success / error / interrupt / cached runs, routing of
events to the socket whose clientId owns the prompt, the history entry written a moment after
`execution_success`, `node_errors` shapes, `/view`, `/upload/image`, `/queue` delete,
`/interrupt` with and without a prompt_id, `/api/jobs/{id}/cancel`, per-step `progress`, and
binary preview frames in both layouts. It does no diffusion: images are flat colours derived
from the seed, at the sizes the graph asks for.

Run standalone: `python -m tests.fakes.comfyui --port 8188 --step-ms 20`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import gzip
import hashlib
import heapq
import io
import itertools
import json
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from PIL import Image

from tests.fakes.serving import ServesItself

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "comfyui"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

DEFAULT_CHECKPOINTS = ("sd15_base.safetensors", "sdxl_base_1.0.safetensors", "sdxl_refiner_1.0.safetensors")
DEFAULT_UPSCALE_MODELS = ("RealESRGAN_x4plus.pth", "4x-UltraSharp.pth", "RealESRGAN_x2plus.pth")
DEFAULT_LORAS = ("detail_tweaker.safetensors", "style/ink.safetensors")
DEFAULT_DETECTORS = ("bbox/face_yolov8n.pt", "bbox/hand_yolov8n.pt", "segm/person_yolov8n-seg.pt")
#: models/diffusion_models (UNETLoader), models/text_encoders (CLIP loaders), models/vae and
#: models/controlnet: empty by default, as on a node that only runs checkpoints.
DEFAULT_DIFFUSION_MODELS: tuple[str, ...] = ()
DEFAULT_TEXT_ENCODERS: tuple[str, ...] = ()
DEFAULT_VAES: tuple[str, ...] = ()
DEFAULT_CONTROLNETS: tuple[str, ...] = ()
#: What a real VAELoader lists besides the files (ComfyUI adds the TAESD and pixel-space entries).
VAE_EXTRAS = ("pixel_space",)

#: Output nodes whose images are written to disk and listed in history.
IMAGE_OUTPUT_CLASSES = {"SaveImage": "output", "PreviewImage": "temp"}


def _face_detailer_info() -> dict:
    """NodeInfo of Impact Pack's FaceDetailer and Subpack's detector provider (custom nodes)."""
    samplers = None  # filled from KSampler at load time
    return {
        "FaceDetailer": {
            "input": {"required": {
                "image": ["IMAGE"], "model": ["MODEL"], "clip": ["CLIP"], "vae": ["VAE"],
                "guide_size": ["FLOAT", {"default": 512, "min": 64, "max": 16384, "step": 8}],
                "guide_size_for": ["BOOLEAN", {"default": True}],
                "max_size": ["FLOAT", {"default": 1024, "min": 64, "max": 16384, "step": 8}],
                "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615}],
                "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
                "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}],
                "sampler_name": [samplers], "scheduler": [samplers],
                "positive": ["CONDITIONING"], "negative": ["CONDITIONING"],
                "denoise": ["FLOAT", {"default": 0.5, "min": 0.0001, "max": 1.0, "step": 0.01}],
                "feather": ["INT", {"default": 5, "min": 0, "max": 100, "step": 1}],
                "noise_mask": ["BOOLEAN", {"default": True}],
                "force_inpaint": ["BOOLEAN", {"default": True}],
                "bbox_threshold": ["FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}],
                "bbox_dilation": ["INT", {"default": 10, "min": -512, "max": 512, "step": 1}],
                "bbox_crop_factor": ["FLOAT", {"default": 3.0, "min": 1.0, "max": 10, "step": 0.1}],
                "sam_detection_hint": [["center-1", "horizontal-2", "vertical-2", "rect-4", "diamond-4",
                                        "mask-area", "mask-points", "mask-point-bbox", "none"]],
                "sam_dilation": ["INT", {"default": 0, "min": -512, "max": 512, "step": 1}],
                "sam_threshold": ["FLOAT", {"default": 0.93, "min": 0.0, "max": 1.0, "step": 0.01}],
                "sam_bbox_expansion": ["INT", {"default": 0, "min": 0, "max": 1000, "step": 1}],
                "sam_mask_hint_threshold": ["FLOAT", {"default": 0.7, "min": 0.0, "max": 1.0, "step": 0.01}],
                "sam_mask_hint_use_negative": [["False", "Small", "Outter"]],
                "drop_size": ["INT", {"min": 1, "max": 16384, "step": 1, "default": 10}],
                "bbox_detector": ["BBOX_DETECTOR"],
                "wildcard": ["STRING", {"multiline": True, "dynamicPrompts": False}],
                "cycle": ["INT", {"default": 1, "min": 1, "max": 10, "step": 1}],
            }, "optional": {
                "sam_model_opt": ["SAM_MODEL"], "segm_detector_opt": ["SEGM_DETECTOR"],
                "inpaint_model": ["BOOLEAN", {"default": False}],
                "noise_mask_feather": ["INT", {"default": 20, "min": 0, "max": 100, "step": 1}],
            }},
            "output": ["IMAGE", "IMAGE", "IMAGE", "MASK", "DETAILER_PIPE", "IMAGE"],
            "name": "FaceDetailer", "display_name": "FaceDetailer", "category": "ImpactPack/Simple",
            "python_module": "custom_nodes.comfyui-impact-pack", "output_node": False,
        },
        "UltralyticsDetectorProvider": {
            "input": {"required": {"model_name": [[]]}},
            "output": ["BBOX_DETECTOR", "SEGM_DETECTOR"],
            "name": "UltralyticsDetectorProvider", "display_name": "UltralyticsDetectorProvider",
            "category": "ImpactPack", "python_module": "custom_nodes.comfyui-impact-subpack",
            "output_node": False,
        },
    }


def _custom(name: str, required: dict, outputs: list[str], module: str,
            optional: dict | None = None) -> dict:
    return {"input": {"required": required, **({"optional": optional} if optional else {})},
            "input_order": {"required": list(required)}, "output": outputs,
            "output_is_list": [False] * len(outputs), "output_name": outputs, "name": name,
            "display_name": name, "description": "", "python_module": f"custom_nodes.{module}",
            "category": module, "output_node": False}


def _ip_adapter_info() -> dict:
    """NodeInfo of ComfyUI_IPAdapter_plus's unified loader and advanced apply (IPAdapterPlus.py)."""
    presets = ["LIGHT - SD1.5 only (low strength)", "STANDARD (medium strength)", "VIT-G (medium strength)",
               "PLUS (high strength)", "PLUS FACE (portraits)", "FULL FACE - SD1.5 only (portraits stronger)"]
    module = "ComfyUI_IPAdapter_plus"
    return {
        "IPAdapterUnifiedLoader": _custom("IPAdapterUnifiedLoader", {
            "model": ["MODEL"], "preset": [presets]}, ["MODEL", "IPADAPTER"], module,
            optional={"ipadapter": ["IPADAPTER"]}),
        "IPAdapterAdvanced": _custom("IPAdapterAdvanced", {
            "model": ["MODEL"], "ipadapter": ["IPADAPTER"], "image": ["IMAGE"],
            "weight": ["FLOAT", {"default": 1.0, "min": -1, "max": 5, "step": 0.05}],
            "weight_type": [["linear", "ease in", "ease out", "ease in-out", "reverse in-out", "weak input",
                             "weak output", "weak middle", "strong middle", "style transfer", "composition"]],
            "combine_embeds": [["concat", "add", "subtract", "average", "norm average"]],
            "start_at": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}],
            "end_at": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}],
            "embeds_scaling": [["V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty"]],
        }, ["MODEL"], module, optional={"image_negative": ["IMAGE"], "attn_mask": ["MASK"],
                                        "clip_vision": ["CLIP_VISION"]}),
    }


def _controlnet_aux_info() -> dict:
    """NodeInfo of two comfyui_controlnet_aux preprocessors."""
    module = "comfyui_controlnet_aux"
    resolution = ["INT", {"default": 512, "min": 64, "max": 16384, "step": 64}]
    return {
        "DepthAnythingPreprocessor": _custom("DepthAnythingPreprocessor", {
            "image": ["IMAGE"], "ckpt_name": [["depth_anything_vitl14.pth", "depth_anything_vitb14.pth",
                                               "depth_anything_vits14.pth"]]}, ["IMAGE"], module,
            optional={"resolution": resolution}),
        "OpenposePreprocessor": _custom(
            "OpenposePreprocessor", {"image": ["IMAGE"]}, ["IMAGE", "POSE_KEYPOINT"], module, optional={
                "detect_hand": [["enable", "disable"]], "detect_body": [["enable", "disable"]],
                "detect_face": [["enable", "disable"]], "resolution": resolution}),
    }


def _load_object_info() -> dict:
    with gzip.open(DATA_DIR / "resp_object_info_full.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


_OBJECT_INFO_CACHE: dict | None = None


def base_object_info() -> dict:
    """The recorded real /object_info (634 classes), parsed once per process."""
    global _OBJECT_INFO_CACHE
    if _OBJECT_INFO_CACHE is None:
        _OBJECT_INFO_CACHE = _load_object_info()
    return _OBJECT_INFO_CACHE


@dataclass
class _Prompt:
    number: float
    prompt_id: str
    graph: dict
    extra_data: dict
    outputs: list[str]
    client_id: str | None

    def queue_item(self) -> list:
        return [self.number, self.prompt_id, self.graph, self.extra_data, self.outputs]


@dataclass
class _Client:
    ws: web.WebSocketResponse
    request: web.Request
    preview_metadata: bool = False


@dataclass
class _Failure:
    exception_type: str
    message: str


class _Interrupted(Exception):
    pass


#: Tiles a model upscale reports as its progress steps (a 512×512 image in 4 tiles).
UPSCALE_TILES = 4


@dataclass
class FakeComfyUI(ServesItself):
    """A ComfyUI look-alike for tests: configurable models, VRAM, node classes and timing."""

    step_ms: float = 5.0
    checkpoints: tuple[str, ...] = DEFAULT_CHECKPOINTS
    loras: tuple[str, ...] = DEFAULT_LORAS
    #: The safetensors `__metadata__` (all strings) of a file in `loras` or `checkpoints`, by
    #: its listed name; `/view_metadata` answers 404 for a file without one, as ComfyUI does.
    model_metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    upscale_models: tuple[str, ...] = DEFAULT_UPSCALE_MODELS
    #: Impact Pack + Subpack installed (FaceDetailer, UltralyticsDetectorProvider).
    face_detailer: bool = False
    detector_models: tuple[str, ...] = DEFAULT_DETECTORS
    diffusion_models: tuple[str, ...] = DEFAULT_DIFFUSION_MODELS
    text_encoders: tuple[str, ...] = DEFAULT_TEXT_ENCODERS
    vaes: tuple[str, ...] = DEFAULT_VAES
    controlnets: tuple[str, ...] = DEFAULT_CONTROLNETS
    #: ComfyUI-GGUF installed (UnetLoaderGGUF over the .gguf files in `diffusion_models`).
    gguf: bool = False
    #: ComfyUI_IPAdapter_plus installed (IPAdapterUnifiedLoader, IPAdapterAdvanced).
    ip_adapter: bool = False
    #: comfyui_controlnet_aux installed (its preprocessors, e.g. DepthAnythingPreprocessor).
    controlnet_aux: bool = False
    vram_total: int = 12 * 1024**3
    vram_free: int = 10 * 1024**3
    #: "cpu" makes a node started with --cpu (its system RAM reported as "vram").
    device: str = "cuda:0 NVIDIA GeForce RTX 3060 : cudaMallocAsync"
    version: str = "0.33.0"
    #: The history entry appears this long after `execution_success` (the real race).
    history_delay_ms: float = 2.0
    #: Extra lag *after* `executing{node:null}` too (worse than real): clients must retry.
    history_lag_ms: float = 0.0
    #: Newer servers have /api/jobs; older ones answer 404 there.
    jobs_api: bool = True
    #: Older servers ignore the feature_flags handshake and always send legacy preview frames.
    preview_metadata: bool = True
    #: HTTP basic auth (user, password) demanded on every route, like a reverse proxy would.
    auth: tuple[str, str] | None = None
    host: str = "127.0.0.1"
    port: int = 0

    # --- state, inspectable by tests ---
    received: list[dict] = field(default_factory=list)  # every POST /prompt body accepted
    interrupts: list[dict | None] = field(default_factory=list)  # bodies of POST /interrupt
    cancels: list[str] = field(default_factory=list)  # ids sent to POST /api/jobs/{id}/cancel
    uploads: dict[str, bytes] = field(default_factory=dict)  # "sub/name.png" -> bytes
    sent: dict[str, list[dict]] = field(default_factory=dict)  # client_id -> text messages sent
    #: Client ids whose prompt events are silently lost (a half-dead connection).
    muted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._clients: dict[str, _Client] = {}
        self._heap: list[tuple[float, int, _Prompt]] = []
        self._seq = itertools.count()
        self._number = itertools.count()
        self._running: _Prompt | None = None
        self._interrupt_flag = False
        self._history: dict[str, dict] = {}
        self._files: dict[tuple[str, str, str], bytes] = {}  # (type, subfolder, name) -> bytes
        self._cache: set[str] = set()
        self._failures: dict[str, _Failure] = {}
        self._fail_next = 0
        self._fail_next_error = _Failure("RuntimeError", "the server failed (test)")
        self._fail_kinds: dict[str, int] = {}  # job kind -> how many of its next prompts fail
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._file_counter = itertools.count(1)
        self._current_node: str | None = None
        self.url = ""

    # ---------------------------------------------------------------- control (tests)
    def fail_node(self, class_type: str, exception_type: str = "RuntimeError",
                  message: str = "something broke") -> None:
        """Make every execution of `class_type` raise like a real node error."""
        self._failures[class_type] = _Failure(exception_type, message)

    def clear_failures(self) -> None:
        self._failures.clear()
        self._fail_next = 0
        self._fail_kinds.clear()

    def fail_next(self, times: int = 1, exception_type: str = "RuntimeError",
                  message: str = "the server failed (test)") -> None:
        """The next `times` prompts fail in their first node (a runtime error, not validation)."""
        self._fail_next = times
        self._fail_next_error = _Failure(exception_type, message)

    def fail_next_of(self, kind: str, times: int = 1) -> None:
        """The next `times` prompts of one job kind (txt2img, img2img, adetailer, upscale) fail
        in their first node; other kinds run normally."""
        self._fail_kinds[kind] = self._fail_kinds.get(kind, 0) + times

    @property
    def step_s(self) -> float:
        return self.step_ms / 1000

    @step_s.setter
    def step_s(self, value: float) -> None:
        self.step_ms = value * 1000

    @property
    def current_task(self) -> str | None:
        """prompt_id of the running prompt (any client's), None when idle."""
        return self._running.prompt_id if self._running else None

    def prompts_of(self, kind: str) -> list[dict]:
        """Accepted POST /prompt bodies of one job kind: txt2img, img2img, adetailer or upscale."""
        return [body for body in self.received if prompt_kind(body["prompt"]) == kind]

    async def drop_sockets(self) -> None:
        """Close every WebSocket abruptly (a network blip); running prompts carry on."""
        for client in list(self._clients.values()):
            transport = client.request.transport
            if transport is not None:
                transport.abort()  # no closing handshake: like a pulled cable or a NAT timeout
            else:
                await client.ws.close(code=1011, message=b"dropped by test")
        self._clients.clear()

    def drop_sockets_threadsafe(self) -> None:
        asyncio.run_coroutine_threadsafe(self.drop_sockets(), self._loop).result(5)

    def queue_snapshot(self) -> dict:
        return self._queue_json()

    def history(self, prompt_id: str) -> dict | None:
        return self._history.get(prompt_id)

    @property
    def connected_clients(self) -> list[str]:
        return list(self._clients)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> str:
        self._loop = asyncio.get_running_loop()
        self._object_info = self._build_object_info()
        self._object_info_text: str | None = None
        self._wakeup = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024**2,
                              middlewares=[self._auth_check, self._origin_check])
        for prefix in ("", "/api"):
            r = app.router
            r.add_get(prefix + "/system_stats", self._system_stats)
            r.add_get(prefix + "/object_info", self._object_info_all)
            r.add_get(prefix + "/object_info/{cls}", self._object_info_one)
            r.add_get(prefix + "/queue", self._get_queue)
            r.add_post(prefix + "/queue", self._post_queue)
            r.add_get(prefix + "/prompt", self._get_prompt)
            r.add_post(prefix + "/prompt", self._post_prompt)
            r.add_get(prefix + "/history", self._get_history)
            r.add_get(prefix + "/history/{pid}", self._get_history_one)
            r.add_post(prefix + "/history", self._post_history)
            r.add_post(prefix + "/interrupt", self._post_interrupt)
            r.add_get(prefix + "/view", self._view)
            r.add_post(prefix + "/upload/image", self._upload_image)
            r.add_get(prefix + "/features", self._features)
            r.add_get(prefix + "/models", self._models)
            r.add_get(prefix + "/models/{folder}", self._models_folder)
            r.add_get(prefix + "/embeddings", self._embeddings)
            r.add_get(prefix + "/ws", self._ws)
        self._add_view_metadata_routes(app)
        if self.jobs_api:
            app.router.add_post("/api/jobs/{pid}/cancel", self._cancel_job)
            app.router.add_get("/api/jobs/{pid}", self._get_job)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        self._worker = asyncio.create_task(self._work())
        return self.url

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
            self._worker = None
        for client in list(self._clients.values()):
            await client.ws.close()
        self._clients.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---------------------------------------------------------------- view_metadata
    def _add_view_metadata_routes(self, app: web.Application) -> None:
        for prefix in ("", "/api"):
            app.router.add_get(prefix + "/view_metadata/{folder}", self._view_metadata)

    async def _view_metadata(self, request: web.Request) -> web.Response:
        """`server.py view_metadata`: the header's `__metadata__` as stored (strings), else 404."""
        folders = {"loras": self.loras, "checkpoints": self.checkpoints}
        listed = folders.get(request.match_info["folder"], ())
        filename = request.rel_url.query.get("filename")
        if not filename or not filename.endswith(".safetensors") or filename not in listed:
            return web.Response(status=404)
        metadata = self.model_metadata.get(filename)
        if metadata is None:
            return web.Response(status=404)
        return web.json_response(metadata)

    # ---------------------------------------------------------------- object_info
    def _build_object_info(self) -> dict:
        # Shallow copy; only the classes changed below get their own deep copies.
        info = dict(base_object_info())
        for cls in ("CheckpointLoaderSimple", "LoraLoader", "LoraLoaderModelOnly", "UpscaleModelLoader",
                    "LoadImage", "UNETLoader", "DualCLIPLoader", "TripleCLIPLoader", "CLIPLoader",
                    "VAELoader", "ControlNetLoader"):
            info[cls] = copy.deepcopy(info[cls])

        def set_combo(cls: str, name: str, values: tuple[str, ...]) -> None:
            spec = info[cls]["input"]["required"][name]
            if spec and spec[0] == "COMBO":
                spec[1]["options"] = list(values)
            else:
                spec[0] = list(values)

        set_combo("CheckpointLoaderSimple", "ckpt_name", self.checkpoints)
        set_combo("LoraLoader", "lora_name", self.loras)
        set_combo("LoraLoaderModelOnly", "lora_name", self.loras)
        set_combo("UpscaleModelLoader", "model_name", self.upscale_models)
        set_combo("LoadImage", "image", ("example.png",))
        # ComfyUI lists every file of the folder in each loader's combo (.gguf files only
        # through ComfyUI-GGUF's own loader).
        plain = tuple(f for f in self.diffusion_models if not f.endswith(".gguf"))
        set_combo("UNETLoader", "unet_name", plain)
        for name in ("clip_name1", "clip_name2"):
            set_combo("DualCLIPLoader", name, self.text_encoders)
        for name in ("clip_name1", "clip_name2", "clip_name3"):
            set_combo("TripleCLIPLoader", name, self.text_encoders)
        set_combo("CLIPLoader", "clip_name", self.text_encoders)
        set_combo("VAELoader", "vae_name", self.vaes + VAE_EXTRAS)
        set_combo("ControlNetLoader", "control_net_name", self.controlnets)
        if self.gguf:
            ggufs = [f for f in self.diffusion_models if f.endswith(".gguf")]
            info["UnetLoaderGGUF"] = {
                "input": {"required": {"unet_name": [ggufs]}},
                "input_order": {"required": ["unet_name"]}, "output": ["MODEL"], "output_is_list": [False],
                "output_name": ["MODEL"], "name": "UnetLoaderGGUF", "display_name": "Unet Loader (GGUF)",
                "description": "", "python_module": "custom_nodes.ComfyUI-GGUF", "category": "bootleg",
                "output_node": False}
        if self.ip_adapter:
            info.update(_ip_adapter_info())
        if self.controlnet_aux:
            info.update(_controlnet_aux_info())
        if self.face_detailer:
            extra = _face_detailer_info()
            ks = info["KSampler"]["input"]["required"]
            fd = extra["FaceDetailer"]["input"]["required"]
            fd["sampler_name"] = copy.deepcopy(ks["sampler_name"])
            fd["scheduler"] = copy.deepcopy(ks["scheduler"])
            extra["UltralyticsDetectorProvider"]["input"]["required"]["model_name"] = [
                list(self.detector_models)]
            info.update(extra)
        return info

    # ---------------------------------------------------------------- middlewares / simple routes
    @web.middleware
    async def _auth_check(self, request: web.Request, handler):
        if self.auth is not None:
            expected = "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="comfy"'})
        return await handler(request)

    @web.middleware
    async def _origin_check(self, request: web.Request, handler):
        origin = request.headers.get("Origin")
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            return web.Response(status=403)
        if origin:
            host = request.headers.get("Host", "")
            if origin.split("://", 1)[-1].rstrip("/") != host:
                return web.Response(status=403)
        return await handler(request)

    async def _system_stats(self, request: web.Request) -> web.Response:
        with open(DATA_DIR / "resp_system_stats.json", encoding="utf-8") as f:
            stats = json.load(f)
        stats["system"]["comfyui_version"] = self.version
        if self.device == "cpu":
            # Started with --cpu (resp_system_stats.json): the "vram" is the system's RAM.
            ram, free = stats["system"]["ram_total"], stats["system"]["ram_free"]
            stats["devices"] = [{"name": "cpu", "type": "cpu", "index": None,
                                 "vram_total": ram, "vram_free": free,
                                 "torch_vram_total": ram, "torch_vram_free": free}]
            return web.json_response(stats)
        stats["devices"] = [{
            "name": self.device, "type": "cuda", "index": 0,
            "vram_total": self.vram_total, "vram_free": self.vram_free,
            "torch_vram_total": self.vram_total, "torch_vram_free": self.vram_free,
        }]
        return web.json_response(stats)

    async def _object_info_all(self, request: web.Request) -> web.Response:
        if self._object_info_text is None:  # ~745 KB: serialise once per server
            self._object_info_text = json.dumps(self._object_info)
        return web.Response(text=self._object_info_text, content_type="application/json")

    async def _object_info_one(self, request: web.Request) -> web.Response:
        cls = request.match_info["cls"]
        if cls not in self._object_info:
            return web.json_response({})  # real servers answer 200 {} for unknown classes
        return web.json_response({cls: self._object_info[cls]})

    async def _features(self, request: web.Request) -> web.Response:
        with open(DATA_DIR / "resp_features.json", encoding="utf-8") as f:
            return web.json_response(json.load(f))

    async def _models(self, request: web.Request) -> web.Response:
        with open(DATA_DIR / "resp_models.json", encoding="utf-8") as f:
            return web.json_response(json.load(f))

    async def _models_folder(self, request: web.Request) -> web.Response:
        folders = {"checkpoints": self.checkpoints, "loras": self.loras,
                   "upscale_models": self.upscale_models, "diffusion_models": self.diffusion_models,
                   "text_encoders": self.text_encoders, "vae": self.vaes, "controlnet": self.controlnets}
        folder = request.match_info["folder"]
        if folder not in folders:
            return web.Response(status=404)
        return web.json_response(list(folders[folder]))

    async def _embeddings(self, request: web.Request) -> web.Response:
        return web.json_response([])

    # ---------------------------------------------------------------- queue / history
    def _queue_json(self) -> dict:
        return {
            "queue_running": [self._running.queue_item()] if self._running else [],
            "queue_pending": [p.queue_item() for _, _, p in self._heap],  # heap order, like the real one
        }

    def _remaining(self) -> int:
        return len(self._heap) + (1 if self._running else 0)

    async def _get_queue(self, request: web.Request) -> web.Response:
        return web.json_response(self._queue_json())

    async def _post_queue(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self._heap.clear()
        for pid in body.get("delete", []) or []:
            self._heap = [e for e in self._heap if e[2].prompt_id != pid]
        heapq.heapify(self._heap)
        await self._broadcast_status()
        return web.Response(status=200)

    async def _get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response({"exec_info": {"queue_remaining": self._remaining()}})

    async def _get_history(self, request: web.Request) -> web.Response:
        items = list(self._history.items())
        max_items = request.query.get("max_items")
        if max_items is not None:
            items = items[-int(max_items):]
        return web.json_response(dict(items))

    async def _get_history_one(self, request: web.Request) -> web.Response:
        pid = request.match_info["pid"]
        item = self._history.get(pid)
        return web.json_response({pid: item} if item is not None else {})

    async def _post_history(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self._history.clear()
        for pid in body.get("delete", []) or []:
            self._history.pop(pid, None)
        return web.Response(status=200)

    async def _post_interrupt(self, request: web.Request) -> web.Response:
        body = None
        if request.can_read_body:
            raw = await request.read()
            if raw:
                body = json.loads(raw)
        self.interrupts.append(body)
        pid = (body or {}).get("prompt_id")
        if self._running is not None and (pid is None or pid == self._running.prompt_id):
            self._interrupt_flag = True
        return web.Response(status=200)

    async def _cancel_job(self, request: web.Request) -> web.Response:
        pid = request.match_info["pid"]
        self.cancels.append(pid)
        if self._running is not None and self._running.prompt_id == pid:
            self._interrupt_flag = True
            return web.json_response({"cancelled": True})
        before = len(self._heap)
        self._heap = [e for e in self._heap if e[2].prompt_id != pid]
        heapq.heapify(self._heap)
        if len(self._heap) != before:
            await self._broadcast_status()
            return web.json_response({"cancelled": True})
        return web.json_response({"cancelled": False})

    async def _get_job(self, request: web.Request) -> web.Response:
        pid = request.match_info["pid"]
        if self._running is not None and self._running.prompt_id == pid:
            return web.json_response({"id": pid, "status": "in_progress"})
        if any(p.prompt_id == pid for _, _, p in self._heap):
            return web.json_response({"id": pid, "status": "pending"})
        item = self._history.get(pid)
        if item is None:
            return web.json_response({"error": "Job not found"}, status=404)
        status = item["status"]
        state = "completed" if status["status_str"] == "success" else (
            "cancelled" if any(m[0] == "execution_interrupted" for m in status["messages"]) else "failed")
        return web.json_response({"id": pid, "status": state, "outputs": item["outputs"],
                                  "execution_status": status})

    # ---------------------------------------------------------------- files
    async def _view(self, request: web.Request) -> web.Response:
        name = request.query.get("filename", "")
        sub = request.query.get("subfolder", "")
        kind = request.query.get("type", "output")
        if ".." in name or name.startswith("/"):
            return web.Response(status=400)
        if ".." in sub.split("/"):
            return web.Response(status=403)
        if kind == "input":
            data = self.uploads.get(f"{sub}/{name}" if sub else name)
        else:
            data = self._files.get((kind, sub, name))
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="image/png",
                            headers={"Content-Disposition": f'filename="{name}"'})

    async def _upload_image(self, request: web.Request) -> web.Response:
        reader = await request.post()
        image = reader.get("image")
        if image is None or not hasattr(image, "file"):
            return web.Response(status=400)
        data = image.file.read()
        sub = str(reader.get("subfolder", "") or "")
        overwrite = str(reader.get("overwrite", "")).lower() in ("true", "1")
        name = image.filename
        key = f"{sub}/{name}" if sub else name
        if key in self.uploads and self.uploads[key] != data and not overwrite:
            stem, dot, ext = name.rpartition(".")
            for i in itertools.count(1):
                name = f"{stem} ({i}).{ext}" if dot else f"{name} ({i})"
                key = f"{sub}/{name}" if sub else name
                if key not in self.uploads or self.uploads[key] == data:
                    break
        self.uploads[key] = data
        return web.json_response({"name": name, "subfolder": sub, "type": "input"})

    # ---------------------------------------------------------------- WebSocket
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        old = self._clients.get(sid)
        if old is not None:
            await old.ws.close()
        client = _Client(ws, request)
        self._clients[sid] = client
        await self._send_json(ws, {"type": "status", "data": {
            "status": {"exec_info": {"queue_remaining": self._remaining()}}, "sid": sid}})
        if self._running is not None and self._running.client_id == sid and self._current_node:
            # Observed: a reconnect of the owner gets the running node, without prompt_id.
            await self._send_json(ws, {"type": "executing", "data": {"node": self._current_node}})
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        continue
                    if data.get("type") == "feature_flags" and self.preview_metadata:
                        client.preview_metadata = bool(
                            (data.get("data") or {}).get("supports_preview_metadata"))
                        with open(DATA_DIR / "resp_features.json", encoding="utf-8") as f:
                            await self._send_json(ws, {"type": "feature_flags", "data": json.load(f)})
        finally:
            if self._clients.get(sid) is client:
                del self._clients[sid]
        return ws

    async def _send_json(self, ws: web.WebSocketResponse, message: dict) -> None:
        try:
            await ws.send_str(json.dumps(message))
        except (ConnectionError, RuntimeError):
            pass

    async def _send(self, prompt: _Prompt, type_: str, data: dict) -> None:
        """Send to the socket that owns the prompt; dropped when it is not connected."""
        if prompt.client_id is None:
            return
        if prompt.client_id in self.muted:
            return
        self.sent.setdefault(prompt.client_id, []).append({"type": type_, "data": data})
        client = self._clients.get(prompt.client_id)
        if client is not None:
            await self._send_json(client.ws, {"type": type_, "data": data})

    async def _send_binary(self, prompt: _Prompt, node: str, image: bytes) -> None:
        client = self._clients.get(prompt.client_id or "")
        if client is None:
            return
        if client.preview_metadata:
            meta = json.dumps({"node_id": node, "prompt_id": prompt.prompt_id, "display_node_id": node,
                               "parent_node_id": None, "real_node_id": node,
                               "image_type": "image/jpeg"}).encode()
            frame = struct.pack(">II", 4, len(meta)) + meta + image
        else:
            frame = struct.pack(">II", 1, 1) + image
        try:
            await client.ws.send_bytes(frame)
        except (ConnectionError, RuntimeError):
            pass

    async def _broadcast_status(self) -> None:
        msg = {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": self._remaining()}}}}
        for cid, client in list(self._clients.items()):
            self.sent.setdefault(cid, []).append(msg)
            await self._send_json(client.ws, msg)

    # ---------------------------------------------------------------- POST /prompt
    async def _post_prompt(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble",
                                content_type="text/plain")
        if not isinstance(body, dict) or "prompt" not in body:
            return _error(400, "no_prompt", "No prompt provided", "No prompt provided")
        graph = body["prompt"]
        if not isinstance(graph, dict):
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble",
                                content_type="text/plain")
        pid = body.get("prompt_id")
        if pid is None:
            pid = str(uuid.uuid4())
        elif not isinstance(pid, str) or not UUID_RE.match(pid):
            return _error(400, "invalid_prompt_id", "Invalid prompt_id", f"'{pid}' is not a valid UUID")
        for nid, node in graph.items():
            cls = node.get("class_type") if isinstance(node, dict) else None
            if cls not in self._object_info:
                title = (node.get("_meta") or {}).get("title", cls) if isinstance(node, dict) else None
                return _error(400, "missing_node_type",
                              f"Node '{title}' not found. The custom node may not be installed.",
                              f"Node ID '#{nid}'",
                              {"node_id": nid, "class_type": cls, "node_title": title})
        outputs = [nid for nid, node in graph.items()
                   if self._object_info[node["class_type"]].get("output_node")]
        if not outputs:
            return _error(400, "prompt_no_outputs", "Prompt has no outputs", "")
        node_errors: dict[str, dict] = {}
        good_outputs = []
        for out in outputs:
            errors = self._validate_from(graph, out, set())
            if errors:
                for nid, errs in errors.items():
                    entry = node_errors.setdefault(nid, {"errors": errs, "dependent_outputs": [],
                                                         "class_type": graph[nid]["class_type"]})
                    entry["dependent_outputs"].append(out)
            else:
                good_outputs.append(out)
        if not good_outputs:
            body_err = {"error": {"type": "prompt_outputs_failed_validation",
                                  "message": "Prompt outputs failed validation", "details": "",
                                  "extra_info": {}}, "node_errors": node_errors}
            return web.json_response(body_err, status=400)
        extra = dict(body.get("extra_data") or {})
        client_id = body.get("client_id")
        if client_id is not None:
            extra["client_id"] = client_id
        extra["create_time"] = int(time.time() * 1000)
        number = float(body["number"]) if "number" in body else next(self._number)
        if body.get("front"):
            number = -number
        prompt = _Prompt(number, pid, graph, extra, good_outputs, client_id)
        self.received.append(body)
        heapq.heappush(self._heap, (number, next(self._seq), prompt))
        await self._broadcast_status()
        assert self._wakeup is not None
        self._wakeup.set()
        return web.json_response({"prompt_id": pid, "number": number, "node_errors": node_errors})

    def _validate_from(self, graph: dict, nid: str, seen: set[str]) -> dict[str, list[dict]]:
        if nid in seen:
            return {}
        seen.add(nid)
        node = graph[nid]
        info = self._object_info[node["class_type"]]
        spec_all = {**info["input"].get("required", {})}
        optional = info["input"].get("optional", {})
        inputs = node.get("inputs", {})
        errors: list[dict] = []
        found: dict[str, list[dict]] = {}
        for name, spec in {**spec_all, **optional}.items():
            if name not in inputs:
                if name in spec_all:
                    errors.append({"type": "required_input_missing", "message": "Required input is missing",
                                   "details": name, "extra_info": {"input_name": name}})
                continue
            value = inputs[name]
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                src = value[0]
                if not isinstance(src, str) or src not in graph:
                    errors.append({"type": "exception_during_validation",
                                   "message": "Exception when validating node",
                                   "details": repr(src), "extra_info": {"exception_type": "KeyError"}})
                    continue
                found.update(self._validate_from(graph, src, seen))
                continue
            kind = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            choices = kind if isinstance(kind, list) else (opts.get("options") if kind == "COMBO" else None)
            if choices is not None:
                if name == "image" and node["class_type"] in ("LoadImage", "LoadImageMask"):
                    if value in self.uploads or value == "example.png":
                        continue
                    errors.append({"type": "custom_validation_failed",
                                   "message": "Custom validation failed for node",
                                   "details": f"image - Invalid image file: {value}",
                                   "extra_info": {"input_name": name}})
                    continue
                if value not in choices:
                    errors.append({"type": "value_not_in_list", "message": "Value not in list",
                                   "details": f"{name}: '{value}' not in {choices}",
                                   "extra_info": {"input_name": name, "input_config": spec,
                                                  "received_value": value}})
                continue
            if kind in ("INT", "FLOAT"):
                try:
                    num = int(value) if kind == "INT" else float(value)
                except (TypeError, ValueError):
                    errors.append({"type": "invalid_input_type",
                                   "message": f"Failed to convert an input value to a {kind} value",
                                   "details": f"{name}, {value}", "extra_info": {"input_name": name}})
                    continue
                if "min" in opts and num < opts["min"]:
                    errors.append({"type": "value_smaller_than_min",
                                   "message": f"Value {num} smaller than min of {opts['min']}",
                                   "details": name, "extra_info": {"input_name": name, "input_config": spec,
                                                                   "received_value": value}})
                if "max" in opts and num > opts["max"]:
                    errors.append({"type": "value_bigger_than_max",
                                   "message": f"Value {num} bigger than max of {opts['max']}",
                                   "details": name, "extra_info": {"input_name": name, "input_config": spec,
                                                                   "received_value": value}})
        if errors:
            found[nid] = errors
        return found

    # ---------------------------------------------------------------- execution
    async def _work(self) -> None:
        assert self._wakeup is not None
        while True:
            while not self._heap:
                self._wakeup.clear()
                await self._wakeup.wait()
            _, _, prompt = heapq.heappop(self._heap)
            self._running = prompt
            self._interrupt_flag = False
            self._current_node = None
            try:
                await self._execute(prompt)
            finally:
                self._running = None
                self._current_node = None

    def _signature(self, graph: dict, nid: str, memo: dict[str, str]) -> str:
        if nid in memo:
            return memo[nid]
        node = graph[nid]
        parts = {}
        for k, v in sorted(node.get("inputs", {}).items()):
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and v[0] in graph:
                parts[k] = ["link", self._signature(graph, v[0], memo), v[1]]
            else:
                parts[k] = v
        sig = hashlib.sha1(json.dumps([node["class_type"], parts], sort_keys=True, default=str)
                           .encode()).hexdigest()
        memo[nid] = sig
        return sig

    def _order(self, graph: dict, outputs: list[str]) -> list[str]:
        order: list[str] = []
        seen: set[str] = set()

        def visit(nid: str) -> None:
            if nid in seen:
                return
            seen.add(nid)
            for v in graph[nid].get("inputs", {}).values():
                if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and v[0] in graph:
                    visit(v[0])
            order.append(nid)

        for out in outputs:
            visit(out)
        return order

    async def _execute(self, prompt: _Prompt) -> None:
        pid = prompt.prompt_id
        graph = prompt.graph
        order = self._order(graph, prompt.outputs)
        memo: dict[str, str] = {}
        sigs = {nid: self._signature(graph, nid, memo) for nid in order}
        cached = [nid for nid in order if sigs[nid] in self._cache]
        messages: list[list] = []

        def stamp() -> int:
            return int(time.time() * 1000)

        async def record(type_: str, data: dict) -> None:
            messages.append([type_, data])
            await self._send(prompt, type_, data)

        await self._broadcast_status()
        await record("execution_start", {"prompt_id": pid, "timestamp": stamp()})
        await record("execution_cached", {"nodes": cached, "prompt_id": pid, "timestamp": stamp()})
        values: dict[str, Any] = {}
        outputs: dict[str, dict] = {}
        executed: list[str] = []
        state: dict[str, dict] = {}
        status_str = "success"
        try:
            for nid in order:
                cls = graph[nid]["class_type"]
                if nid in cached:
                    values[nid] = self._evaluate(prompt, nid, values, run=False)
                    if nid in prompt.outputs:
                        outputs[nid] = values[nid]["ui"]
                        await self._send(prompt, "executed", {"node": nid, "display_node": nid,
                                                              "output": outputs[nid], "prompt_id": pid})
                    continue
                if self._interrupt_flag:
                    raise _Interrupted(nid)
                self._current_node = nid
                state[nid] = {"value": 0.0, "max": 1.0, "state": "running", "node_id": nid, "prompt_id": pid,
                              "display_node_id": nid, "parent_node_id": None, "real_node_id": nid}
                await self._send(prompt, "progress_state", {"prompt_id": pid, "nodes": copy.deepcopy(state)})
                await self._send(prompt, "executing", {"node": nid, "display_node": nid, "prompt_id": pid})
                steps = self._steps_of(graph[nid])
                for step in range(1, steps + 1):
                    await asyncio.sleep(self.step_ms / 1000)
                    if self._interrupt_flag:
                        raise _Interrupted(nid)
                    if prompt.extra_data.get("preview_method") and step < steps:
                        client = self._clients.get(prompt.client_id or "")
                        preview = _png_bytes(16, 16, step * 997)
                        if client is not None and client.preview_metadata:
                            await self._send_binary(prompt, nid, preview)
                            await self._send(prompt, "progress", {"value": step, "max": steps,
                                                                  "prompt_id": pid, "node": nid})
                        else:
                            await self._send(prompt, "progress", {"value": step, "max": steps,
                                                                  "prompt_id": pid, "node": nid})
                            await self._send_binary(prompt, nid, preview)
                    else:
                        await self._send(prompt, "progress", {"value": step, "max": steps,
                                                              "prompt_id": pid, "node": nid})
                if not steps:
                    await asyncio.sleep(0)
                failure = self._failures.get(cls)
                if failure is None and self._fail_next and not executed:
                    self._fail_next -= 1
                    failure = self._fail_next_error
                kind = prompt_kind(prompt.graph) if failure is None and not executed else ""
                if kind and self._fail_kinds.get(kind):
                    self._fail_kinds[kind] -= 1
                    failure = self._fail_next_error
                if failure is not None:
                    data = {"prompt_id": pid, "node_id": nid, "node_type": cls, "executed": list(executed),
                            "exception_message": failure.message + "\n",
                            "exception_type": failure.exception_type,
                            "traceback": ['  File "/ComfyUI/execution.py", line 545, in execute\n',
                                          f"{failure.exception_type}: {failure.message}\n"],
                            "current_inputs": {"samples": ["tensor([[[[0.8980, " + "0.5, " * 2000 + "]]]])"]},
                            "current_outputs": list(order), "timestamp": stamp()}
                    state[nid]["state"] = "error"
                    await record("execution_error", data)
                    status_str = "error"
                    break
                values[nid] = self._evaluate(prompt, nid, values, run=True)
                self._cache.add(sigs[nid])
                executed.append(nid)
                state[nid].update(value=1.0, state="finished")
                await self._send(prompt, "progress_state", {"prompt_id": pid, "nodes": copy.deepcopy(state)})
                if nid in prompt.outputs and values[nid].get("ui"):
                    outputs[nid] = values[nid]["ui"]
                    await self._send(prompt, "executed", {"node": nid, "display_node": nid,
                                                          "output": outputs[nid], "prompt_id": pid})
            else:
                await record("execution_success", {"prompt_id": pid, "timestamp": stamp()})
        except _Interrupted as exc:
            nid = str(exc)
            status_str = "error"
            outputs = {}
            await record("execution_interrupted", {"prompt_id": pid, "node_id": nid,
                                                   "node_type": graph[nid]["class_type"],
                                                   "executed": list(executed), "timestamp": stamp()})
        self._current_node = None
        item = {"prompt": prompt.queue_item(), "outputs": outputs,
                "status": {"status_str": status_str, "completed": status_str == "success",
                           "messages": messages},
                "meta": {nid: {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
                         for nid in outputs}}
        # The real server writes history a moment after execution_success (the race); the prompt
        # leaves the running list in the same step (one lock), so it is never in neither.
        await asyncio.sleep(self.history_delay_ms / 1000)
        if self.history_lag_ms:
            # Worse than observed: the done marker arrives before the history entry.
            self._running = None
            await self._broadcast_status()
            await self._send(prompt, "executing", {"node": None, "prompt_id": pid})
            self._running = prompt
            await asyncio.sleep(self.history_lag_ms / 1000)
        self._history[pid] = item
        self._running = None
        if not self.history_lag_ms:
            await self._broadcast_status()
            await self._send(prompt, "executing", {"node": None, "prompt_id": pid})

    @staticmethod
    def _steps_of(node: dict) -> int:
        inputs = node.get("inputs", {})
        if node.get("class_type") == "ImageUpscaleWithModel":
            # A model upscale works tile by tile and reports each tile as a progress step
            # (comfy.utils.ProgressBar over the tile count): it takes time, and can be interrupted.
            return UPSCALE_TILES
        steps = inputs.get("steps")
        if not isinstance(steps, int | float):
            return 0
        if "end_at_step" in inputs and isinstance(inputs["end_at_step"], int | float):
            start = int(inputs.get("start_at_step", 0) or 0)
            return max(0, min(int(steps), int(inputs["end_at_step"])) - start)
        return int(steps)

    def _evaluate(self, prompt: _Prompt, nid: str, values: dict[str, Any], *, run: bool) -> dict:
        """Track the image size and seed through the graph; output nodes write PNG files."""
        graph = prompt.graph
        node = graph[nid]
        cls = node["class_type"]
        inp = node.get("inputs", {})

        def linked(name: str) -> dict:
            v = inp.get(name)
            if isinstance(v, list) and len(v) == 2 and v[0] in values:
                return values[v[0]]
            return {}

        def first_linked() -> dict:
            for v in inp.values():
                if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and v[0] in values:
                    return values[v[0]]
            return {}

        if cls in ("EmptyLatentImage", "EmptySD3LatentImage"):
            return {"w": int(inp["width"]), "h": int(inp["height"]), "batch": int(inp.get("batch_size", 1)),
                    "seed": 0}
        if cls in ("KSampler", "KSamplerAdvanced"):
            src = linked("latent_image")
            seed = inp.get("seed", inp.get("noise_seed", 0))
            return {**src, "seed": (src.get("seed", 0) * 31 + int(seed)) % (1 << 31)}
        if cls == "LatentUpscaleBy":
            src = linked("samples")
            s = float(inp["scale_by"])
            return {**src, "w": round(src["w"] * s), "h": round(src["h"] * s)}
        if cls in ("LatentUpscale", "ImageScale"):
            src = linked("samples" if cls == "LatentUpscale" else "image")
            w, h = int(inp["width"]), int(inp["height"])
            if w == 0 and h:
                w = round(src["w"] * h / src["h"])
            if h == 0 and w:
                h = round(src["h"] * w / src["w"])
            return {**src, "w": w or src["w"], "h": h or src["h"]}
        if cls == "ImageScaleBy":
            src = linked("image")
            s = float(inp["scale_by"])
            return {**src, "w": round(src["w"] * s), "h": round(src["h"] * s)}
        if cls == "ImageUpscaleWithModel":
            src = linked("image")
            loader = graph[inp["upscale_model"][0]]["inputs"].get("model_name", "")
            factor = 2 if re.search(r"(^|[^0-9])2x|x2", loader, re.I) else 4
            return {**src, "w": src["w"] * factor, "h": src["h"] * factor}
        if cls in ("LoadImage", "LoadImageMask"):
            name = inp["image"]
            data = self.uploads.get(name)
            if data is None:
                return {"w": 64, "h": 64, "batch": 1, "seed": 7}
            with Image.open(io.BytesIO(data)) as im:
                color = im.convert("RGB").getpixel((0, 0))
                return {"w": im.width, "h": im.height, "batch": 1,
                        "seed": color[0] << 16 | color[1] << 8 | color[2]}
        if cls == "FaceDetailer":
            src = linked("image")
            return {**src, "seed": (src.get("seed", 0) * 17 + int(inp.get("seed", 0))) % (1 << 31)}
        if cls in IMAGE_OUTPUT_CLASSES:
            src = linked("images")
            kind = IMAGE_OUTPUT_CLASSES[cls]
            return {**src, "ui": self._write_images(prompt, nid, src, kind)}
        return first_linked() or {"w": 64, "h": 64, "batch": 1, "seed": 0}

    def _write_images(self, prompt: _Prompt, nid: str, src: dict, kind: str) -> dict:
        node = prompt.graph[nid]
        images = []
        prefix = node["inputs"].get("filename_prefix", "ComfyUI") if kind == "output" else "ComfyUI_temp_fake"
        sub, _, base = prefix.rpartition("/")
        for i in range(int(src.get("batch", 1))):
            name = f"{base}_{next(self._file_counter):05d}_.png"
            self._files[(kind, sub, name)] = _png_bytes(src.get("w", 64), src.get("h", 64),
                                                        src.get("seed", 0) + i)
            images.append({"filename": name, "subfolder": sub, "type": kind})
        return {"images": images}


def prompt_kind(graph: dict) -> str:
    """Which StableNew job a graph is, from the node classes it uses."""
    classes = {n.get("class_type") for n in graph.values() if isinstance(n, dict)}
    if "FaceDetailer" in classes:
        return "adetailer"
    if classes & {"EmptyLatentImage", "EmptySD3LatentImage"}:
        return "txt2img"
    if classes & {"KSampler", "KSamplerAdvanced"}:
        return "img2img"
    return "upscale"


def _png_bytes(width: int, height: int, seed: int) -> bytes:
    rgb = ((seed * 2654435761) & 0xFF, (seed >> 3) * 40503 & 0xFF, (seed >> 7) * 9973 & 0xFF)
    buf = io.BytesIO()
    Image.new("RGB", (max(1, width), max(1, height)), rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _error(status: int, type_: str, message: str, details: str, extra: dict | None = None) -> web.Response:
    return web.json_response({"error": {"type": type_, "message": message, "details": details,
                                        "extra_info": extra or {}}, "node_errors": {}}, status=status)


@pytest.fixture
async def fake_comfyui(request):
    """A started fake ComfyUI (fast steps); parametrize indirectly with a dict of options."""
    kwargs = {"step_ms": 2, **(getattr(request, "param", None) or {})}
    async with FakeComfyUI(**kwargs) as fake:
        yield fake


@pytest.fixture
def fake_comfyui_thread(request):
    """A fake ComfyUI serving from its own thread (sync tests, subprocess CLI runs)."""
    kwargs = {"step_ms": 2, **(getattr(request, "param", None) or {})}
    with FakeComfyUI(**kwargs).running_in_thread() as fake:
        yield fake


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake ComfyUI server for StableNew development.")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--step-ms", type=float, default=20.0)
    parser.add_argument("--face-detailer", action="store_true", help="pretend Impact Pack is installed")
    parser.add_argument("--auth", default=None, help="user:password for HTTP basic auth")
    args = parser.parse_args(argv)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None

    async def serve() -> None:
        fake = FakeComfyUI(step_ms=args.step_ms, host=args.host, port=args.port,
                           face_detailer=args.face_detailer, auth=auth)
        url = await fake.start()
        print(f"Fake ComfyUI listening on {url} (Ctrl+C to stop)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await fake.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
