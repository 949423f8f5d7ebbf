"""Requests and results shared by every backend kind (A1111/Forge/SD.Next and ComfyUI).

These are the backend's own words: the pipeline turns its PipelineConfig into these jobs,
so backends never depend on the pipeline. Seeds are always resolved (never -1) here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class BackendKind(StrEnum):
    a1111 = "a1111"
    forge = "forge"
    sdnext = "sdnext"
    comfyui = "comfyui"


class ResizeMode(IntEnum):
    """img2img resize modes, numbered as A1111's API numbers them."""

    just_resize = 0
    crop_and_resize = 1
    resize_and_fill = 2
    latent_upscale = 3


@dataclass(frozen=True)
class Sampling:
    """What every diffusion job needs: prompts, model, sampler and the sizes of the output."""

    prompt: str
    negative_prompt: str = ""
    checkpoint: str = ""  # "" = whatever the server has loaded
    sampler: str = "Euler a"
    scheduler: str = "Automatic"
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    seed: int = 0
    clip_skip: int = 1
    #: The model family ("" = from the checkpoint's name); a `families.ModelFamily` value.
    family: str = ""
    #: Flux's distilled guidance (Forge: "Distilled CFG Scale"); CFG stays 1 for Flux.
    guidance: float = 3.5
    #: Text encoder files for a diffusion-model-only file ("" or none: picked by the family).
    text_encoders: tuple[str, ...] = ()
    vae: str = ""  # VAE file for such a model ("" = the family's usual one)


@dataclass(frozen=True)
class HiresFix:
    upscaler: str = "Latent"
    scale: float = 2.0
    resize_width: int = 0  # both 0: use scale
    resize_height: int = 0
    steps: int = 0  # 0: same as the first pass
    denoise: float = 0.45
    cfg_scale: float | None = None  # None: same as the first pass (sent as Forge's hr_cfg)


@dataclass(frozen=True)
class Refiner:
    checkpoint: str
    switch_at: float = 0.8


@dataclass(frozen=True)
class ADetailerPass:
    """One detector pass; one that is not enabled keeps its place (its ADetailer tab) unrun."""

    model: str = "face_yolov8n.pt"
    prompt: str = ""
    negative_prompt: str = ""
    confidence: float = 0.3
    mask_blur: int = 4
    denoise: float = 0.4
    inpaint_only_masked: bool = True
    inpaint_padding: int = 32
    enabled: bool = True


class ReferenceKind(StrEnum):
    """What a reference image steers: a ControlNet map kind, or an IP-Adapter (style, face)."""

    canny = "canny"
    depth = "depth"
    openpose = "openpose"
    lineart = "lineart"
    tile = "tile"
    ip_style = "ip_style"
    ip_face = "ip_face"


@dataclass(frozen=True)
class ReferenceUnit:
    """One reference image and how it steers the image (a ControlNet or IP-Adapter unit)."""

    image: bytes  # encoded image (PNG/JPEG/WebP)
    kind: ReferenceKind
    model: str = ""  # "" = the node's first model for this kind and family
    strength: float = 1.0
    start: float = 0.0  # fraction of the steps where it starts steering
    end: float = 1.0
    #: True: the server turns the picture into the map (edges, depth…); False: it is one already.
    preprocess: bool = True


@dataclass(frozen=True)
class Txt2ImgJob:
    sampling: Sampling
    task_id: str
    batch_size: int = 1
    hires: HiresFix | None = None
    refiner: Refiner | None = None
    references: tuple[ReferenceUnit, ...] = ()


@dataclass(frozen=True)
class Img2ImgJob:
    sampling: Sampling  # width/height: the output size (A1111 does not take the input's size)
    init_image: bytes  # encoded image (PNG)
    task_id: str
    denoise: float = 0.5
    resize_mode: ResizeMode = ResizeMode.just_resize
    mask: bytes | None = None
    mask_blur: int = 4
    references: tuple[ReferenceUnit, ...] = ()


