"""VariationSpec: how to vary a base config — prompt templates, config axes, mode and seeds.

The spec is the single truth for its defaults, limits and the GUI's hint texts; presets,
packs and profiles store it as YAML through the same model.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stablenew.pipeline.config import MAX_SEED


class VariationMode(StrEnum):
    fanout = "fanout"
    rotate = "rotate"
    sequential = "sequential"
    random = "random"


#: Plain-language hints shown next to each mode.
MODE_HINTS: dict[VariationMode, str] = {
    VariationMode.fanout: "Every combination: each prompt variant with every value of every axis.",
    VariationMode.rotate: "One pass: each variant takes the next value of every axis, cycling "
                          "when an axis runs out.",
    VariationMode.sequential: "One axis at a time: each value of an axis with everything else "
                              "left as in the base settings.",
    VariationMode.random: "A random sample of the combinations, without repeats while there are "
                          "new ones; the same seed gives the same sample.",
}


class SeedPolicy(StrEnum):
    fixed = "fixed"
    increment = "increment"
    random = "random"


SEED_HINTS: dict[SeedPolicy, str] = {
    SeedPolicy.fixed: "Every variant uses the same seeds, so differences come only from the "
                      "changes you made.",
    SeedPolicy.increment: "Each image uses the next seed (seed, seed+1, …).",
    SeedPolicy.random: "Each image gets a random seed; it is recorded so you can make it again.",
}


class AxisKind(StrEnum):
    checkpoint = "checkpoint"
    sampler = "sampler"
    scheduler = "scheduler"
    steps = "steps"
    cfg_scale = "cfg_scale"
    size = "size"
    denoise = "denoise"
    hires_scale = "hires_scale"
    hires_denoise = "hires_denoise"
    lora = "lora"
    #: LoRAs picked in the Models tab (its selection or filter), handed over as names + weights.
    lora_library = "lora_library"
    embedding = "embedding"
    negative_embedding = "negative_embedding"
    style = "style"
    family = "family"
    guidance = "guidance"


#: Where each named axis writes in PipelineConfig (dotted paths); the others touch the prompt.
AXIS_PATHS: dict[AxisKind, tuple[str, ...]] = {
    AxisKind.checkpoint: ("txt2img.checkpoint",),
    AxisKind.sampler: ("txt2img.sampler",),
    AxisKind.scheduler: ("txt2img.scheduler",),
    AxisKind.steps: ("txt2img.steps",),
    AxisKind.cfg_scale: ("txt2img.cfg_scale",),
    AxisKind.size: ("txt2img.width", "txt2img.height"),
    AxisKind.denoise: ("img2img.denoise",),
    AxisKind.hires_scale: ("txt2img.hires.scale",),
    AxisKind.hires_denoise: ("txt2img.hires.denoise",),
    AxisKind.family: ("txt2img.family",),
    AxisKind.guidance: ("txt2img.guidance",),
}

AXIS_TITLES: dict[AxisKind, str] = {
    AxisKind.checkpoint: "Model",
    AxisKind.sampler: "Sampler",
    AxisKind.scheduler: "Scheduler",
    AxisKind.steps: "Steps",
    AxisKind.cfg_scale: "CFG scale",
    AxisKind.size: "Size",
    AxisKind.denoise: "Denoise (img2img)",
    AxisKind.hires_scale: "Hires scale",
    AxisKind.hires_denoise: "Hires denoise",
    AxisKind.lora: "LoRA",
    AxisKind.lora_library: "LoRA from library",
    AxisKind.embedding: "Embedding",
    AxisKind.negative_embedding: "Negative embedding",
    AxisKind.style: "Style",
    AxisKind.family: "Model family",
    AxisKind.guidance: "Guidance (Flux)",
}

_NUMERIC = {AxisKind.steps, AxisKind.cfg_scale, AxisKind.denoise, AxisKind.hires_scale,
            AxisKind.hires_denoise, AxisKind.guidance}
# A1111 X/Y/Z plot ranges: "1-5", "10-30 (+5)", "0.5-1 [3]".
_RANGE = re.compile(
    r"^\s*(?P<a>-?\d+(?:\.\d+)?)\s*-\s*(?P<b>-?\d+(?:\.\d+)?)\s*"
    r"(?:\(\s*(?P<step>[+-]?\d+(?:\.\d+)?)\s*\)|\[\s*(?P<count>\d+)\s*\])?\s*$")
MAX_AXIS_VALUES = 1000


class LoraValue(BaseModel):
    """One LoRA on an axis: injected as `<lora:name:weight>` (an empty name means none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("", title="LoRA name")
    weight: float = Field(1.0, ge=-5.0, le=5.0, title="LoRA weight")

    @property
    def tag(self) -> str:
        return f"<lora:{self.name}:{self.weight:g}>" if self.name else ""

    @property
    def label(self) -> str:
        return f"{self.name}:{self.weight:g}" if self.name else "none"


class StyleValue(BaseModel):
    """One style on an axis: merged into the prompts by A1111's rule ({prompt} or appended)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, title="Style name")
    prompt: str = Field("", title="Style prompt")
    negative_prompt: str = Field("", title="Style negative prompt")


class Axis(BaseModel):
    """One config axis: a named setting (or any dotted config path) and the values to try."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AxisKind | None = Field(None, title="Setting",
                                  description="Which setting this axis changes.")
    path: str | None = Field(None, title="Config path",
                             description="Any setting by its dotted path, e.g. img2img.cfg_scale.")
    values: list[Any] = Field(..., min_length=1, title="Values",
                              description="The values to try, in order.")

    @model_validator(mode="before")
    @classmethod
    def _named(cls, data: Any) -> Any:
        # `{"steps": [20, 30]}` is the short form users write in YAML.
        if isinstance(data, dict) and len(data) == 1:
            (key, values), = data.items()
            if key not in ("kind", "path", "values"):
                kind = key if key in AxisKind.__members__ else None
                data = {"kind": kind, "path": None if kind else key, "values": values}
        if isinstance(data, dict) and isinstance(data.get("values"), str | int | float):
            data = {**data, "values": [data["values"]]}  # "20-40 (+10)" or a single value
        return data

    @model_validator(mode="after")
    def _normalise(self) -> Axis:
        if (self.kind is None) == (self.path is None):
            raise ValueError("an axis needs either a setting name (kind) or a config path")
        values = list(self.values)
        if self.kind in _NUMERIC or self.path is not None:
            values = expand_ranges(values)
        if self.kind in (AxisKind.lora, AxisKind.lora_library):
            values = [_lora(v) for v in values]
        elif self.kind is AxisKind.family:
            values = [_family(v) for v in values]
        elif self.kind is AxisKind.style:
            values = [v if isinstance(v, StyleValue) else StyleValue.model_validate(
                v if isinstance(v, dict) else {"name": str(v), "prompt": str(v)}) for v in values]
        elif self.kind is AxisKind.size:
            values = [_size(v) for v in values]
        if len(values) > MAX_AXIS_VALUES:
            raise ValueError(f"an axis can hold at most {MAX_AXIS_VALUES} values")
        object.__setattr__(self, "values", values)
        return self

    @property
    def name(self) -> str:
        return self.kind.value if self.kind else str(self.path)

    @property
    def title(self) -> str:
        return AXIS_TITLES[self.kind] if self.kind else str(self.path)

    def value_label(self, value: Any) -> str:
        if isinstance(value, LoraValue):
            return value.label
        if isinstance(value, StyleValue):
            return value.name
        if isinstance(value, tuple):
            return f"{value[0]}x{value[1]}"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value) if value != "" else "none"


