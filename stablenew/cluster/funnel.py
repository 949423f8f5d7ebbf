"""The draft funnel: from one prompt, many quick drafts → the user picks some → each pick refined
→ the user picks again → polished → one final upscale. Every stage is a queue job asking for the
node tier that suits it (drafts on draft nodes, refining and polishing on quality nodes, the final
upscale on the premium node), so a funnel survives a restart like any other queued work.

Each stage starts from the very picture the user picked in the stage before (a copy kept in the
data folder, so moving the original loses nothing), with that picture's seed and the cards'
prompt: image to image back up to the cards' size with full steps (refine), a gentle image to
image pass with the cards' ADetailer (polish), then the upscaler alone (final) — nothing is
rendered again from the seed.

Plain data and rules only: the FunnelController runs a funnel, `funnel_store` keeps it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stablenew.cluster.jobs import per_image_configs
from stablenew.cluster.tiers import NodeTier
from stablenew.pipeline.config import PipelineConfig, hires_size


class FunnelError(ValueError):
    """A funnel step that cannot be taken, said plainly (what to do instead)."""


class FunnelStage(StrEnum):
    """The stages of a funnel, in order."""

    drafts = "drafts"
    refine = "refine"
    polish = "polish"
    final = "final"

    @property
    def label(self) -> str:
        """The stage's name in the breadcrumb."""
        return {"drafts": "Drafts", "refine": "Refined", "polish": "Polished",
                "final": "Final"}[self.value]

    @property
    def verb(self) -> str:
        """What the button that makes this stage says."""
        return {"drafts": "Make drafts", "refine": "Refine", "polish": "Polish",
                "final": "Upscale"}[self.value]

    @property
    def tier(self) -> NodeTier:
        """The node tier this stage's job asks for."""
        return {"drafts": NodeTier.draft, "refine": NodeTier.quality,
                "polish": NodeTier.quality, "final": NodeTier.premium}[self.value]

    @property
    def next(self) -> FunnelStage | None:
        stages = list(FunnelStage)
        at = stages.index(self)
        return stages[at + 1] if at + 1 < len(stages) else None


