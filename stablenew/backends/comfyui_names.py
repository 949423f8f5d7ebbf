"""A1111 words and ComfyUI words for the same things, and matching a user's names to a node's files.

Our jobs speak A1111 ("DPM++ 2M", "Karras", "R-ESRGAN 4x+", `<lora:name:0.8>`); ComfyUI wants
its own names and files. One table per kind of name lives here, plus the plain-language
MissingResource for a name a node cannot serve.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import NamedTuple

from stablenew.backends.errors import MissingResource
from stablenew.backends.lora_tags import LORA_TAG, read_tag

# ---------------------------------------------------------------------------- name tables
#: A1111/Forge sampler names -> ComfyUI sampler_name. ComfyUI names are accepted as they are.
SAMPLERS: dict[str, str] = {
    "DPM++ 2M": "dpmpp_2m",
    "DPM++ SDE": "dpmpp_sde",
    "DPM++ 2M SDE": "dpmpp_2m_sde",
    "DPM++ 2M SDE Heun": "dpmpp_2m_sde_heun",
    "DPM++ 2S a": "dpmpp_2s_ancestral",
    "DPM++ 3M SDE": "dpmpp_3m_sde",
    "Euler a": "euler_ancestral",
    "Euler": "euler",
    "LMS": "lms",
    "Heun": "heun",
    "DPM2": "dpm_2",
    "DPM2 a": "dpm_2_ancestral",
    "DPM fast": "dpm_fast",
    "DPM adaptive": "dpm_adaptive",
    "DDIM": "ddim",
    "DDPM": "ddpm",
    "UniPC": "uni_pc",
    "LCM": "lcm",
    # Forge's CFG++ samplers.
    "Euler CFG++": "euler_cfg_pp",
    "Euler a CFG++": "euler_ancestral_cfg_pp",
    "DPM++ 2M CFG++": "dpmpp_2m_cfg_pp",
}
_SAMPLER_KEYS = {k.lower(): v for k, v in SAMPLERS.items()}
#: ComfyUI sampler -> the A1111 name users type for it (the first when several map to one).
A1111_SAMPLER: dict[str, str] = {}
for _name, _comfy in SAMPLERS.items():
    A1111_SAMPLER.setdefault(_comfy, _name)

#: A1111 "Schedule type" labels -> ComfyUI scheduler. "Automatic" depends on the sampler.
SCHEDULERS: dict[str, str] = {
    "Uniform": "normal",
    "Karras": "karras",
    "Exponential": "exponential",
    "SGM Uniform": "sgm_uniform",
    "KL Optimal": "kl_optimal",
    "Simple": "simple",
    "Normal": "normal",
    "DDIM": "ddim_uniform",
    "Beta": "beta",
}
_SCHEDULER_KEYS = {k.lower(): v for k, v in SCHEDULERS.items()}
#: ComfyUI scheduler -> A1111 "Schedule type" label ("normal" is A1111's "Normal").
A1111_SCHEDULER: dict[str, str] = {v: k for k, v in SCHEDULERS.items()}


def a1111_sampler_names(available: Iterable[str]) -> tuple[str, ...]:
    """A node's samplers in A1111's words (so presets stay portable), then ComfyUI-only ones."""
    available = tuple(available)
    mapped = [name for name, comfy in SAMPLERS.items() if comfy in available]
    covered = set(SAMPLERS.values())
    return tuple(mapped) + tuple(a for a in available if a not in covered)


def a1111_scheduler_names(available: Iterable[str]) -> tuple[str, ...]:
    available = tuple(available)
    mapped = [name for name, comfy in SCHEDULERS.items() if comfy in available]
    covered = set(SCHEDULERS.values())
    return ("Automatic", *mapped) + tuple(a for a in available if a not in covered)


#: What A1111 picks for "Automatic" (its samplers' default schedulers), in ComfyUI words.
AUTOMATIC_SCHEDULER: dict[str, str] = {
    "dpm_2": "karras",
    "dpm_2_ancestral": "karras",
    "dpmpp_2s_ancestral": "karras",
    "dpmpp_2m": "karras",
    "dpmpp_sde": "karras",
    "dpmpp_2m_sde": "karras",
    "dpmpp_2m_sde_heun": "exponential",
    "dpmpp_3m_sde": "exponential",
    "ddim": "ddim_uniform",
}

#: A1111 latent upscalers -> LatentUpscale methods.
LATENT_UPSCALERS: dict[str, str] = {
    "latent": "bilinear",
    "latent (antialiased)": "bilinear",
    "latent (bicubic)": "bicubic",
    "latent (bicubic antialiased)": "bicubic",
    "latent (nearest)": "nearest-exact",
    "latent (nearest-exact)": "nearest-exact",
}

#: A1111 plain pixel resizers -> ImageScale methods (no model needed).
PIXEL_UPSCALERS: dict[str, str] = {"none": "lanczos", "lanczos": "lanczos", "nearest": "nearest-exact"}

#: A1111's built-in upscaler names -> the usual file names of the same models.
UPSCALER_FILES: dict[str, tuple[str, ...]] = {
    "R-ESRGAN 4x+": ("RealESRGAN_x4plus",),
    "R-ESRGAN 4x+ Anime6B": ("RealESRGAN_x4plus_anime_6B",),
    "R-ESRGAN 2x+": ("RealESRGAN_x2plus",),
    "ESRGAN_4x": ("ESRGAN_4x", "ESRGAN_x4", "RRDB_ESRGAN_x4"),
    "SwinIR 4x": ("SwinIR_4x", "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN"),
    "ScuNET": ("scunet_color_real_psnr", "ScuNET"),
    "DAT x4": ("DAT_x4",),
}
UPSCALER_ALIASES = {_k.lower(): _v for _k, _v in UPSCALER_FILES.items()}


def a1111_upscaler_names(installed: Iterable[str]) -> tuple[str, ...]:
    """The upscaler names a node can serve, in A1111's words as well as its own files.

    The scheduler compares a config's upscaler ("R-ESRGAN 4x+") with a node's list, so a
    ComfyUI node lists the A1111 names its files stand in for, and the resizers that need none.
    """
    installed = tuple(installed)
    names = ["None", "Lanczos", "Nearest", "Latent", "Latent (antialiased)", "Latent (bicubic)",
             "Latent (bicubic antialiased)", "Latent (nearest)", "Latent (nearest-exact)"]
    names += [alias for alias, files in UPSCALER_FILES.items()
              if any(match_file(f, installed) for f in files)]
    return tuple(names) + installed

_WHAT_WORDS = {
    "checkpoint": "Checkpoint",
    "lora": "LoRA",
    "upscaler": "Upscaler",
    "sampler": "Sampler",
    "scheduler": "Schedule type",
    "adetailer_model": "Detector model",
    "node_class": "Node type",
    "image": "Image",
    "diffusion_model": "Diffusion model",
    "text_encoder": "Text encoder",
    "vae": "VAE",
    "controlnet": "ControlNet model",
}

#: Which kind of thing a combo input names, for plain-language errors.
COMBO_WHAT = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoint",
    ("LoraLoader", "lora_name"): "lora",
    ("LoraLoaderModelOnly", "lora_name"): "lora",
    ("UpscaleModelLoader", "model_name"): "upscaler",
    ("UltralyticsDetectorProvider", "model_name"): "adetailer_model",
    ("UNETLoader", "unet_name"): "diffusion_model",
    ("UnetLoaderGGUF", "unet_name"): "diffusion_model",
    ("DualCLIPLoader", "clip_name1"): "text_encoder",
    ("DualCLIPLoader", "clip_name2"): "text_encoder",
    ("TripleCLIPLoader", "clip_name1"): "text_encoder",
    ("TripleCLIPLoader", "clip_name2"): "text_encoder",
    ("TripleCLIPLoader", "clip_name3"): "text_encoder",
    ("VAELoader", "vae_name"): "vae",
    ("ControlNetLoader", "control_net_name"): "controlnet",
}


def _installed_words(installed: Iterable[str], limit: int = 8) -> str:
    names = list(installed)
    if not names:
        return "none installed"
    shown = ", ".join(names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"installed: {shown}{more}"


def unknown(what: str, name: str, choices: Iterable[str], node: str, *, detail: str = ""
            ) -> MissingResource:
    """A name StableNew does not know for *what* at all (a typo, or another tool's word),
    with the names the user can type instead: A1111's, then ComfyUI's own."""
    choices = tuple(choices)
    word = _WHAT_WORDS.get(what, what).lower()
    message = (f"Unknown {word} '{name}'. Node '{node}' can run: "
               f"{_installed_words(choices, limit=24).removeprefix('installed: ')}.")
    return MissingResource(message, what=what, name=name, installed=choices, node=node,
                           detail=detail)


def user_words(what: str, names: Iterable[str]) -> tuple[str, ...]:
    """A node's sampler or scheduler list in the words a user types (A1111's first)."""
    if what == "sampler":
        return a1111_sampler_names(names)
    if what == "scheduler":
        return a1111_scheduler_names(names)
    return tuple(names)


def missing(what: str, name: str, installed: Iterable[str], node: str, *, hint: str = "",
            detail: str = "") -> MissingResource:
    """A MissingResource whose message names the thing, the node and what is there instead."""
    installed = tuple(installed)
    word = _WHAT_WORDS.get(what, what)
    message = f"{word} '{name}' is not installed on node '{node}' — {_installed_words(installed)}."
    if hint:
        message += " " + hint
    return MissingResource(message, what=what, name=name, installed=installed, node=node, detail=detail)


# ---------------------------------------------------------------------------- name resolution
def normalize_name(name: str) -> str:
    return name.strip().lower()


def _stem(name: str) -> str:
    """'sub\\Model.safetensors [abc123]' -> 'sub/model' (A1111 titles carry a hash suffix)."""
    name = re.sub(r"\s*\[[0-9a-fA-F]{6,}\]\s*$", "", name.strip()).replace("\\", "/")
    lowered = name.lower()
    for ext in (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft"):
        if lowered.endswith(ext):
            return lowered[: -len(ext)]
    return lowered


def match_file(name: str, installed: Iterable[str]) -> str | None:
    """The installed file a user's name means: exact, then without hash/extension, then basename."""
    installed = list(installed)
    if name in installed:
        return name
    want = _stem(name)
    by_stem = {_stem(i): i for i in installed}
    if want in by_stem:
        return by_stem[want]
    base = PurePosixPath(want).name
    hits = [i for s, i in by_stem.items() if PurePosixPath(s).name == base]
    return hits[0] if len(hits) == 1 else None


