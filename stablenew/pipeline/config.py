"""PipelineConfig: everything one pipeline run needs, stage by stage, validated in plain words.

Each field's title, description (the GUI tooltip), default and limits are declared once here;
the GUI cards, presets and the randomizer all read them from this model.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stablenew.backends.types import ReferenceKind
from stablenew.storage.documents import DocumentError, dump_yaml, parse_yaml_model
from stablenew.storage.migrations import Migrations
from stablenew.storage.validation import Problem, plain_problems

CONFIG_VERSION = 1
MAX_SEED = 2**32 - 1
#: ADetailer's own default number of tabs (its "max models" setting).
MAX_ADETAILER_PASSES = 4


class StageName(StrEnum):
    txt2img = "txt2img"
    img2img = "img2img"
    adetailer = "adetailer"
    upscale = "upscale"


STAGE_ORDER: tuple[StageName, ...] = (
    StageName.txt2img,
    StageName.img2img,
    StageName.adetailer,
    StageName.upscale,
)


class ResizeMode(StrEnum):
    just_resize = "just_resize"
    crop_and_resize = "crop_and_resize"
    resize_and_fill = "resize_and_fill"
    latent_upscale = "latent_upscale"

    @property
    def label(self) -> str:
        """The words A1111's own img2img tab shows for it (the value is what files keep)."""
        return {"just_resize": "Just resize", "crop_and_resize": "Crop and resize",
                "resize_and_fill": "Resize and fill",
                "latent_upscale": "Just resize (latent upscale)"}[self.value]


class FamilyChoice(StrEnum):
    """The model family a config asks for; `auto` tells it from the model's name or catalog."""

    auto = "auto"
    sd15 = "sd15"
    sdxl = "sdxl"
    pony = "pony"
    illustrious = "illustrious"
    flux = "flux"
    sd35 = "sd35"

    @property
    def label(self) -> str:
        return {"auto": "From the model", "sd15": "SD 1.5", "sdxl": "SDXL", "pony": "Pony",
                "illustrious": "Illustrious", "flux": "Flux.1", "sd35": "SD 3.5"}[self.value]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: How the cards name each kind of reference image.
REFERENCE_KIND_LABELS = {
    ReferenceKind.canny: "Edges (canny)", ReferenceKind.depth: "Depth",
    ReferenceKind.openpose: "Pose (openpose)", ReferenceKind.lineart: "Line art",
    ReferenceKind.tile: "Tile", ReferenceKind.ip_style: "Style (IP-Adapter)",
    ReferenceKind.ip_face: "Face (IP-Adapter)"}


#: Reference images per stage (the card shows this many slots).
MAX_REFERENCES = 3


class ReferenceSettings(_Section):
    """One reference image (a ControlNet or IP-Adapter unit) on the txt2img or img2img card."""

    image: str = Field(title="Image", description="The picture, kept in StableNew's data folder under "
                                                  "its content hash so a queued job keeps it.")
    sha256: str = Field("", pattern=r"^([0-9a-f]{64})?$", title="Content hash")
    kind: ReferenceKind = Field(ReferenceKind.canny, title="Kind",
                                      description="What the picture steers: edges, depth, pose, line "
                                                  "art, tiles, or a style or face to keep.")
    model: str = Field("", title="Model", description="Empty: the node's model for this kind.")
    strength: float = Field(1.0, ge=0.0, le=2.0, title="Strength")
    start: float = Field(0.0, ge=0.0, le=1.0, title="Start", description="Fraction of the steps where "
                                                                         "it starts steering.")
    end: float = Field(1.0, ge=0.0, le=1.0, title="End")
    preprocess: bool = Field(True, title="Preprocess on the server",
                             description="Off: the image is already a map (edges, depth, pose).")

    @model_validator(mode="after")
    def _start_before_end(self) -> ReferenceSettings:
        if self.start > self.end:
            raise ValueError("start must not be after end")
        return self


class HiresSettings(_Section):
    """Hires fix: a second, larger pass inside txt2img."""

    enabled: bool = Field(False, title="Hires fix",
                          description="Render small, then upscale and refine in a second pass.")
    upscaler: str = Field("Latent", title="Hires upscaler",
                          description="How the first image is enlarged before the second pass.")
    scale: float = Field(2.0, ge=1.0, le=4.0, title="Hires scale",
                         description="How much larger the final image is than the first pass.")
    resize_width: int = Field(0, ge=0, le=8192, title="Hires target width",
                              description="Exact final width instead of a scale (0: use scale).")
    resize_height: int = Field(0, ge=0, le=8192, title="Hires target height",
                               description="Exact final height instead of a scale (0: use scale).")
    steps: int = Field(0, ge=0, le=150, title="Hires steps",
                       description="Steps of the second pass (0: same as the first).")
    denoise: float = Field(0.45, ge=0.0, le=1.0, title="Hires denoise",
                           description="How much the second pass may change — lower keeps more "
                                       "of the first image.")


