"""Profiles: a character, a setting and a style a user keeps coming back to.

Applying a profile fills the prompt fields (character, setting, style and its LoRAs as
`<lora:name:weight>`) and returns a `RandomizerBias`: preferred values of wildcards, merged
into the randomizer's VariationSpec (`wildcard_weights`), so random picks lean towards the
profile while every value stays possible. Profiles are stored and managed like
presets (same folder rules, trash and undo).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.presets import DisplayName, DocumentWarning, LibraryFolder
from stablenew.storage.documents import dump_yaml, parse_yaml_model
from stablenew.storage.migrations import Migrations
from stablenew.storage.paths import AppPaths
from stablenew.storage.validation import plain_problems

PROFILE_VERSION = 1
T = TypeVar("T", bound=BaseModel)


class LoraChoice(BaseModel):
    """A LoRA the profile always uses, with its strength."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, max_length=200, title="LoRA",
                      description="File name of the LoRA without extension.")
    weight: float = Field(1.0, ge=-5.0, le=5.0, title="LoRA weight",
                          description="Strength: 0.6–1.0 is typical.")

    @field_validator("name")
    @classmethod
    def _no_brackets(cls, value: str) -> str:
        if any(c in value for c in "<>:"):
            raise ValueError("A LoRA name cannot contain <, > or ':'. Write only its file name.")
        return value.strip()

    def tag(self) -> str:
        return f"<lora:{self.name}:{self.weight:g}>"


class Profile(BaseModel):
    """A reusable subject: character, setting, style, backstory, wildcard preferences, LoRAs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    version: int = PROFILE_VERSION
    name: DisplayName = Field(..., title="Name")
    description: str = Field("", max_length=4000, title="Description")
    tags: list[str] = Field(default_factory=list, title="Tags")
    character: str = Field("", title="Character", description="Who is in the picture.")
    setting: str = Field("", title="Setting", description="Where and when.")
    style: str = Field("", title="Style", description="How it looks: medium, artist, lighting.")
    backstory: str = Field("", max_length=20_000, title="Backstory",
                           description="Notes for you; not sent to the server.")
    negative_prompt: str = Field("", title="Negative prompt")
    wildcard_weights: dict[str, dict[str, float]] = Field(
        default_factory=dict, title="Preferred wildcard values",
        description="For a wildcard, how much more often each value is picked (1: normal).")
    loras: list[LoraChoice] = Field(default_factory=list, max_length=20, title="LoRAs")

    @field_validator("wildcard_weights")
    @classmethod
    def _weights(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for wildcard, weights in value.items():
            for item, weight in weights.items():
                if weight < 0:
                    raise ValueError(f"The weight of '{item}' in wildcard '{wildcard}' is {weight:g}; "
                                     "weights must be 0 or more.")
        return value

    def prompt(self) -> str:
        """The prompt this profile stands for: character, setting, style, then its LoRAs."""
        text = ", ".join(part.strip() for part in (self.character, self.setting, self.style) if part.strip())
        tags = " ".join(lora.tag() for lora in self.loras)
        return " ".join(part for part in (text, tags) if part)

    def bias(self) -> RandomizerBias:
        return RandomizerBias(wildcard_weights=self.wildcard_weights, loras=tuple(self.loras))

    def apply_to(self, config: PipelineConfig) -> tuple[PipelineConfig, RandomizerBias]:
        """*config* with the prompt fields preloaded from the profile, and the randomizer bias."""
        changes: dict[str, Any] = {"txt2img.prompt": self.prompt()}
        if self.negative_prompt:
            changes["txt2img.negative_prompt"] = self.negative_prompt
        return config.with_changes(changes), self.bias()

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_defaults=True)
        return dump_yaml({"version": PROFILE_VERSION, "name": self.name, **data})


@dataclass(frozen=True)
class RandomizerBias:
    """What a profile asks of the randomizer: preferred wildcard values and fixed LoRAs."""

    wildcard_weights: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    loras: tuple[LoraChoice, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.wildcard_weights and not self.loras

    def apply_to_spec(self, spec: T) -> T:
        """The randomizer's VariationSpec with the profile's wildcard preferences merged in.

        The spec's own weights for a wildcard line stay unless the profile names that line.
        """
        if not self.wildcard_weights:
            return spec
        merged = {name: dict(lines) for name, lines in getattr(spec, "wildcard_weights", {}).items()}
        for name, lines in self.wildcard_weights.items():
            merged.setdefault(name, {}).update(lines)
        return spec.model_copy(update={"wildcard_weights": merged})


# --- the one-line text forms the profile editor shows -----------------------------------------


def format_loras(loras: list[LoraChoice]) -> str:
    """'mira_v2:0.7, film:1' — how the editor shows a profile's LoRAs."""
    return ", ".join(f"{lora.name}:{lora.weight:g}" for lora in loras)