def comfy_sampler(name: str, available: Iterable[str], node: str) -> tuple[str, str | None]:
    """ComfyUI sampler for an A1111 name, plus the scheduler an old-style name implies
    ("DPM++ 2M Karras")."""
    available = tuple(available)
    if name in available:
        return name, None
    key = normalize_name(name)
    implied = None
    for suffix, sched in ((" karras", "karras"), (" exponential", "exponential")):
        if key.endswith(suffix) and key[: -len(suffix)] in _SAMPLER_KEYS:
            key, implied = key[: -len(suffix)], sched
    mapped = _SAMPLER_KEYS.get(key)
    if mapped is None:
        raise unknown("sampler", name, a1111_sampler_names(available), node)
    if available and mapped not in available:
        raise missing("sampler", name, a1111_sampler_names(available), node)
    return mapped, implied


def comfy_scheduler(name: str, sampler: str, implied: str | None, available: Iterable[str],
                    node: str) -> str:
    available = tuple(available)
    if name in available:
        return name
    key = normalize_name(name)
    mapped: str | None
    if key in ("automatic", ""):
        mapped = implied or AUTOMATIC_SCHEDULER.get(sampler, "normal")
    else:
        mapped = _SCHEDULER_KEYS.get(key)
    if mapped is None:
        raise unknown("scheduler", name, a1111_scheduler_names(available), node)
    if available and mapped not in available:
        raise missing("scheduler", name, a1111_scheduler_names(available), node)
    return mapped


