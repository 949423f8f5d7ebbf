"""Model families (SD1.5, SDXL, Pony, Illustrious, Flux, SD3.5): detection and their defaults.

A family decides which graph a model needs (one checkpoint file, or a diffusion model with
separate text encoders and VAE), which fields apply (Flux takes no negative prompt and uses
guidance instead of CFG) and how much VRAM it takes. The defaults are plain data shipped in
`resources/families/<family>.yaml`. Detection goes: the user's choice, then a base-model label
(the catalog's or CivitAI's), then the file name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any, NamedTuple

from stablenew.storage.resources import resource_path


class ModelFamily(StrEnum):
    sd15 = "sd15"
    sdxl = "sdxl"
    pony = "pony"
    illustrious = "illustrious"
    flux = "flux"
    sd35 = "sd35"


class GraphKind(StrEnum):
    """How a family's model is loaded: one checkpoint, or Flux's / SD3.5's parts."""

    checkpoint = "checkpoint"
    flux = "flux"
    sd35 = "sd35"


#: Families whose models are SDXL underneath (their ControlNet models, encoders and VRAM are
#: SDXL's).
SDXL_BASED = frozenset({ModelFamily.sdxl, ModelFamily.pony, ModelFamily.illustrious})


class Precision(StrEnum):
    """How a model file stores its weights, as far as the file name tells."""

    fp16 = "fp16"
    fp8 = "fp8"
    nf4 = "nf4"
    gguf = "gguf"


class VramNeed(NamedTuple):
    """Video memory a family needs: a base plus so much per megapixel."""

    base_gb: float
    per_megapixel_gb: float

    def at(self, megapixels: float) -> float:
        return self.base_gb + self.per_megapixel_gb * megapixels


@dataclass(frozen=True)
class FamilyProfile:
    """One family's graph, defaults, fields that do not apply (with why) and VRAM needs."""

    family: ModelFamily
    label: str
    graph: GraphKind
    defaults: Mapping[str, Any]
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    negative_prompt: bool = True
    #: File-name hints for separate text encoders, in the loader's order ("" hints: none).
    text_encoders: tuple[str, ...] = ()
    vae: str = ""
    #: Card field -> why it does not apply to this family.
    hidden: Mapping[str, str] = field(default_factory=dict)
    vram: VramNeed = VramNeed(5.0, 2.0)
    vram_by_precision: Mapping[Precision, VramNeed] = field(default_factory=dict)

    def defaults_for(self, model: str = "") -> dict[str, Any]:
        """The defaults, with those of the variant the model name says (e.g. Flux schnell)."""
        out = dict(self.defaults)
        stem = model_stem(model)
        for name, values in self.variants.items():
            if name in stem:
                out.update(values)
        return out

    def vram_need(self, model: str = "") -> VramNeed:
        return self.vram_by_precision.get(precision(model), self.vram) if model else self.vram


class FamilyDataError(ValueError):
    """A shipped family file is malformed (a packaging mistake, caught by the tests)."""


def _need(data: Any, where: str) -> VramNeed:
    if not isinstance(data, dict):
        raise FamilyDataError(f"{where}: must be {{base_gb, per_megapixel_gb}}")
    return VramNeed(float(data["base_gb"]), float(data["per_megapixel_gb"]))


