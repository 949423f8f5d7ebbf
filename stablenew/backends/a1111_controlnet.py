"""Reference images on A1111/Forge through the ControlNet extension's `alwayson_scripts` units.

Field names follow the extension's own API (Mikubill/sd-webui-controlnet,
`internal_controlnet/args.py` ControlNetUnit and `scripts/api.py`): the server is asked what
it has (`/controlnet/version`, `/controlnet/model_list`, `/controlnet/module_list`) before a
job is sent, and a node without the extension is refused in plain words. Forge's built-in
ControlNet answers the two lists (not the version) and takes the same units.

The extension swallows its own errors (the request succeeds without the control), so the
result is checked afterwards: a unit missing from the infotext becomes a warning.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from stablenew.backends.comfyui_names import missing
from stablenew.backends.errors import MissingResource, RequestRejected
from stablenew.backends.families import SDXL_BASED, ModelFamily, detect_family
from stablenew.backends.references import KINDS, MAX_UNITS, choose_model, first_present
from stablenew.backends.together import together
from stablenew.backends.types import JobResult, ReferenceKind, ReferenceUnit, Sampling

#: The extension's script title as `alwayson_scripts` takes it (matched case-insensitively).
CONTROLNET_SCRIPT = "controlnet"
#: Routes of the extension's API.
VERSION = "/controlnet/version"
MODEL_LIST = "/controlnet/model_list"
MODULE_LIST = "/controlnet/module_list"

#: Preprocessors that read a face with InsightFace: the extension's names, then Forge's built-in
#: ControlNet's. A face reference needs one; a CLIP-only preprocessor would send the picture
#: as a style and lose the face without an error.
INSIGHTFACE_MODULES = ("ip-adapter_face_id_plus", "ip-adapter_face_id",
                       "InsightFace+CLIP-H (IPAdapter)", "InsightFace (IPAdapter)")

#: Forge's CLIP image encoders for IP-Adapters (its preprocessor names).
FORGE_CLIP_H = "CLIP-ViT-H (IPAdapter)"
FORGE_CLIP_BIGG = "CLIP-ViT-bigG (IPAdapter)"

#: GET with `optional=True`: None when the route answers 404 (extension absent).
Getter = Callable[..., Awaitable[Any]]


class ControlNetInfo(NamedTuple):
    """What the node's ControlNet extension has."""

    version: int
    models: tuple[str, ...]
    modules: tuple[str, ...]


async def probe_controlnet(get: Getter) -> ControlNetInfo | None:
    """The node's ControlNet models and preprocessors; None when it has no ControlNet.

    The extension answers all three routes; Forge's built-in ControlNet has no version route
    (its `lib_controlnet/api.py` registers the two lists only), so either answer counts."""
    version, models, modules = await together(get(VERSION, optional=True),
                                              get(MODEL_LIST, optional=True),
                                              get(MODULE_LIST, optional=True))
    if not isinstance(version, dict) and not isinstance(models, dict):
        return None
    version = version if isinstance(version, dict) else {}
    models = models if isinstance(models, dict) else {}
    modules = modules if isinstance(modules, dict) else {}
    return ControlNetInfo(int(version.get("version") or 0),
                          tuple(str(m) for m in models.get("model_list") or () if m != "None"),
                          tuple(str(m) for m in modules.get("module_list") or ()))


