"""ImageRecord: everything known about one saved output image (the learning hook's payload)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stablenew.pipeline.config import PipelineConfig


@dataclass(frozen=True)
class RunTags:
    """Where a run came from, carried into every record and PNG (pack, variant, learning run)."""

    pack: str | None = None
    preset: str | None = None
    variant_id: str | None = None
    variant_label: str | None = None
    learning_run_id: str | None = None
    job_id: str | None = None  # queue job / work item that produced it
    #: When a prompt step changed the prompt before sending (local-LLM enhance, LoRA matching):
    #: the prompt as the user wrote it and the enhance template; the config holds what was sent.
    original_prompt: str | None = None
    enhance_template: str | None = None
    #: LoRAs the LoRA-matching step added from the catalog ("name:weight", in prompt order);
    #: None when it added none (the user's own LoRAs are never listed here).
    auto_loras: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ImageRecord:
    """One finished output image: the config it ran with (seed resolved), where it went."""

    run_id: str
    image_index: int  # 0-based within the run
    config: PipelineConfig  # as run: seed resolved, prompt fully expanded
    seed: int
    stages: tuple[str, ...]  # stage chain actually applied, e.g. ("txt2img", "upscale")
    node: str  # node name (or URL)
    node_kind: str
    path: Path
    thumbnail: Path | None = None
    tags: RunTags = field(default_factory=RunTags)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    warnings: tuple[str, ...] = ()
    created_at: float = 0.0  # unix time
    #: The input image a re-run started from (None when the run began with txt2img, or the
    #: input was given as bytes).
    source: Path | None = None

    @property
    def prompt(self) -> str:
        return self.config.txt2img.prompt

    @property
    def negative_prompt(self) -> str:
        return self.config.txt2img.negative_prompt