def parse_loras(text: str) -> list[dict[str, Any]]:
    """LoRAs from 'name:weight, name' (weight 1 when left out), for Profile validation."""
    found: list[dict[str, Any]] = []
    for part in (p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        name, sep, weight = part.rpartition(":")
        if not sep:
            name, weight = part, "1"
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(f"LoRA '{part}': the weight after ':' must be a number, like "
                             f"{name.strip() or 'name'}:0.8.") from None
        found.append({"name": name.strip(), "weight": value})
    return found


def format_weights(weights: Mapping[str, Mapping[str, float]]) -> str:
    """One line per wildcard: 'hair: silver=3, red=0'."""
    return "\n".join(f"{name}: " + ", ".join(f"{line}={w:g}" for line, w in lines.items())
                     for name, lines in weights.items())


def parse_weights(text: str) -> dict[str, dict[str, float]]:
    """Wildcard weights from lines 'wildcard: value=weight, value=weight'."""
    weights: dict[str, dict[str, float]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        if not sep or not name.strip("_ "):
            raise ValueError(f"Line {number}: write 'wildcard: value=weight, value=weight', "
                             "e.g. 'hair: silver=3, red=0'.")
        lines = weights.setdefault(name.strip("_ "), {})
        for pair in (p.strip() for p in rest.split(",")):
            if not pair:
                continue
            value, _eq, weight = pair.rpartition("=")
            try:
                lines[value.strip()] = float(weight) if value.strip() else float("nan")
            except ValueError:
                lines[value.strip()] = float("nan")
            if lines[value.strip()] != lines[value.strip()]:  # NaN: not a number
                raise ValueError(f"Line {number}: '{pair}' needs a value and a weight, like silver=3.")
    return weights


_TEXT_FIELDS = ("name", "description", "character", "setting", "style", "backstory", "negative_prompt")


def profile_form(profile: Profile | None = None) -> dict[str, str]:
    """The editor's text fields for *profile* (empty ones for a new profile)."""
    if profile is None:
        return {key: "" for key in (*_TEXT_FIELDS, "tags", "loras", "wildcard_weights")}
    form = {key: str(getattr(profile, key)) for key in _TEXT_FIELDS}
    form["tags"] = ", ".join(profile.tags)
    form["loras"] = format_loras(profile.loras)
    form["wildcard_weights"] = format_weights(profile.wildcard_weights)
    return form


def profile_from_form(form: Mapping[str, str]) -> Profile:
    """A validated Profile from the editor's text fields; ValueError says what to fix."""
    data: dict[str, Any] = {key: form.get(key, "") for key in _TEXT_FIELDS}
    data["tags"] = [t.strip() for t in form.get("tags", "").split(",") if t.strip()]
    data["loras"] = parse_loras(form.get("loras", ""))
    data["wildcard_weights"] = parse_weights(form.get("wildcard_weights", ""))
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ValueError(" ".join(str(p) for p in plain_problems(exc, Profile))) from None


def _profile_v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    # v0 (the prototype): "title", one "lora" written "name:weight", "weights" for wildcards.
    if "title" in data:
        data.setdefault("name", data.pop("title"))
    if "weights" in data:
        data.setdefault("wildcard_weights", data.pop("weights"))
    lora = data.pop("lora", None)
    if isinstance(lora, str) and lora.strip():
        name, _, weight = lora.strip().rpartition(":")
        if not name:
            name, weight = weight, "1"
        data.setdefault("loras", [{"name": name, "weight": float(weight)}])
    return data


#: Upgrades older profile documents to the current format.
migrate_profile = Migrations("profile format", PROFILE_VERSION, ((0, 1, _profile_v0_to_v1),))


def parse_profile(text: str, path: str | os.PathLike[str] | None = None) -> Profile:
    return parse_yaml_model(text, Profile, path=path, migrate=migrate_profile)


class ProfileStore(LibraryFolder[Profile]):
    """The user's profiles folder (stored and managed like presets)."""

    kind = "profile"

    def __init__(self, user_dir: Path | None = None) -> None:
        super().__init__(user_dir if user_dir is not None else AppPaths.default().profiles_dir)

    def parse(self, text: str, path: Path | None) -> tuple[Profile, list[DocumentWarning]]:
        return parse_profile(text, path), []

    def dump(self, item: Profile) -> str:
        return item.to_yaml()


__all__ = [
    "LoraChoice",
    "PROFILE_VERSION",
    "Profile",
    "ProfileStore",
    "RandomizerBias",
    "format_loras",
    "format_weights",
    "migrate_profile",
    "parse_loras",
    "profile_form",
    "profile_from_form",
    "parse_weights",
    "parse_profile",
]