class VariationSpec(BaseModel):
    """How to vary a base config: templates, axes, mode, images per variant and seeds."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    version: int = 1
    template: str | None = Field(
        None, title="Prompt template",
        description="Prompt with {a|b} variants and __wildcards__ (empty: the base prompt).")
    negative_template: str | None = Field(
        None, title="Negative template",
        description="Negative prompt with variants (empty: the base negative prompt).")
    prompt_matrix: bool = Field(
        False, title="Prompt matrix",
        description="A1111's prompt matrix: 'base|a|b' makes every subset of the parts after "
                    "the first.")
    mode: VariationMode = Field(VariationMode.fanout, title="Mode")
    axes: list[Axis] = Field(default_factory=list, title="Axes")
    images_per_variant: int = Field(1, ge=1, le=1000, title="Images per variant",
                                    description="How many images to make of each variant.")
    seed_policy: SeedPolicy = Field(SeedPolicy.fixed, title="Seeds")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, title="Plan seed",
                             description="Same seed, same plan (empty: a new random seed, "
                                         "recorded with the plan).")
    count: int | None = Field(None, ge=1, le=1_000_000, title="Random samples",
                              description="How many variants random mode draws.")
    max_images: int | None = Field(None, ge=1, title="At most",
                                   description="Stop after this many images (empty: no limit).")
    wildcard_weights: dict[str, dict[str, float]] = Field(
        default_factory=dict, title="Wildcard weights",
        description="Bias random picks per wildcard line (profiles set these).")

    @field_validator("wildcard_weights")
    @classmethod
    def _weights_non_negative(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for name, lines in value.items():
            for line, w in lines.items():
                if not w >= 0:
                    raise ValueError(f"weight of '{line}' in __{name}__ must be 0 or more")
        return value

    @model_validator(mode="after")
    def _random_needs_count(self) -> VariationSpec:
        if self.mode is VariationMode.random and self.count is None:
            raise ValueError("random mode needs 'count': how many variants to draw")
        return self


def expand_ranges(values: list[Any]) -> list[Any]:
    """A1111 X/Y/Z range strings among the values, expanded; other values kept as they are."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, str) and "," in value:
            out.extend(expand_ranges([v.strip() for v in value.split(",") if v.strip()]))
            continue
        match = _RANGE.match(value) if isinstance(value, str) else None
        if not match:
            out.append(_number(value))
            continue
        a, b = float(match["a"]), float(match["b"])
        integral = all("." not in (match[g] or "") for g in ("a", "b", "step"))
        if match["count"]:
            n = int(match["count"])
            points = [a] if n == 1 else [a + (b - a) * i / (n - 1) for i in range(n)]
        else:
            step = float(match["step"]) if match["step"] else (1.0 if b >= a else -1.0)
            if step == 0 or (b - a) * step < 0:
                raise ValueError(f"the range '{value}' never reaches its end")
            n = int((b - a) / step + 1e-9) + 1
            if n > MAX_AXIS_VALUES:
                raise ValueError(f"the range '{value}' has more than {MAX_AXIS_VALUES} values")
            points = [a + step * i for i in range(n)]
        out.extend(int(round(p)) if integral else round(p, 6) for p in points)
    return out