@cache
def profile(family: ModelFamily) -> FamilyProfile:
    """The shipped profile of *family* (resources/families/<family>.yaml)."""
    import yaml

    path = resource_path("families", f"{family.value}.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("version") != 1:
        raise FamilyDataError(f"{path}: field 'version' must be 1")
    try:
        return FamilyProfile(
            family=family, label=str(data["label"]), graph=GraphKind(data["graph"]),
            defaults=dict(data["defaults"]),
            variants={str(k): dict(v) for k, v in (data.get("variants") or {}).items()},
            negative_prompt=bool(data.get("negative_prompt", True)),
            text_encoders=tuple(str(t) for t in data.get("text_encoders") or ()),
            vae=str(data.get("vae") or ""),
            hidden={str(k): str(v) for k, v in (data.get("hidden") or {}).items()},
            vram=_need(data["vram"], f"{path}: vram"),
            vram_by_precision={Precision(k): _need(v, f"{path}: vram_by_precision.{k}")
                               for k, v in (data.get("vram_by_precision") or {}).items()})
    except (KeyError, ValueError, TypeError) as exc:
        raise FamilyDataError(f"{path}: {exc!r}") from exc


def model_stem(name: str) -> str:
    """'sub\\Flux1-Dev-FP8.safetensors [abc123]' -> 'flux1-dev-fp8'."""
    stem = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = re.sub(r"\s*\[[0-9a-f]+\]$", "", stem.strip(), flags=re.I)
    return re.sub(r"\.(safetensors|ckpt|pt|pth|gguf|sft|bin)$", "", stem, flags=re.I).lower()


_SD35 = re.compile(r"(sd_?3[._-]?5|stable[-_ ]?diffusion[-_ ]?3[._-]?5|sd3[._-]?5|^sd3[_-])")
_PONY = re.compile(r"pony")
_ILLUSTRIOUS = re.compile(r"(illustrious|noobai|^il[_-]?xl|[_-]ilxl)")
_XL = re.compile(r"(sdxl|[_\-\s.]xl[_\-\s.]|xl$|^xl|juggernautxl|turbo_?xl|realvisxl)")


def family_from_name(name: str) -> ModelFamily:
    """The family a model's file name suggests (SD1.5 when it suggests none)."""
    stem = model_stem(name)
    path = name.replace("\\", "/").lower()
    if "flux" in stem or "/flux" in path:
        return ModelFamily.flux
    if _SD35.search(stem):
        return ModelFamily.sd35
    if _PONY.search(stem):
        return ModelFamily.pony
    if _ILLUSTRIOUS.search(stem):
        return ModelFamily.illustrious
    if _XL.search(stem):
        return ModelFamily.sdxl
    return ModelFamily.sd15


def family_from_label(label: str) -> ModelFamily | None:
    """A base-model label (the catalog's "SDXL", CivitAI's "Flux.1 D", "SD 3.5 Large", kohya's
    "sdxl_base_v1-0", modelspec "flux-1-dev") as a family; None when it names none we know."""
    t = re.sub(r"[\s._-]", "", label.lower())
    if not t or t == "unknown":
        return None
    for key, family in (("pony", ModelFamily.pony), ("illustrious", ModelFamily.illustrious),
                        ("noobai", ModelFamily.illustrious), ("flux", ModelFamily.flux),
                        ("sd35", ModelFamily.sd35), ("stablediffusion35", ModelFamily.sd35),
                        ("sd3", ModelFamily.sd35), ("xl", ModelFamily.sdxl),
                        ("sd1", ModelFamily.sd15), ("sdv1", ModelFamily.sd15)):
        if key in t:
            return family
    return None


def detect_family(model: str, *, choice: str = "", label: str = "") -> ModelFamily:
    """The family of *model*: the user's *choice* wins, then a base-model *label*, then the name."""
    if choice:
        return ModelFamily(choice)
    return family_from_label(label) or family_from_name(model)


def precision(name: str) -> Precision:
    """Weight storage a model file name states (fp16 when it says nothing)."""
    lowered = name.lower()
    if lowered.endswith(".gguf") or re.search(r"(^|[_-])q[2-8](_k)?", model_stem(name)):
        return Precision.gguf
    stem = model_stem(name)
    if "nf4" in stem:
        return Precision.nf4
    if "fp8" in stem or "e4m3" in stem or "e5m2" in stem:
        return Precision.fp8
    return Precision.fp16


def pick_file(hint: str, installed: tuple[str, ...]) -> str | None:
    """The installed file that best fits a family hint ("t5xxl", "clip_l", "ae"): an exact stem
    first, then the shortest name containing it (fp8 encoders before fp16 ones, which are twice
    the size)."""
    stems = {i: model_stem(i) for i in installed}
    exact = [i for i, s in stems.items() if s == hint]
    if exact:
        return exact[0]
    if len(hint) <= 2:  # "ae": only whole words, or a Flux-named VAE
        hits = [i for i, s in stems.items() if re.search(rf"(^|[_-]){hint}($|[_-])", s)
                or ("flux" in s and ("vae" in s or s.endswith("ae")))]
    else:
        hits = [i for i, s in stems.items() if hint in s]
    if not hits:
        return None
    return sorted(hits, key=lambda i: (0 if "fp8" in stems[i] else 1, len(i), i))[0]
