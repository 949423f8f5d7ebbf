"""Family-specific fields of A1111/Forge/SD.Next requests (Flux on Forge: CFG 1, distilled CFG).

The payload builders call `apply_family` once the common body is made; it changes only what
the model's family needs, so SD1.5/SDXL requests stay exactly as they were.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from stablenew.backends.a1111_fields import OPTION_CHECKPOINT, OPTIONS
from stablenew.backends.errors import RequestRejected
from stablenew.backends.families import ModelFamily, detect_family
from stablenew.backends.types import BackendKind, Sampling

#: Forge's option naming the VAE and text encoder files loaded beside a diffusion model.
FORGE_MODULES_OPTION = "forge_additional_modules"


def apply_family(body: dict[str, Any], s: Sampling, kind: BackendKind) -> None:
    """Set what *s*'s family needs on a txt2img/img2img *body* for a server of *kind*."""
    family = detect_family(s.checkpoint, choice=s.family)
    if family is not ModelFamily.flux:
        return
    if kind == BackendKind.a1111:
        raise RequestRejected("AUTOMATIC1111 cannot run Flux models; run them on a Forge, SD.Next or "
                              "ComfyUI node, or choose another model.", fields=("checkpoint",),
                              detail=f"family flux for {s.checkpoint!r} on an A1111 server")
    # Flux is guidance-distilled: real CFG stays 1 and the negative prompt has no effect.
    body["cfg_scale"] = 1.0
    body["negative_prompt"] = ""
    if kind != BackendKind.forge:
        return
    body["distilled_cfg_scale"] = s.guidance
    if body.get("enable_hr"):
        body["hr_cfg"] = 1.0
        body["hr_distilled_cfg"] = s.guidance
    modules = [m for m in (s.vae, *s.text_encoders) if m]
    if modules:
        # Short file names are accepted (Forge resolves them against models/VAE and text_encoder).
        body.setdefault("override_settings", {})[FORGE_MODULES_OPTION] = modules


async def with_loaded_family(s: Sampling, get: Callable[..., Awaitable[Any]], kind: BackendKind,
                             references: tuple[object, ...] = ()) -> Sampling:
    """*s* with the family of the model the server has loaded, when *s* leaves both the model
    ("the server's current") and the family open. A name-less guess is SD1.5, so a loaded Flux
    model got CFG 7 and a negative prompt, and an SDXL one an SD1.5 ControlNet model. Asked
    only where the family changes the request: a server that can run Flux, or references."""
    if s.checkpoint or s.family or (kind == BackendKind.a1111 and not references):
        return s
    options = await get(OPTIONS)
    loaded = options.get(OPTION_CHECKPOINT) if isinstance(options, dict) else None
    return replace(s, family=detect_family(str(loaded)).value) if loaded else s


async def forge_modules(get: Callable[..., Awaitable[Any]], kind: BackendKind) -> tuple[str, ...]:
    """Forge's VAE and text-encoder files (`/sd-modules`, its names for `forge_additional_modules`);
    empty on other servers, which choose these some other way or not at all."""
    if kind != BackendKind.forge:
        return ()
    data = await get("/sdapi/v1/sd-modules", optional=True)
    if not isinstance(data, list):
        return ()
    return tuple(str(m["model_name"]) for m in data if isinstance(m, dict) and m.get("model_name"))


def hires_cfg_for(s: Sampling, asked: float | None) -> float:
    """The CFG Forge's hires pass should run at: the one asked for, else the first pass's; 1 for
    Flux, whose CFG always stays 1."""
    if detect_family(s.checkpoint, choice=s.family) is ModelFamily.flux:
        return 1.0
    return asked if asked is not None else s.cfg_scale
