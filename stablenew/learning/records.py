"""LearningRecord: one output image as the learning system keeps it (config, rating, tags)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit, urlunsplit

from stablenew.learning.errors import LearningError
from stablenew.learning.parameters import parameter_values
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.records import ImageRecord

MAX_TAG_LENGTH = 60
MAX_NOTE_LENGTH = 4000


def config_hash(config: PipelineConfig) -> str:
    """A hash of the whole config that is the same on every machine and Python run."""
    data = config.model_dump(mode="json")
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def safe_node_name(node: str) -> str:
    """A node name or URL with any user name, password or query (tokens) removed."""
    if "://" not in node:
        return node.split("@")[-1] if "@" in node else node
    try:
        parts = urlsplit(node)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "(node address hidden)"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def clean_tag(tag: str) -> str:
    """Tags are compared in lower case with single spaces: "Too  Noisy" is "too noisy"."""
    text = " ".join(str(tag).split()).casefold()
    if not text:
        raise LearningError("A tag cannot be empty.")
    if len(text) > MAX_TAG_LENGTH:
        raise LearningError(f"A tag can be at most {MAX_TAG_LENGTH} characters long.")
    return text


def check_rating(stars: int | None) -> int | None:
    if stars is None or stars == 0:
        return None
    if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
        raise LearningError(f"A rating is 1 to 5 stars (or none); {stars!r} is not.",
                            detail=f"rating={stars!r}")
    return stars


@dataclass(frozen=True)
class LearningRecord:
    """One saved image with everything needed to learn from it and to reproduce it."""

    record_key: str  # "<run_id>:<image_index>", unique; writing the same image twice updates it
    run_id: str
    image_index: int
    config: PipelineConfig
    config_hash: str
    seed: int
    stages: tuple[str, ...]
    node: str
    node_kind: str
    path: str
    pack: str | None = None
    preset: str | None = None
    thumbnail: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    rating: int | None = None
    tags: tuple[str, ...] = ()
    note: str = ""
    learning_run_id: str | None = None
    variant_id: str | None = None
    variant_label: str | None = None
    job_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    id: int | None = None  # database row id once stored
    #: The prompt steps before sending (local-LLM enhance, LoRA matching): the prompt as the
    #: user wrote it (None: sent as written), the enhance template, and the LoRAs the matching
    #: step added ("name:weight"); `config` holds what was sent.
    original_prompt: str | None = None
    enhance_template: str | None = None
    auto_loras: tuple[str, ...] = ()

    @property
    def prompt(self) -> str:
        return self.config.txt2img.prompt

    @property
    def negative_prompt(self) -> str:
        return self.config.txt2img.negative_prompt

    @classmethod
    def from_image_record(cls, image: ImageRecord, *, now: float | None = None) -> LearningRecord:
        stamp = time.time() if now is None else now
        tags = image.tags
        return cls(
            record_key=f"{image.run_id}:{image.image_index}",
            run_id=image.run_id,
            image_index=image.image_index,
            config=image.config,
            config_hash=config_hash(image.config),
            seed=image.seed,
            stages=tuple(image.stages),
            node=safe_node_name(image.node),
            node_kind=image.node_kind,
            path=str(image.path),
            pack=tags.pack,
            preset=tags.preset,
            thumbnail=str(image.thumbnail) if image.thumbnail else None,
            timings=dict(image.timings),
            warnings=tuple(image.warnings),
            learning_run_id=tags.learning_run_id,
            variant_id=tags.variant_id,
            variant_label=tags.variant_label,
            job_id=tags.job_id,
            created_at=image.created_at or stamp,
            updated_at=stamp,
            original_prompt=tags.original_prompt,
            enhance_template=tags.enhance_template,
            auto_loras=tuple(tags.auto_loras or ()),
        )

    def parameter_values(self) -> dict[str, str]:
        """Canonical text of every known parameter this image ran with (see parameters.py)."""
        return parameter_values(self.config, enhance_template=self.enhance_template)

    def with_rating(self, stars: int | None) -> LearningRecord:
        return replace(self, rating=check_rating(stars))

    def to_json(self) -> dict:
        """A plain JSON-ready dict (the export format; README in export.py describes it)."""
        return {
            "id": self.id,
            "record_key": self.record_key,
            "run_id": self.run_id,
            "image_index": self.image_index,
            "pack": self.pack,
            "preset": self.preset,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "stages": list(self.stages),
            "node": safe_node_name(self.node),
            "node_kind": self.node_kind,
            "path": self.path,
            "rating": self.rating,
            "tags": list(self.tags),
            "note": self.note,
            "learning_run_id": self.learning_run_id,
            "variant_id": self.variant_id,
            "variant_label": self.variant_label,
            "job_id": self.job_id,
            "original_prompt": self.original_prompt,
            "enhance_template": self.enhance_template,
            "auto_loras": list(self.auto_loras),
            "timings": self.timings,
            "warnings": list(self.warnings),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "config_hash": self.config_hash,
            "parameters": self.parameter_values(),
            "config": self.config.model_dump(mode="json"),
        }