def controlnet_unit(unit: ReferenceUnit, info: ControlNetInfo, s: Sampling, node: str) -> dict[str, Any]:
    """One unit as the extension's API takes it, with the node's model and preprocessor."""
    kind = KINDS[unit.kind]
    if not 0.0 <= unit.start <= unit.end <= 1.0:
        raise RequestRejected(f"Reference '{kind.label}': start must be before end, both between 0 and 1.",
                              fields=("start", "end"), node=node)
    if not 0.0 <= unit.strength <= 2.0:
        raise RequestRejected(f"Reference '{kind.label}': strength must be between 0 and 2 on A1111/Forge.",
                              fields=("strength",), node=node)
    family = detect_family(s.checkpoint, choice=s.family)
    model = choose_model(unit, info.models, family)
    if model is None:
        asked = unit.model or f"{kind.label} model for this checkpoint"
        raise missing("controlnet", asked, info.models, node,
                      hint="Put it in the WebUI's models/ControlNet folder.")
    module = "None" if "None" in info.modules else "none"  # Forge's spelling, the extension's
    if unit.kind is ReferenceKind.ip_face:
        module = _face_module(info, node)
    elif unit.preprocess or kind.ip_adapter:  # IP-Adapters always need their image encoder
        found = first_present(kind.a1111_modules, info.modules)
        if found is None and unit.kind is ReferenceKind.ip_style:
            found = _forge_encoder(model, family, info)
        if found is None:
            raise MissingResource(
                f"Node '{node}' has no '{kind.a1111_modules[0]}' preprocessor for the {kind.label} "
                "reference; update its ControlNet extension, or give an image that is already a map.",
                what="controlnet_module", name=kind.a1111_modules[0], installed=info.modules, node=node)
        module = found
    return {
        "enabled": True,
        "module": module,
        "model": model,
        "weight": unit.strength,
        "image": base64.b64encode(unit.image).decode("ascii"),
        "resize_mode": "Crop and Resize",
        "low_vram": False,
        "processor_res": 512,
        "threshold_a": -1,  # -1: the preprocessor's own defaults
        "threshold_b": -1,
        "guidance_start": unit.start,
        "guidance_end": unit.end,
        "pixel_perfect": True,
        "control_mode": "Balanced",
    }


def _forge_encoder(model: str, family: ModelFamily, info: ControlNetInfo) -> str | None:
    """Forge's image encoder for an IP-Adapter style model (Forge has no "auto" one): CLIP
    bigG for the SDXL models trained with it, ViT-H for SD1.5 and the SDXL "vit-h" ones."""
    key = model.lower()
    xl = "xl" in key if ("xl" in key or "sd15" in key) else family in SDXL_BASED
    encoder = FORGE_CLIP_BIGG if xl and "vit-h" not in key and "vith" not in key else FORGE_CLIP_H
    return encoder if encoder in info.modules else None


def _face_module(info: ControlNetInfo, node: str) -> str:
    found = first_present(INSIGHTFACE_MODULES, info.modules)
    if found is None:
        raise MissingResource(
            f"Node '{node}' cannot use a face as a reference: its ControlNet has no InsightFace "
            "preprocessor. Install insightface for the WebUI (then restart it), use "
            "IP-Adapter style instead, or run this on another node.",
            what="controlnet_module", name=INSIGHTFACE_MODULES[0], installed=info.modules,
            node=node, detail=f"none of {INSIGHTFACE_MODULES} in /controlnet/module_list")
    return found


async def add_references(body: dict[str, Any], units: Sequence[ReferenceUnit], s: Sampling,
                         get: Getter, node: str) -> Callable[[JobResult], JobResult]:
    """Put *units* into *body* (after asking the node what it has); returns the check that
    turns a unit the extension skipped into a warning on the result."""
    if not units:
        return lambda result: result
    if len(units) > MAX_UNITS:
        raise RequestRejected(f"At most {MAX_UNITS} reference images per job.", fields=("references",),
                              node=node)
    info = await probe_controlnet(get)
    if info is None:
        raise RequestRejected(
            f"Reference images need the ControlNet extension, which node '{node}' does not have. "
            "Install sd-webui-controlnet (Forge has it built in), or run this on another node.",
            fields=("references",), node=node, detail=f"{VERSION} and {MODEL_LIST} answered 404")
    args = [controlnet_unit(u, info, s, node) for u in units]
    body.setdefault("alwayson_scripts", {})[CONTROLNET_SCRIPT] = {"args": args}

    def check(result: JobResult) -> JobResult:
        warnings = list(result.warnings)
        for i, unit in enumerate(units):
            key = f"ControlNet {i}:"
            if result.images and not all(key in img.infotext for img in result.images if img.infotext):
                warnings.append(f"Reference {i + 1} ({KINDS[unit.kind].label}) did not steer the image: the "
                                f"node's ControlNet skipped it (its console says why).")
        return replace(result, warnings=tuple(warnings)) if len(warnings) != len(result.warnings) else result

    return check