def _number(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    return value


def _family(value: Any) -> str:
    from stablenew.pipeline.config import FamilyChoice

    text = str(value).strip().lower().replace(".", "").replace(" ", "")
    text = {"sd1": "sd15", "sd35large": "sd35", "sd3": "sd35", "xl": "sdxl"}.get(text, text)
    if text not in FamilyChoice.__members__:
        raise ValueError(f"'{value}' is not a model family; use "
                         + ", ".join(m.value for m in FamilyChoice))
    return text


def _lora(value: Any) -> LoraValue:
    if isinstance(value, LoraValue):
        return value
    if isinstance(value, dict):
        return LoraValue.model_validate(value)
    text = str(value).strip()
    if text.startswith("<lora:") and text.endswith(">"):
        text = text[6:-1]
    if text.lower() in ("", "none"):
        return LoraValue()
    name, sep, weight = text.rpartition(":")
    if sep and name:
        try:
            return LoraValue(name=name, weight=float(weight))
        except ValueError:
            pass
    return LoraValue(name=text)


def _size(value: Any) -> tuple[int, int]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    match = re.fullmatch(r"\s*(\d+)\s*[x×*,]\s*(\d+)\s*", str(value))
    if not match:
        raise ValueError(f"the size '{value}' should look like 768x512")
    return int(match[1]), int(match[2])


__all__ = [
    "AXIS_PATHS",
    "AXIS_TITLES",
    "MODE_HINTS",
    "SEED_HINTS",
    "Axis",
    "AxisKind",
    "LoraValue",
    "SeedPolicy",
    "StyleValue",
    "VariationMode",
    "VariationSpec",
    "expand_ranges",
]
