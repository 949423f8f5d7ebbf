"""The settings a learning run can vary, each with plain-language labels and suggested values.

One `Parameter` knows where its value lives in a `PipelineConfig`, how to read it back from
a config that ran (None when its stage was off), how to set it, and how to write it in words.
The same definitions feed the plan builder, the denormalised values in the store and the
insights, so "steps" means one thing everywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from operator import attrgetter
from typing import Any

from stablenew.backends.lora_tags import LORA_TAG, lora_weights, swap_lora
from stablenew.learning.errors import PlanInvalid
from stablenew.pipeline.config import PipelineConfig

Value = int | float | str

LORA_PREFIX = "lora:"
#: A swatch: one image per LoRA on one prompt and seed (a style preview). Each value is what
#: that image adds to the prompt: its `<lora:name:weight>` and trigger words.
SWATCH_KEY = "lora_swatch"


@dataclass(frozen=True)
class Parameter:
    """One setting a learning run can vary, and how to read, set and describe it."""

    key: str  # stable identifier stored in the database, e.g. "steps"
    label: str  # plain words for headings, e.g. "Steps"
    kind: type  # int, float or str
    suggested: tuple[Value, ...]
    path: str = ""  # dotted path in PipelineConfig; empty for prompt-borne values (LoRA)
    # Dotted path of the switch that must be on for the value to matter (e.g. hires fix).
    requires: str = ""
    unit: str = ""  # word after a number in summaries: "30–35 steps"
    low: float | None = None
    high: float | None = None
    #: Reads the value when the path alone does not tell it (the model family "auto" is the
    #: family the model's name says).
    reader: Callable[[PipelineConfig], Value | None] | None = None
    #: Says one value in words when "<label> <value>" would not read well ("not enhanced").
    words: Callable[[str], str] | None = None

    @property
    def runnable(self) -> bool:
        """Whether a learning run can set it in a config (the enhance style is not in one)."""
        return bool(self.path) or self.key.startswith(LORA_PREFIX) or self.key == SWATCH_KEY

    @property
    def numeric(self) -> bool:
        return self.kind is not str

    def value_of(self, config: PipelineConfig) -> Value | None:
        """The value the config ran with, or None when this setting played no part."""
        if self.requires and not _get(config, self.requires):
            return None
        switch = _item_switch(self.path)
        if switch and not _get(config, switch):
            return None  # e.g. the denoise of an ADetailer pass that is switched off
        if self.key.startswith(LORA_PREFIX):
            weights = lora_weights(config.txt2img.prompt)
            return weights.get(self.key[len(LORA_PREFIX):])
        if self.key == SWATCH_KEY:
            # A swatch image is told by its cell; its record keeps each LoRA's weight anyway.
            return None
        if self.reader is not None:
            return self.reader(config)
        return _get(config, self.path)

    def apply(self, config: PipelineConfig, value: Value) -> PipelineConfig:
        """A copy of *config* with this setting at *value* (and its stage switched on)."""
        value = self.coerce(value)
        if not self.runnable:
            raise PlanInvalid(f"A learning run cannot vary the {self.label.lower()} yet: make a "
                              "batch with each one instead (the images are compared all the same).")
        changes: dict[str, Any] = {}
        if self.requires:
            changes[self.requires] = True
        switch = _item_switch(self.path)
        if switch:
            changes[switch] = True
        if self.key.startswith(LORA_PREFIX):
            prompt = set_lora_weight(config.txt2img.prompt, self.key[len(LORA_PREFIX):], float(value))
            changes["txt2img.prompt"] = prompt
        elif self.key == SWATCH_KEY:
            changes["txt2img.prompt"] = add_to_prompt(config.txt2img.prompt, str(value))
        else:
            changes[self.path] = value
        return config.with_changes(changes)

    def coerce(self, value: Any) -> Value:
        """*value* as this parameter's type, or PlanInvalid saying what is wrong."""
        if self.kind is str:
            text = str(value).strip()
            if self.key != "checkpoint" and not text:
                raise PlanInvalid(f"{self.label}: an empty value cannot be compared.")
            if self.key == SWATCH_KEY and not lora_weights(text):
                raise PlanInvalid(f"'{text}' names no LoRA; each image of a swatch adds one "
                                  "as <lora:name:weight>.")
            return text
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise PlanInvalid(f"{self.label} must be a number; '{value}' is not.") from None
        if not math.isfinite(number):
            raise PlanInvalid(f"{self.label} must be a number; '{value}' is not.")
        if self.kind is int:
            if not number.is_integer():
                raise PlanInvalid(f"{self.label} must be a whole number; '{value}' is not.")
            number = int(number)
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise PlanInvalid(
                f"{self.label} must be between {format_number(self.low)} and "
                f"{format_number(self.high)}; {format_number(number)} is outside.")
        return number

    def text(self, value: Value | None) -> str:
        """The canonical text of a value, as stored in the database and used as a key."""
        if value is None:
            return ""
        if self.kind is str:
            return str(value)
        return format_number(float(value) if self.kind is float else int(value))

    def sort_key(self, text: str) -> tuple[float, str]:
        if self.numeric:
            try:
                return (float(text), "")
            except ValueError:
                return (math.inf, text)
        return (0.0, text.casefold())

    def describe(self, text: str) -> str:
        """A value in plain words: "30 steps", "CFG 7", "Sampler DPM++ 2M"."""
        if self.key == "checkpoint" and not text:
            return "the server's current model"
        if self.words is not None:
            return self.words(text)
        if self.key == SWATCH_KEY:
            return " + ".join(f"{name} {format_number(w)}" for name, w in lora_weights(text).items())
        if self.unit:
            return f"{text} {self.unit}"
        return f"{self.label} {text}"

    def describe_band(self, texts: list[str]) -> str:
        """A run of values in plain words: "30–35 steps", "Sampler Euler a or DDIM"."""
        if len(texts) == 1:
            return self.describe(texts[0])
        if self.numeric:
            span = f"{texts[0]}–{texts[-1]}"
            return f"{span} {self.unit}" if self.unit else f"{self.label} {span}"
        if self.words is not None:
            return " or ".join(self.describe(t) for t in texts)
        return f"{self.label} " + " or ".join(texts)