class RefinerSettings(_Section):
    enabled: bool = Field(False, title="Refiner",
                          description="Hand the last steps to a second model (SDXL refiner).")
    checkpoint: str = Field("", title="Refiner model")
    switch_at: float = Field(0.8, ge=0.01, le=1.0, title="Switch at",
                             description="Fraction of the steps after which the refiner takes over.")


class Txt2ImgSettings(_Section):
    enabled: bool = Field(True, title="Text to image")
    prompt: str = Field("", title="Prompt", description="What you want to see.")
    negative_prompt: str = Field("", title="Negative prompt",
                                 description="What you do not want to see.")
    checkpoint: str = Field("", title="Model",
                            description="Checkpoint to use (empty: the one the server has loaded).")
    family: FamilyChoice = Field(FamilyChoice.auto, title="Model family",
                                 description="Decides how the model is loaded and which settings "
                                             "apply (Flux: guidance instead of CFG, no negative "
                                             "prompt). From the model: told by its name.")
    sampler: str = Field("DPM++ 2M", title="Sampler")
    scheduler: str = Field("Karras", title="Scheduler",
                           description="Noise schedule (Automatic: the sampler's default).")
    steps: int = Field(20, ge=1, le=150, title="Steps",
                       description="More steps: more detail, slower. 20–30 is typical.")
    cfg_scale: float = Field(7.0, ge=1.0, le=30.0, title="CFG scale",
                             description="How strictly to follow the prompt. 5–8 is typical.")
    guidance: float = Field(3.5, ge=0.0, le=30.0, title="Guidance",
                            description="Flux only: how strictly to follow the prompt (Forge's "
                                        "Distilled CFG). 2–4 is typical; CFG stays at 1.")
    width: int = Field(512, ge=64, le=4096, multiple_of=8, title="Width")
    height: int = Field(512, ge=64, le=4096, multiple_of=8, title="Height")
    seed: int = Field(-1, ge=-1, le=MAX_SEED, title="Seed",
                      description="-1 picks a random seed; the one used is recorded in the image.")
    batch_size: int = Field(1, ge=1, le=8, title="Batch size",
                            description="Images made together in one go (uses more VRAM).")
    batch_count: int = Field(1, ge=1, le=100, title="Batch count",
                             description="How many batches to make one after another.")
    clip_skip: int = Field(1, ge=1, le=12, title="Clip skip",
                           description="Skip the last CLIP layers; 2 suits many anime models.")
    # Flux loads its VAE and two text encoders apart (Forge: "VAE / Text Encoder").
    vae: str = Field("", title="VAE", description="Flux only: the VAE file (empty: the usual "
                                                  "one, ae.safetensors).")
    text_encoder: str = Field("", title="Text encoder (CLIP-L)",
                              description="Flux only: the CLIP-L text encoder file (empty: the "
                                          "usual one).")
    text_encoder_2: str = Field("", title="Text encoder (T5)",
                                description="Flux only: the T5-XXL text encoder file (empty: "
                                            "the usual one; an fp8 one needs less memory).")
    hires: HiresSettings = Field(default_factory=HiresSettings)
    refiner: RefinerSettings = Field(default_factory=RefinerSettings)
    # A plain [] (pydantic copies it for each model): `default_factory=list` has pydantic read
    # list's signature from its text, which costs every start-up ~5 ms of tokenizer set-up.
    references: list[ReferenceSettings] = Field([], max_length=MAX_REFERENCES,
                                                title="References")


class Img2ImgSettings(_Section):
    enabled: bool = Field(False, title="Image to image",
                          description="Redraw the image from the previous stage (or your input).")
    denoise: float = Field(0.5, ge=0.0, le=1.0, title="Denoise",
                           description="How much the image may change — lower keeps more of "
                                       "the original.")
    steps: int = Field(20, ge=1, le=150, title="Steps")
    cfg_scale: float = Field(7.0, ge=1.0, le=30.0, title="CFG scale")
    sampler: str = Field("DPM++ 2M", title="Sampler")
    scheduler: str = Field("Karras", title="Scheduler")
    resize_mode: ResizeMode = Field(ResizeMode.just_resize, title="Resize mode")
    width: int = Field(0, ge=0, le=4096, multiple_of=8, title="Width",
                       description="Redraw at this size (0: the size of the image it starts "
                                   "from).")
    height: int = Field(0, ge=0, le=4096, multiple_of=8, title="Height")
    prompt_override: str = Field("", title="Prompt override",
                                 description="Use a different prompt here (empty: the main prompt).")
    negative_override: str = Field("", title="Negative prompt override")
    init_image: str = Field("", title="Init image",
                            description="The picture to start from when Text to image is off "
                                        "(the gallery's “Use as init image” fills it in).")
    references: list[ReferenceSettings] = Field([], max_length=MAX_REFERENCES,
                                                title="References")