_HYPERNET_RE = re.compile(r"<hypernet:[^>]*>", re.IGNORECASE)


class LoraUse(NamedTuple):
    """One LoRA tag of a prompt: the file and its two weights."""

    name: str
    unet_weight: float
    text_encoder_weight: float


def split_loras(prompt: str) -> tuple[str, list[LoraUse], list[str]]:
    """Take A1111's `<lora:name:weight>` tags out of a prompt (ComfyUI loads LoRAs as nodes)."""
    loras: list[LoraUse] = []
    warnings: list[str] = []

    def take(m: re.Match[str]) -> str:
        tag = read_tag(m)
        if tag.bad:
            warnings.append(f"LoRA weight '{tag.bad}' of {tag.name} is not a number; used "
                            f"{tag.weight:g} for the text encoder and {tag.unet_weight:g} for the UNet.")
        loras.append(LoraUse(tag.name, tag.unet_weight, tag.weight))
        return ""

    cleaned = LORA_TAG.sub(take, prompt)
    if _HYPERNET_RE.search(cleaned):
        warnings.append("Hypernetworks are not supported on ComfyUI; the <hypernet:…> tags were left out.")
        cleaned = _HYPERNET_RE.sub("", cleaned)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip().strip(",").strip()
    return cleaned, loras, warnings


def mark_embeddings(prompt: str, embeddings: Iterable[str]) -> str:
    """A1111 names textual inversions by bare word; ComfyUI wants `embedding:name`."""
    names = sorted({_stem(PurePosixPath(e).name) for e in embeddings}, key=len, reverse=True)
    if not names or not prompt:
        return prompt
    pattern = re.compile(r"(?<![\w:])(" + "|".join(re.escape(n) for n in names) + r")(?![\w])",
                         re.IGNORECASE)
    return pattern.sub(lambda m: "embedding:" + m.group(1), prompt)
