"""What each kind of reference image needs, on either backend: which model fits it, and which
preprocessor turns a picture into its map. Shared by the A1111 ControlNet and ComfyUI builders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from stablenew.backends.families import ModelFamily
from stablenew.backends.types import ReferenceKind, ReferenceUnit

#: At most this many units per job (the card shows three).
MAX_UNITS = 3


class KindInfo(NamedTuple):
    """One kind's words, model-name hints and preprocessors (A1111 modules, ComfyUI classes)."""

    label: str
    #: Words a fitting model's file name contains (any of them).
    model_words: tuple[str, ...]
    #: sd-webui-controlnet preprocessor modules, best first (the first the server has wins).
    a1111_modules: tuple[str, ...]
    #: ComfyUI preprocessor classes, best first (core Canny; comfyui_controlnet_aux for the rest).
    comfy_preprocessors: tuple[str, ...] = ()
    ip_adapter: bool = False


KINDS: dict[ReferenceKind, KindInfo] = {
    ReferenceKind.canny: KindInfo("Canny edges", ("canny", "union"), ("canny",), ("Canny",)),
    ReferenceKind.depth: KindInfo("Depth", ("depth", "union"), ("depth_midas", "depth_anything_v2", "depth"),
                                  ("DepthAnythingV2Preprocessor", "DepthAnythingPreprocessor",
                                   "MiDaS-DepthMapPreprocessor")),
    ReferenceKind.openpose: KindInfo("Pose", ("openpose", "pose", "union"), ("openpose_full", "openpose"),
                                     ("DWPreprocessor", "OpenposePreprocessor")),
    ReferenceKind.lineart: KindInfo("Line art", ("lineart", "union"),
                                    ("lineart_realistic", "lineart_standard", "lineart"),
                                    ("LineArtPreprocessor", "LineartStandardPreprocessor")),
    ReferenceKind.tile: KindInfo("Tile", ("tile", "union"), ("tile_resample",), ("TilePreprocessor",)),
    ReferenceKind.ip_style: KindInfo("IP-Adapter style", ("ip-adapter", "ip_adapter", "ipadapter"),
                                     ("ip-adapter-auto", "ip-adapter_clip_sdxl_plus_vith",
                                      "ip-adapter_clip_sd15"), ip_adapter=True),
    ReferenceKind.ip_face: KindInfo("IP-Adapter face", ("ip-adapter", "ip_adapter", "ipadapter"),
                                    ("ip-adapter_face_id_plus", "ip-adapter-auto", "ip-adapter_clip_sd15"),
                                    ip_adapter=True),
}

_FAMILY_WORDS = {
    ModelFamily.sd15: ("sd15", "sd1.5", "v11", "sd_15"),
    ModelFamily.sdxl: ("sdxl", "xl"),
    ModelFamily.pony: ("sdxl", "xl"),
    ModelFamily.illustrious: ("sdxl", "xl"),
    ModelFamily.flux: ("flux",),
    ModelFamily.sd35: ("sd3", "sd35"),
}


def _key(name: str) -> str:
    """'sub/control_v11p_sd15_canny.pth [d14c016b]' -> 'control_v11p_sd15_canny'."""
    name = re.sub(r"\s*\[[0-9a-fA-F]{6,}\]\s*$", "", name.strip()).replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"\.(safetensors|pth|pt|ckpt|bin)$", "", name, flags=re.I).lower()


def fits_kind(name: str, kind: ReferenceKind) -> bool:
    key = _key(name)
    info = KINDS[kind]
    is_ip = any(w in key for w in KINDS[ReferenceKind.ip_style].model_words)
    if info.ip_adapter:
        return is_ip and (("face" in key) == (kind is ReferenceKind.ip_face))
    return not is_ip and any(w in key for w in info.model_words)


def choose_model(unit: ReferenceUnit, installed: Sequence[str], family: ModelFamily) -> str | None:
    """The installed model the unit names (by name, without folder, extension or hash), or the
    best fit for its kind and the checkpoint's family; None when nothing fits."""
    if unit.model:
        want = _key(unit.model)
        return next((m for m in installed if m == unit.model), None) or next(
            (m for m in installed if _key(m) == want), None)
    fitting = [m for m in installed if fits_kind(m, unit.kind)]
    words = _FAMILY_WORDS[family]
    same_family = [m for m in fitting if any(w in _key(m) for w in words)]
    if family in (ModelFamily.sd15,):
        # SD1.5 files often carry no family word; an SDXL or Flux one never suits it.
        same_family = same_family or [m for m in fitting if not any(
            w in _key(m) for w in ("xl", "flux", "sd3"))]
    return same_family[0] if same_family else None


def first_present(wanted: Iterable[str], available: Iterable[str]) -> str | None:
    have = set(available)
    return next((w for w in wanted if w in have), None)