class _Plain(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DraftPreset(_Plain):
    """How the quick drafts differ from the cards: fewer steps, smaller, no extra passes."""

    steps: int = Field(12, ge=1, le=150, title="Draft steps",
                       description="Steps of each draft: fewer is quicker and rougher.")
    size: float = Field(0.5, ge=0.25, le=1.0, title="Draft size",
                        description="The drafts' width and height as a share of the cards' "
                                    "(0.5: half as wide and high). Refining brings it back up.")


class QualityPreset(_Plain):
    """How a picked draft is refined: redrawn (image to image) with full steps at the cards'
    size."""

    steps: int = Field(0, ge=0, le=150, title="Refine steps",
                       description="Steps of the refined image (0: the cards' steps).")
    # The names are those of the first funnel files (a hires pass then); kept so they load.
    hires_denoise: float = Field(0.45, ge=0.0, le=1.0, title="Refine denoise",
                                 description="How much refining may change the draft — "
                                             "lower keeps more of it.")
    hires_upscaler: str = Field("Latent", title="Refine upscaler",
                                description="How the draft is enlarged before it is redrawn: "
                                            "Latent (in the model's latent space) or a plain "
                                            "resize (any other value).")


class PolishPreset(_Plain):
    """How a refined image is polished: a gentle image-to-image pass (and the cards' ADetailer)."""

    denoise: float = Field(0.3, ge=0.0, le=1.0, title="Polish denoise",
                           description="How much the polishing pass may change — lower keeps "
                                       "more of the refined image.")
    steps: int = Field(0, ge=0, le=150, title="Polish steps",
                       description="Steps of the polishing pass (0: the cards' image-to-image "
                                   "steps).")


class FinalPreset(_Plain):
    """The final upscale of the one image the user keeps."""

    upscaler: str = Field("", title="Final upscaler",
                          description="Empty: the upscaler on the cards.")
    scale: float = Field(2.0, ge=1.0, le=4.0, title="Final upscale factor")


class FunnelCounts(_Plain):
    """How many images each stage makes (the last is how many finals)."""

    drafts: int = Field(20, ge=1, le=100, title="Drafts to make",
                        description="How many quick drafts a new funnel makes.")
    refine: int = Field(8, ge=1, le=50, title="Drafts to refine",
                        description="How many drafts you may pick to refine.")
    polish: int = Field(3, ge=1, le=20, title="Images to polish",
                        description="How many refined images you may pick to polish.")
    final: int = Field(1, ge=1, le=10, title="Final images",
                       description="How many polished images you may pick to upscale.")

    def of(self, stage: FunnelStage) -> int:
        return int(getattr(self, stage.value))


class FunnelSettings(_Plain):
    """The stage counts and presets a new funnel starts with (the user may change them)."""

    counts: FunnelCounts = Field(default_factory=FunnelCounts)
    draft: DraftPreset = Field(default_factory=DraftPreset)
    quality: QualityPreset = Field(default_factory=QualityPreset)
    polish: PolishPreset = Field(default_factory=PolishPreset)
    final: FinalPreset = Field(default_factory=FinalPreset)


class StageRun(_Plain):
    """One stage made: its queue job, the seed of each image, the picture each starts from
    (after the drafts), the images saved so far and the user's picks (indexes into `seeds`)."""

    stage: FunnelStage
    job_id: str
    seeds: list[int]
    sources: list[str] = Field(default_factory=list)
    images: list[str | None] = Field(default_factory=list)
    picks: list[int] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _image_places(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("images"):
            return {**data, "images": [None] * len(data.get("seeds") or ())}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> StageRun:
        if len(self.images) != len(self.seeds):
            raise ValueError("a stage needs one image place per seed")
        if self.sources and len(self.sources) != len(self.seeds):
            raise ValueError("a stage needs one picture to start from per seed")
        if any(not 0 <= p < len(self.seeds) for p in self.picks):
            raise ValueError("a pick points past the stage's images")
        return self

    @property
    def ready(self) -> int:
        return sum(path is not None for path in self.images)


class Funnel(_Plain):
    """One funnel: the cards' config it started from, its settings, the stages made so far and
    the stage the user looks at (the breadcrumb's current one)."""

    id: str
    name: str
    created_at: float
    base: PipelineConfig
    settings: FunnelSettings
    runs: list[StageRun]
    viewing: int = 0

    @model_validator(mode="after")
    def _in_order(self) -> Funnel:
        if [r.stage for r in self.runs] != list(FunnelStage)[:len(self.runs)]:
            raise ValueError("the stages of a funnel must come in order")
        if self.runs and not 0 <= self.viewing < len(self.runs):
            raise ValueError("the stage looked at is not one of the funnel's")
        return self

    @property
    def current(self) -> StageRun:
        return self.runs[self.viewing]

    def pick(self, index: int, picks: Sequence[int]) -> Funnel:
        """The user's picks of stage *index* (replacing the earlier ones)."""
        run = self.runs[index]
        chosen = sorted(set(picks))
        run = run.model_copy(update={"picks": chosen})
        return self._with(runs=[*self.runs[:index], run, *self.runs[index + 1:]])

    def view(self, index: int) -> Funnel:
        """Go to stage *index* of the breadcrumb (its picks kept, the later stages too)."""
        if not 0 <= index < len(self.runs):
            raise FunnelError("That stage has not been made yet.")
        return self._with(viewing=index)

    def advanced(self, run: StageRun) -> Funnel:
        """*run* made from the stage looked at: the stages after it are replaced."""
        return self._with(runs=[*self.runs[:self.viewing + 1], run], viewing=self.viewing + 1)

    def with_images(self, index: int, images: Sequence[str | None]) -> Funnel:
        run = self.runs[index].model_copy(update={"images": list(images)})
        return self._with(runs=[*self.runs[:index], run, *self.runs[index + 1:]])

    def _with(self, **changes: object) -> Funnel:
        return Funnel.model_validate({**self.model_dump(), **changes})


@dataclass(frozen=True)
class FunnelStep:
    """A stage to queue: its job's id, name and tier, one config per image and the picture
    each starts from (none for the drafts)."""

    stage: FunnelStage
    job_id: str
    name: str
    configs: tuple[PipelineConfig, ...]
    sources: tuple[str, ...] = ()

    @property
    def tier(self) -> NodeTier:
        return self.stage.tier

    @property
    def seeds(self) -> list[int]:
        return [c.txt2img.seed for c in self.configs]

    def run(self) -> StageRun:
        return StageRun(stage=self.stage, job_id=self.job_id, seeds=self.seeds,
                        sources=list(self.sources))


# --- the rules --------------------------------------------------------------------------------


def draft_size(width: int, height: int, share: float) -> tuple[int, int]:
    """The drafts' size: *share* of the cards' width and height, on the 8-pixel grid, ≥ 64."""
    def one(side: int) -> int:
        return max(64, int(side * share) // 8 * 8)
    return one(width), one(height)


def _target_size(base: PipelineConfig) -> tuple[int, int]:
    """The size the cards' first pass ends at (after their hires pass, if on)."""
    t = base.txt2img
    return hires_size(t.width, t.height, t.hires) if t.hires.enabled else (t.width, t.height)


def stage_config(base: PipelineConfig, stage: FunnelStage, seed: int,
                 settings: FunnelSettings, source: str = "") -> PipelineConfig:
    """The config of one image of *stage*: the cards' *base* with that stage's preset and
    *seed*. The drafts are drawn from the prompt; every later stage starts from *source*, the
    picture picked in the stage before (FunnelError when it has none)."""
    t = base.txt2img
    single = {"txt2img.seed": seed, "txt2img.batch_count": 1, "txt2img.batch_size": 1,
              "adetailer.enabled": False, "upscale.enabled": False}
    if stage is FunnelStage.drafts:
        width, height = draft_size(t.width, t.height, settings.draft.size)
        return base.with_changes({
            **single, "txt2img.width": width, "txt2img.height": height,
            "txt2img.steps": settings.draft.steps, "txt2img.hires.enabled": False,
            "txt2img.refiner.enabled": False, "img2img.enabled": False})
    if not source:
        raise FunnelError(f"The {stage.label.lower()} images need the picked images of the "
                          "stage before: start the funnel again.")
    changes: dict[str, object] = {
        **single, "txt2img.enabled": False, "txt2img.hires.enabled": False,
        "img2img.init_image": source, "img2img.prompt_override": "",
        "img2img.negative_override": ""}
    if stage is FunnelStage.refine:
        quality = settings.quality
        width, height = _target_size(base)
        latent = quality.hires_upscaler.casefold().startswith("latent")
        changes.update({
            "img2img.enabled": True, "img2img.width": width, "img2img.height": height,
            "img2img.steps": quality.steps or t.steps, "img2img.denoise": quality.hires_denoise,
            "img2img.sampler": t.sampler, "img2img.scheduler": t.scheduler,
            "img2img.cfg_scale": t.cfg_scale,
            "img2img.resize_mode": "latent_upscale" if latent else "just_resize"})
    elif stage is FunnelStage.polish:
        polish = settings.polish
        changes.update({
            "img2img.enabled": True, "img2img.width": 0, "img2img.height": 0,
            "img2img.denoise": polish.denoise, "img2img.steps": polish.steps or base.img2img.steps,
            "img2img.resize_mode": "just_resize", "adetailer.enabled": base.adetailer.enabled})
    else:
        final = settings.final
        changes.update({
            "img2img.enabled": False, "upscale.enabled": True, "upscale.scale": final.scale,
            "upscale.target_width": 0, "upscale.target_height": 0,
            "upscale.upscaler": final.upscaler or base.upscale.upscaler})
    try:
        return base.with_changes(changes)
    except ValueError as exc:
        raise FunnelError(f"The {stage.label.lower()} images cannot be made with these "
                          f"settings: {_first_problem(exc)}") from exc


def _first_problem(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            return str(found[0].get("msg", exc)).removeprefix("Value error, ")
    return str(exc)


def _short(prompt: str) -> str:
    prompt = " ".join(prompt.split())
    return prompt if len(prompt) <= 40 else prompt[:39].rstrip() + "…"


def start(base: PipelineConfig, settings: FunnelSettings) -> tuple[Funnel, FunnelStep]:
    """A new funnel from the cards' *base*: its drafts to queue, seeds fixed now (the cards'
    seed counting up, or a random one each when it is -1)."""
    count = settings.counts.drafts
    first = stage_config(base, FunnelStage.drafts, max(base.txt2img.seed, 0), settings)
    seeded = first.with_changes({"txt2img.seed": base.txt2img.seed})
    configs = tuple(per_image_configs(seeded, count=count))
    name = _short(base.txt2img.prompt) or "Untitled"
    step = FunnelStep(FunnelStage.drafts, _new_id(), f"Funnel drafts: {name}", configs)
    funnel = Funnel(id=_new_id(), name=name, created_at=time.time(), base=base,
                    settings=settings, runs=[step.run()])
    return funnel, step


def picked_images(funnel: Funnel) -> list[str]:
    """The pictures the next stage starts from: the picks of the stage looked at, in order;
    FunnelError says what is missing."""
    run = funnel.current
    stage = run.stage.next
    if stage is None:
        raise FunnelError("This is the final image: there is no stage after it.")
    most = funnel.settings.counts.of(stage)
    picked = len(run.picks)
    if picked == 0:
        raise FunnelError(f"Pick at least one image to {stage.verb.lower()} (up to {most}).")
    if picked > most:
        raise FunnelError(f"Pick at most {most} to {stage.verb.lower()} — {picked} are picked.")
    images = [run.images[p] for p in run.picks]
    made = [path for path in images if path is not None]
    if len(made) < len(images):
        raise FunnelError("A picked image is not made yet: wait for it, or pick another.")
    return made


def next_step(funnel: Funnel, sources: Sequence[str]) -> FunnelStep:
    """The next stage from the picks of the stage looked at, each starting from its picture
    in *sources* (the kept copies of `picked_images`, in the same order)."""
    run = funnel.current
    picked_images(funnel)  # the same checks
    stage = run.stage.next
    assert stage is not None
    if len(sources) != len(run.picks):
        raise FunnelError("Each picked image needs its picture to start from.")
    configs = tuple(stage_config(funnel.base, stage, run.seeds[p], funnel.settings, source)
                    for p, source in zip(run.picks, sources, strict=True))
    return FunnelStep(stage, _new_id(), f"Funnel {stage.label.lower()}: {funnel.name}", configs,
                      tuple(sources))


def _new_id() -> str:
    return uuid.uuid4().hex[:8]