def format_number(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        value = round(value, 4)
        if value.is_integer():
            return str(int(value))
        return f"{value:g}"
    return str(value)


@lru_cache(maxsize=64)
def _getter(dotted: str) -> Callable[[Any], Any]:
    """A fast reader for a dotted path; numeric parts index lists ("adetailer.passes.0.denoise")."""
    parts = dotted.split(".")
    if not any(p.isdigit() for p in parts):
        return attrgetter(dotted)

    def read(node: Any) -> Any:
        for part in parts:
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        return node
    return read


@lru_cache(maxsize=64)
def _item_switch(dotted: str) -> str:
    """The on/off switch of the list item *dotted* points into ("adetailer.passes.0.enabled"),
    or "" when the path is not inside a list item."""
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join([*parts[: i + 1], "enabled"])
    return ""


def _get(config: PipelineConfig, dotted: str) -> Any:
    node = _getter(dotted)(config)
    if isinstance(node, StrEnum):
        return node.value
    return node


def set_lora_weight(prompt: str, name: str, weight: float) -> str:
    """The prompt with LoRA *name* at *weight*; the tag is appended when the prompt lacks it."""
    token = f"<lora:{name}:{format_number(weight)}>"
    prompt, replaced = swap_lora(prompt, name, token)
    if not replaced:
        prompt = f"{prompt}, {token}" if prompt.strip() else token
    return prompt


def add_to_prompt(prompt: str, fragment: str) -> str:
    """*prompt* with a fragment's trigger words (those not in it yet) and its LoRAs added; a
    LoRA the prompt names already takes the fragment's weight instead of a second copy.
    "a city" + "neonstyle, <lora:neon:0.7>" gives "a city, neonstyle, <lora:neon:0.7>"."""
    words = [w.strip() for w in LORA_TAG.sub("", fragment).split(",") if w.strip()]
    lowered = prompt.lower()
    new = [w for w in words
           if not re.search(rf"(?<![\w]){re.escape(w.lower())}(?![\w])", lowered)]
    text = ", ".join(([prompt.rstrip(" ,")] if prompt.strip(" ,") else []) + new)
    for name, weight in lora_weights(fragment).items():
        text = set_lora_weight(text, name, weight)
    return text


def _family_of(config: PipelineConfig) -> str:
    """The family the image was made with: the user's choice, else what the model's name says."""
    from stablenew.backends.families import detect_family

    choice = config.txt2img.family.value
    return detect_family(config.txt2img.checkpoint,
                         choice="" if choice == "auto" else choice).value


#: The enhance-style value of an image whose prompt no local LLM enhanced.
NOT_ENHANCED = "none"
ENHANCE_KEY = "enhance"


def _enhance_words(text: str) -> str:
    return "not enhanced" if text == NOT_ENHANCED else f"enhanced with '{text}'"


def enhance_value(template: str | None) -> str:
    """The enhance parameter's value of an image: its template, or "none" when not enhanced."""
    return template.strip() if template and template.strip() else NOT_ENHANCED


_FIXED: tuple[Parameter, ...] = (
    Parameter("steps", "Steps", int, (15, 20, 25, 30, 35), "txt2img.steps", unit="steps",
              low=1, high=150),
    Parameter("cfg", "CFG scale", float, (4.0, 5.5, 7.0, 8.5, 10.0), "txt2img.cfg_scale",
              low=1, high=30),
    Parameter("sampler", "Sampler", str, ("DPM++ 2M", "Euler a", "Euler", "DPM++ SDE", "DDIM"),
              "txt2img.sampler"),
    Parameter("scheduler", "Scheduler", str, ("Automatic", "Karras", "Exponential", "SGM Uniform"),
              "txt2img.scheduler"),
    Parameter("denoise", "Denoise", float, (0.3, 0.4, 0.5, 0.6, 0.7), "img2img.denoise",
              requires="img2img.enabled", low=0, high=1),
    Parameter("hires_scale", "Hires scale", float, (1.25, 1.5, 1.75, 2.0), "txt2img.hires.scale",
              requires="txt2img.hires.enabled", low=1, high=4),
    Parameter("hires_denoise", "Hires denoise", float, (0.3, 0.4, 0.5, 0.6),
              "txt2img.hires.denoise", requires="txt2img.hires.enabled", low=0, high=1),
    Parameter("checkpoint", "Model", str, (), "txt2img.checkpoint"),
    Parameter("adetailer_denoise", "ADetailer denoise", float, (0.2, 0.3, 0.4, 0.5),
              "adetailer.passes.0.denoise", requires="adetailer.enabled", low=0, high=1),
    Parameter("clip_skip", "Clip skip", int, (1, 2), "txt2img.clip_skip", low=1, high=12),
    Parameter("family", "Model family", str, ("sdxl", "pony", "illustrious"), "txt2img.family",
              reader=_family_of),
    # Flux's guidance (the other families keep the default, which is then the same everywhere).
    Parameter("guidance", "Guidance", float, (2.5, 3.0, 3.5, 4.0, 4.5), "txt2img.guidance",
              low=0, high=30),
)

#: The local-LLM enhance template the prompt went through (stablenew.prompting), "none" when it
#: went as written: not in the config but in the image's tags, so `parameter_values` is told.
ENHANCE = Parameter(ENHANCE_KEY, "Enhance style", str,
                    (NOT_ENHANCED, "general", "cinematic", "photo", "anime"),
                    reader=lambda _config: None, words=_enhance_words)

PARAMETERS: dict[str, Parameter] = {p.key: p for p in (*_FIXED, ENHANCE)}
#: Not among PARAMETERS: its values come from the Models room, not typed in the plan builder.
SWATCH = Parameter(SWATCH_KEY, "LoRA swatch", str, ())
LORA_SUGGESTED: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0)


