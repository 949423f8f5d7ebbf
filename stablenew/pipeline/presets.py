"""Presets: named, versioned YAML documents holding all or part of a PipelineConfig.

A preset sets only the fields it names and is laid over the current config when applied, so
"SDXL quality" can change size, steps and sampler while keeping the user's prompt. Shipped
presets (resources/presets/) are read-only; the user's live in the config folder. Every
change goes through `LibraryFolder` (library_folder.py): validated first, written atomically
under a folder lock, deletions go to a trash folder and can be undone, and a broken file
stays in the list with its file, line and field instead of vanishing.
"""

from __future__ import annotations

import copy
import difflib
import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from stablenew.pipeline.config import ConfigInvalid, PipelineConfig, migrate_config
from stablenew.pipeline.library_folder import (
    DisplayName,
    DocumentWarning,
    FolderLock,
    LibraryEntry,
    LibraryError,
    LibraryFolder,
    Source,
    TrashTicket,
    file_stem,
    line_at,
)
from stablenew.pipeline.styles import PromptStyle
from stablenew.storage.documents import dump_yaml, parse_yaml, parse_yaml_model, read_document_text
from stablenew.storage.migrations import Migrations
from stablenew.storage.paths import AppPaths
from stablenew.storage.resources import resource_path
from stablenew.storage.validation import Problem, plain_problems

PRESET_VERSION = 1

# Sampler names of A1111 1.10 and Forge (modules/sd_samplers_*.py). Servers differ and
# extensions add more, so an unknown name is a warning, never a refusal.
KNOWN_SAMPLERS: tuple[str, ...] = (
    "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
    "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart",
    "DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM",
    "Euler CFG++", "Euler a CFG++", "DPM++ 2M CFG++", "DPM++ 2S a CFG++", "DPM++ 2S a RF",
    "DPM++ 2M SDE RF", "Euler A2", "Euler Comfy", "Euler a Comfy", "DPM++ 2M Comfy",
)
# Scheduler labels of /sdapi/v1/schedulers (1.9.1+), plus Forge's additions.
KNOWN_SCHEDULERS: tuple[str, ...] = (
    "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform",
    "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM", "Beta", "Turbo",
    "Align Your Steps GITS", "Align Your Steps 11", "Align Your Steps 32",
)
_SAMPLER_FIELDS = (("txt2img", "sampler"), ("img2img", "sampler"))
_SCHEDULER_FIELDS = (("txt2img", "scheduler"), ("img2img", "scheduler"))

# --- the partial config a preset holds ------------------------------------------------------


@cache
def partial_model(model: type[BaseModel]) -> type[BaseModel]:
    """A copy of *model* where every field is optional (None: "not set by this preset").

    Titles, descriptions and limits are copied, so errors read exactly as for the full
    config ("Steps must be between 1 and 150") and name the precise field.
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name == "version":
            continue
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = partial_model(annotation)
        partial_info = copy.copy(info)
        partial_info.default = None
        partial_info.default_factory = None
        optional: Any = Optional[annotation]  # noqa: UP045 - a type built at run time, not an annotation
        partial_info.annotation = optional
        fields[name] = (optional, partial_info)
    return create_model(
        f"Partial{model.__name__}", __config__=ConfigDict(extra="forbid"), __doc__=model.__doc__,
        **fields)


if TYPE_CHECKING:
    # Built at run time from PipelineConfig; the checker knows it only as some pydantic model.
    PartialPipelineConfig = BaseModel
else:
    PartialPipelineConfig = partial_model(PipelineConfig)


def partial_of(config: PipelineConfig, *, include_prompts: bool = False,
               include_seed: bool = False) -> dict[str, Any]:
    """The nested dict a preset stores for *config*: every stage setting; prompts and seed
    only if asked (a preset is a look to reuse, not one image to repeat).

    Every value is kept (not only non-defaults) because a preset is laid over whatever the
    user has now: a value equal to the default must still reset a changed field. The safety
    limits are the user's, never a preset's.
    """
    data = config.model_dump(mode="json", exclude={"version", "limits"})
    if not include_prompts:
        data["txt2img"].pop("prompt", None)
        data["txt2img"].pop("negative_prompt", None)
    if not include_seed:
        data["txt2img"].pop("seed", None)
    return data


def _clean(data: Any) -> Any:
    if isinstance(data, dict):
        cleaned = {k: _clean(v) for k, v in data.items() if v is not None}
        return {k: v for k, v in cleaned.items() if v != {}}
    if isinstance(data, list):
        return [_clean(v) for v in data]
    return data


class Preset(BaseModel):
    """A named, versioned part of a PipelineConfig plus prompt styles, laid over the current one."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    version: int = PRESET_VERSION
    name: DisplayName = Field(..., title="Name", description="What the preset is called in the list.")
    description: str = Field("", max_length=4000, title="Description")
    tags: list[str] = Field(default_factory=list, title="Tags")
    styles: list[PromptStyle] = Field(default_factory=list, title="Styles",
                                      description="Prompt styles merged into the prompt when applied.")
    config: PartialPipelineConfig = Field(
        default_factory=PartialPipelineConfig, title="Settings",
        description="The settings this preset changes; everything else stays as it is.")

    @model_validator(mode="after")
    def _valid_over_defaults(self) -> Preset:
        # The cross-field limits (total upscale, output size) are checked on the defaults, so
        # a preset that can never run is refused when it is saved, not when it is used.
        try:
            PipelineConfig().layered(self.partial())
        except ValidationError as exc:
            problems = plain_problems(exc, PipelineConfig)
            raise ValueError("; ".join(str(p) for p in problems)) from None
        return self

    def partial(self) -> dict[str, Any]:
        """The settings this preset sets, as a nested dict (unset fields left out)."""
        return _clean(self.config.model_dump(mode="json", exclude_unset=True))

    def apply_to(self, config: PipelineConfig) -> PipelineConfig:
        """*config* with this preset's settings laid over it and its styles merged in.

        Raises ConfigInvalid (plain words) when the combination cannot run, e.g. the preset's
        upscale on top of the hires fix already set exceeds the upscale limit.
        """
        try:
            result = config.layered(self.partial())
        except ValidationError as exc:
            problems = plain_problems(exc, PipelineConfig)
            raise ConfigInvalid([Problem(p.field, f"With preset '{self.name}': {p.message}")
                                 for p in problems]) from None
        if self.styles:
            prompt, negative = result.txt2img.prompt, result.txt2img.negative_prompt
            for style in self.styles:
                prompt, negative = style.apply(prompt, negative)
            result = result.with_changes({"txt2img.prompt": prompt, "txt2img.negative_prompt": negative})
        return result

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude={"config"}, exclude_defaults=True)
        data = {"version": PRESET_VERSION, "name": self.name, **data}
        partial = self.partial()
        if partial:
            data["config"] = partial
        return dump_yaml(data)

    @classmethod
    def from_config(cls, name: str, config: PipelineConfig, *, description: str = "",
                    tags: list[str] | None = None, include_prompts: bool = False,
                    include_seed: bool = False) -> Preset:
        return cls(name=name, description=description, tags=list(tags or []),
                   config=partial_of(config, include_prompts=include_prompts, include_seed=include_seed))