class ADetailerPassSettings(_Section):
    """One detector pass (one ADetailer tab); its place in the list is its tab number."""

    # Off keeps the pass in the list, so the passes after it keep their tab numbers.
    enabled: bool = Field(True, title="Run this pass",
                          description="Off skips this detector pass but keeps its settings, and "
                                      "the passes after it keep their numbers.")
    model: str = Field("face_yolov8n.pt", title="Detector",
                       description="What to find and fix: faces, hands or people.")
    prompt: str = Field("", title="Detail prompt", description="Empty: the main prompt.")
    negative_prompt: str = Field("", title="Detail negative prompt")
    confidence: float = Field(0.3, ge=0.0, le=1.0, title="Confidence",
                              description="Only fix detections at least this sure.")
    mask_blur: int = Field(4, ge=0, le=64, title="Mask blur")
    denoise: float = Field(0.4, ge=0.0, le=1.0, title="Detail denoise",
                           description="How much each detected area may change.")
    inpaint_only_masked: bool = Field(True, title="Inpaint only masked")
    inpaint_padding: int = Field(32, ge=0, le=256, title="Inpaint padding")


class ADetailerSettings(_Section):
    enabled: bool = Field(False, title="ADetailer",
                          description="Find faces or hands and redraw them in more detail.")
    passes: list[ADetailerPassSettings] = Field(
        default_factory=lambda: [ADetailerPassSettings()], min_length=1, max_length=MAX_ADETAILER_PASSES,
        title="Detector passes")

    def active_passes(self) -> list[tuple[int, ADetailerPassSettings]]:
        """The passes that run, each with its place in the list (0: ADetailer's first tab)."""
        return [(n, p) for n, p in enumerate(self.passes) if p.enabled]

    @property
    def runs(self) -> bool:
        """ADetailer is switched on and at least one of its passes is too."""
        return self.enabled and any(p.enabled for p in self.passes)


class UpscaleSettings(_Section):
    enabled: bool = Field(False, title="Upscale",
                          description="Enlarge the finished image with an upscaler model.")
    upscaler: str = Field("R-ESRGAN 4x+", title="Upscaler")
    scale: float = Field(2.0, gt=0.0, le=8.0, title="Upscale factor")
    target_width: int = Field(0, ge=0, le=16384, title="Target width",
                              description="Exact width instead of a factor (0: use the factor).")
    target_height: int = Field(0, ge=0, le=16384, title="Target height")
    upscaler_2: str = Field("None", title="Second upscaler")
    upscaler_2_visibility: float = Field(0.0, ge=0.0, le=1.0, title="Second upscaler visibility")


class SafetyLimits(_Section):
    max_output_pixels: int = Field(
        64_000_000, ge=4096, title="Largest output (pixels)",
        description="Runs whose final image would be larger are refused before anything is sent.")
    max_upscale_factor: float = Field(
        8.0, ge=1.0, le=32.0, title="Largest total upscale",
        description="Largest total enlargement (hires × upscale) allowed.")


