"""Enhance templates (one style each: cinematic, anime, photo, …) and the model families whose
prompts they write: shipped YAML in resources/prompting/templates, plus the user's own in the
config folder's prompting/templates (same name: the user's wins)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stablenew.storage.documents import DocumentError, load_yaml_model
from stablenew.storage.paths import AppPaths
from stablenew.storage.resources import resource_path

log = logging.getLogger("stablenew.prompting.templates")

TEMPLATE_VERSION = 1
DEFAULT_TEMPLATE = "general"


class ModelFamily(StrEnum):
    """The image model a prompt is for: it decides tags or sentences, and the token budget."""

    sd15 = "sd15"
    sdxl = "sdxl"
    pony = "pony"
    flux = "flux"
    sd3 = "sd3"

    @property
    def label(self) -> str:
        return {"sd15": "SD 1.5", "sdxl": "SDXL", "pony": "Pony / Illustrious (booru tags)",
                "flux": "Flux", "sd3": "SD 3"}[self.value]

    @property
    def sentences(self) -> bool:
        """T5-encoded models read natural sentences; CLIP-only ones read comma tags best."""
        return self in (ModelFamily.flux, ModelFamily.sd3)

    @property
    def token_budget(self) -> int:
        """CLIP reads 75 tokens per chunk (more chunks dilute); T5 reads a few hundred."""
        return 200 if self.sentences else 75


class EnhanceTemplate(BaseModel):
    """One style of enhancement, as the user may edit it in YAML."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(TEMPLATE_VERSION, title="Format version")
    label: str = Field(..., min_length=1, max_length=60, title="Name shown in lists")
    description: str = Field("", max_length=300, title="What it does")
    instructions: str = Field(..., min_length=1, max_length=4000,
                              title="What the LLM is asked to add, in your words")
    temperature: float = Field(0.7, ge=0.0, le=2.0, title="Creativity (0: predictable, 2: wild)")

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value > TEMPLATE_VERSION:
            raise ValueError(f"This template was written by a newer StableNew (format {value}); "
                             f"this one reads format {TEMPLATE_VERSION}.")
        return value


@dataclass(frozen=True)
class NamedTemplate:
    """A template with the name it is chosen by (its file name) and where it came from."""

    name: str
    template: EnhanceTemplate
    path: Path
    shipped: bool


def user_templates_dir(paths: AppPaths) -> Path:
    return paths.config_dir / "prompting" / "templates"


def shipped_templates_dir() -> Path:
    return resource_path("prompting", "templates")


def load_templates(user_dir: Path | None = None) -> tuple[dict[str, NamedTemplate], list[DocumentError]]:
    """Every template by name (shipped, then the user's over them) and the files that could not
    be read, each a DocumentError naming file, line and field; a bad file costs only itself."""
    found: dict[str, NamedTemplate] = {}
    problems: list[DocumentError] = []
    folders = [(shipped_templates_dir(), True)]
    if user_dir is not None:
        folders.append((user_dir, False))
    for folder, shipped in folders:
        if not folder.is_dir():
            continue
        for file in sorted(folder.glob("*.yaml")):
            try:
                template = load_yaml_model(file, EnhanceTemplate)
            except DocumentError as exc:
                log.warning("templates: %s", exc.describe())
                problems.append(exc)
                continue
            found[file.stem] = NamedTemplate(file.stem, template, file, shipped)
    return found, problems


def get_template(name: str, user_dir: Path | None = None) -> NamedTemplate:
    """The template called *name*; a KeyError naming the ones there are when it is unknown."""
    templates, _problems = load_templates(user_dir)
    if name not in templates:
        raise KeyError(f"There is no enhance template called '{name}'. There are: "
                       + ", ".join(sorted(templates)) + ".")
    return templates[name]