@dataclass(frozen=True)
class ADetailerJob:
    """Run detector passes over an existing image (A1111: img2img with skip_img2img)."""

    sampling: Sampling
    image: bytes
    task_id: str
    passes: tuple[ADetailerPass, ...] = (ADetailerPass(),)


@dataclass(frozen=True)
class UpscaleJob:
    image: bytes
    task_id: str
    upscaler: str = "R-ESRGAN 4x+"
    scale: float = 2.0
    target_width: int = 0  # both > 0: resize to this size instead of scale
    target_height: int = 0
    upscaler_2: str = "None"
    upscaler_2_visibility: float = 0.0


@dataclass(frozen=True)
class GeneratedImage:
    """One image as the server produced it."""

    data: bytes  # encoded bytes as sent (PNG normally; JPEG/WEBP if the server is set so)
    seed: int
    infotext: str = ""  # the server's own infotext for this image, when it gives one


@dataclass(frozen=True)
class RanWith:
    """What the server says a job ran with, which may differ from what was asked (A1111 falls
    back silently on an unknown sampler or checkpoint; "" = the server did not say)."""

    checkpoint: str = ""  # the model as the server names it (A1111 model_name, ComfyUI file)
    model_hash: str = ""  # A1111's short hash, when the server computed one
    sampler: str = ""  # in A1111's words
    scheduler: str = ""  # A1111's "Schedule type" label
    #: The LoRA files the graph loaded (ComfyUI's LoraLoader chain, in order), for `Lora
    #: hashes`; empty where the server writes that itself (A1111) or loaded none.
    loras: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobResult:
    images: tuple[GeneratedImage, ...]
    info: dict = field(default_factory=dict)  # the server's raw info, parsed
    #: Differences between what was asked and what ran ("Sampler: asked X, server used Y").
    warnings: tuple[str, ...] = ()
    ran: RanWith | None = None
    #: Why the images are not finished work ("" when they are): e.g. someone else pressed
    #: Interrupt on the server and it returned what it had so far.
    incomplete: str = ""


@dataclass(frozen=True)
class Progress:
    """Progress of the current job on the node."""

    fraction: float  # 0..1 of this job
    step: int | None = None
    steps: int | None = None
    eta_seconds: float | None = None
    preview: bytes | None = None  # encoded live preview, when previews are on
    #: The sampling pass `step`/`steps` count: "" for the image's own, "hires" for a hires
    #: fix's second pass (its steps counted on their own).
    phase: str = ""
    #: Another sampling pass follows this one in the same job (the hires pass after the first).
    more_passes: bool = False


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class Capabilities:
    """What a node can do, from probing it."""

    kind: BackendKind
    version: str = ""
    device: str = ""
    vram_total: int | None = None  # bytes
    vram_free: int | None = None
    checkpoints: tuple[str, ...] = ()
    samplers: tuple[str, ...] = ()
    schedulers: tuple[str, ...] = ()
    upscalers: tuple[str, ...] = ()
    loras: tuple[str, ...] = ()
    embeddings: tuple[str, ...] = ()
    adetailer_models: tuple[str, ...] = ()
    #: ComfyUI node classes installed (empty for A1111-style servers).
    node_classes: frozenset[str] = frozenset()
    current_checkpoint: str = ""
    #: False for a node that computes on its CPU (no graphics card); None when unknown.
    has_gpu: bool | None = None
    #: ControlNet / IP-Adapter models the node has (empty: none, or no ControlNet at all).
    controlnet_models: tuple[str, ...] = ()
    #: Whether an A1111-style node has ControlNet (the extension, or Forge's own); None where
    #: it is not known (ComfyUI says it with its node classes).
    has_controlnet: bool | None = None
    #: Forge's VAE and text-encoder files (`/sd-modules`), the values of its additional modules.
    modules: tuple[str, ...] = ()