def lora_parameter(name: str) -> Parameter:
    name = name.strip()
    if not name:
        raise PlanInvalid("Name the LoRA whose weight to compare (as in <lora:name:weight>).")
    if any(c in name for c in ":<>"):
        raise PlanInvalid(f"'{name}' is not a LoRA name StableNew can put in a prompt.")
    return Parameter(f"{LORA_PREFIX}{name}", f"LoRA {name} weight", float, LORA_SUGGESTED,
                     unit=f"{name} weight", low=-2, high=3)


def get_parameter(key: str) -> Parameter:
    """The parameter for a stored key; LoRA weights are "lora:<name>"."""
    if key.startswith(LORA_PREFIX):
        return lora_parameter(key[len(LORA_PREFIX):])
    if key == SWATCH_KEY:
        return SWATCH
    try:
        return PARAMETERS[key]
    except KeyError:
        known = ", ".join(PARAMETERS)
        raise PlanInvalid(f"'{key}' is not a setting a learning run can vary. Choose one of: "
                          f"{known}, or lora:<name>.") from None


def parameter_values(config: PipelineConfig, *, enhance_template: str | None = None) -> dict[str, str]:
    """Every known parameter's value in a config that ran, as canonical text (for the store),
    with the enhance style its prompt went through (*enhance_template*; "none" without one)."""
    values: dict[str, str] = {ENHANCE_KEY: enhance_value(enhance_template)}
    for param in _FIXED:
        value = param.value_of(config)
        if value is not None:
            values[param.key] = param.text(value)
    for name, weight in lora_weights(config.txt2img.prompt).items():
        values[f"{LORA_PREFIX}{name}"] = format_number(weight)
    return values