def _preset_v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    # v0 (the prototype) used title/notes and kept the config, itself in config format
    # v0 (txt2img fields at the top level, "cfg"), under "settings".
    if "title" in data:
        data.setdefault("name", data.pop("title"))
    if "notes" in data:
        data.setdefault("description", data.pop("notes"))
    settings = data.pop("settings", None)
    if isinstance(settings, dict):
        config = migrate_config({**settings, "version": 0})
        config.pop("version", None)
        data["config"] = config
    return data


#: Upgrades older preset documents to the current format.
migrate_preset = Migrations("preset format", PRESET_VERSION, ((0, 1, _preset_v0_to_v1),))


# --- unknown sampler names --------------------------------------------------------------------

# Old names carry the scheduler ("DPM++ 2M Karras"); servers still accept and split them.
_SAMPLER_NAMES = frozenset(KNOWN_SAMPLERS) | {
    f"{s} {sch}" for s in KNOWN_SAMPLERS for sch in KNOWN_SCHEDULERS if sch != "Automatic"}


def name_warnings(partial: dict[str, Any], node: yaml.Node | None = None,
                  path: Path | None = None, prefix: tuple[str, ...] = ("config",)) -> list[DocumentWarning]:
    """Warnings for sampler and scheduler names no known server offers, with a suggestion."""
    found: list[DocumentWarning] = []
    checks = [(loc, _SAMPLER_NAMES, "sampler") for loc in _SAMPLER_FIELDS]
    checks += [(loc, frozenset(KNOWN_SCHEDULERS), "scheduler") for loc in _SCHEDULER_FIELDS]
    for loc, known, kind in checks:
        value = partial.get(loc[0], {}).get(loc[1]) if isinstance(partial.get(loc[0]), dict) else None
        if not isinstance(value, str) or value in known:
            continue
        close = difflib.get_close_matches(value, sorted(known), n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        message = (f"'{value}' is not a {kind} StableNew knows from A1111 or Forge.{hint} It will only "
                   f"work if your server has a {kind} by that exact name.")
        full = prefix + loc
        found.append(DocumentWarning(path, line_at(node, full), ".".join(full), message))
    return found

class PresetStore(LibraryFolder[Preset]):
    """The shipped presets (read-only) and the user's presets folder."""

    kind = "preset"

    def __init__(self, user_dir: Path | None = None, shipped_dir: Path | None = None) -> None:
        super().__init__(user_dir if user_dir is not None else AppPaths.default().presets_dir,
                         shipped_dir if shipped_dir is not None else shipped_presets_dir())

    def parse(self, text: str, path: Path | None) -> tuple[Preset, list[DocumentWarning]]:
        return parse_preset(text, path)

    def dump(self, item: Preset) -> str:
        return item.to_yaml()


def shipped_presets_dir() -> Path:
    return resource_path("presets")


def parse_preset(
    text: str, path: str | os.PathLike[str] | None = None
) -> tuple[Preset, list[DocumentWarning]]:
    """Validate preset YAML; raises DocumentError (file/line/field), returns name warnings."""
    preset = parse_yaml_model(text, Preset, path=path, migrate=migrate_preset)
    _data, node = parse_yaml(text, path)
    return preset, name_warnings(preset.partial(), node, Path(path) if path is not None else None)


def load_preset(path: str | os.PathLike[str]) -> tuple[Preset, list[DocumentWarning]]:
    return parse_preset(read_document_text(path), path)


__all__ = [
    "DisplayName",
    "DocumentWarning",
    "FolderLock",
    "KNOWN_SAMPLERS",
    "KNOWN_SCHEDULERS",
    "LibraryEntry",
    "LibraryError",
    "LibraryFolder",
    "PRESET_VERSION",
    "PartialPipelineConfig",
    "Preset",
    "PresetStore",
    "Source",
    "TrashTicket",
    "file_stem",
    "line_at",
    "load_preset",
    "migrate_preset",
    "name_warnings",
    "parse_preset",
    "partial_of",
]