class PipelineConfig(_Section):
    """One pipeline run: txt2img → img2img → ADetailer → upscale, any stage switched off."""

    version: int = CONFIG_VERSION
    txt2img: Txt2ImgSettings = Field(default_factory=Txt2ImgSettings)
    img2img: Img2ImgSettings = Field(default_factory=Img2ImgSettings)
    adetailer: ADetailerSettings = Field(default_factory=ADetailerSettings)
    upscale: UpscaleSettings = Field(default_factory=UpscaleSettings)
    limits: SafetyLimits = Field(default_factory=SafetyLimits)

    @model_validator(mode="after")
    def _within_limits(self) -> PipelineConfig:
        width, height = self.final_size(self.txt2img.width, self.txt2img.height)
        factor = max(width / self.txt2img.width, height / self.txt2img.height)
        if factor > self.limits.max_upscale_factor + 1e-9:
            raise ValueError(
                f"The total enlargement would be {factor:g}×, above the limit of "
                f"{self.limits.max_upscale_factor:g}× (Largest total upscale). Lower the hires "
                "scale or the upscale factor, or raise the limit.")
        pixels = width * height
        if pixels > self.limits.max_output_pixels:
            raise ValueError(
                f"The final image would be {width}×{height} ({pixels / 1e6:.1f} MP), above the "
                f"limit of {self.limits.max_output_pixels / 1e6:g} MP (Largest output). Lower "
                "the size or the upscale, or raise the limit.")
        return self

    def enabled_stages(self) -> tuple[StageName, ...]:
        """The stages that run: switched on, and for ADetailer with at least one pass on."""
        return tuple(stage for stage in STAGE_ORDER
                     if (self.adetailer.runs if stage is StageName.adetailer
                         else getattr(self, stage.value).enabled))

    def final_size(self, width: int, height: int) -> tuple[int, int]:
        """Output size of the enabled stages for a first image of width×height."""
        t = self.txt2img
        if t.enabled and t.hires.enabled:
            width, height = hires_size(width, height, t.hires)
        u = self.upscale
        if u.enabled:
            if u.target_width and u.target_height:
                width, height = u.target_width, u.target_height
            else:
                width, height = round(width * u.scale), round(height * u.scale)
        return width, height

    # --- YAML -----------------------------------------------------------------------------

    def to_yaml(self, *, only_changes: bool = False) -> str:
        data = self.model_dump(mode="json", exclude_defaults=only_changes)
        data = {"version": CONFIG_VERSION, **data}
        return dump_yaml(data)

    @classmethod
    def from_yaml(cls, text: str, *, path: str | None = None) -> PipelineConfig:
        """Parse YAML; raises DocumentError naming the line and field of the first problem."""
        return parse_yaml_model(text, cls, path=path, migrate=migrate_config)

    @classmethod
    def load(cls, path: Any) -> PipelineConfig:
        from stablenew.storage.documents import load_yaml_model

        return load_yaml_model(path, cls, migrate=migrate_config)

    def with_changes(self, changes: dict[str, Any]) -> PipelineConfig:
        """A copy with dotted-path changes applied and validated, e.g. {"txt2img.steps": 30}."""
        data = self.model_dump()
        for dotted, value in changes.items():
            set_path(data, dotted, value)
        return type(self).model_validate(data)

    def layered(self, partial: dict[str, Any]) -> PipelineConfig:
        """A copy with a nested partial config (as a preset holds) laid over this one."""
        return type(self).model_validate(deep_merge(self.model_dump(), partial))


def hires_size(width: int, height: int, hires: HiresSettings) -> tuple[int, int]:
    """The size A1111 produces for hires fix (target size when given, else scale).

    A1111 works out a target (`calculate_target_resolution`: `int(width * scale)`), but the
    second pass runs on a latent an eighth of that size, so the image comes out floored to
    a multiple of 8: 512 at scale 1.3 is 665 asked and 664 made.
    """
    rx, ry = hires.resize_width, hires.resize_height
    if rx == 0 and ry == 0:
        w, h = int(width * hires.scale), int(height * hires.scale)
    elif rx == 0:
        w, h = ry * width // height, ry
    elif ry == 0:
        w, h = rx, rx * height // width
    else:
        w, h = rx, ry
    return w // 8 * 8, h // 8 * 8


def _config_v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    # v0 kept the txt2img fields at the top level and called CFG "cfg".
    t2i = dict(data.pop("txt2img", {}) or {})
    for key in list(data):
        if key in Txt2ImgSettings.model_fields:
            t2i.setdefault(key, data.pop(key))
    if "cfg" in data:
        t2i.setdefault("cfg_scale", data.pop("cfg"))
    if "cfg" in t2i:
        t2i.setdefault("cfg_scale", t2i.pop("cfg"))
    data["txt2img"] = t2i
    return data


#: Upgrades older config documents to the current version.
migrate_config = Migrations("format", CONFIG_VERSION, ((0, 1, _config_v0_to_v1),))


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = data
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class ConfigInvalid(ValueError):
    """A config that cannot run, with plain-language problems naming each field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def validate_config(data: dict[str, Any]) -> PipelineConfig:
    """Validate a dict into a PipelineConfig, raising ConfigInvalid with plain messages."""
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigInvalid(plain_problems(exc, PipelineConfig)) from None


__all__ = [
    "ADetailerPassSettings",
    "ADetailerSettings",
    "ConfigInvalid",
    "DocumentError",
    "HiresSettings",
    "Img2ImgSettings",
    "PipelineConfig",
    "RefinerSettings",
    "ResizeMode",
    "STAGE_ORDER",
    "SafetyLimits",
    "StageName",
    "Txt2ImgSettings",
    "UpscaleSettings",
    "validate_config",
]
