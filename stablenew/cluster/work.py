"""What a piece of work needs from a node: models, VRAM, and how much computing it is.

VRAM needs come from an estimate table per model family, precision and size, refined per node by
experience (an out-of-memory failure raises that node's estimate; a success at a size proves
the node can take it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from stablenew.backends.families import SDXL_BASED, ModelFamily, detect_family, profile
from stablenew.backends.lora_tags import lora_names
from stablenew.cluster.tiers import NodeTier
from stablenew.pipeline.config import PipelineConfig, hires_size

GB = 1024**3


#: Families that share another's VRAM needs and experience (SDXL fine-tunes count as SDXL).
_VRAM_CLASS = {family: ModelFamily.sdxl for family in SDXL_BASED}

@lru_cache(maxsize=4096)
def guess_family(checkpoint: str, choice: str = "") -> ModelFamily:
    """The family that decides VRAM and eligibility: the user's choice, else the checkpoint's
    name (the only clue servers give before loading it); Pony and Illustrious count as SDXL."""
    family = detect_family(checkpoint, choice=choice)
    return _VRAM_CLASS.get(family, family)


@lru_cache(maxsize=4096)
def model_key(name: str) -> str:
    """Compare model names the way servers spell them: no folder, no extension, no [hash]."""
    stem = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = re.sub(r"\s*\[[0-9a-f]+\]$", "", stem)
    stem = re.sub(r"\.(safetensors|ckpt|pt|pth|gguf|bin)$", "", stem, flags=re.I)
    return stem.strip().casefold()


@dataclass(frozen=True)
class WorkRequirements:
    """What one work item needs from a node, and how heavy it is (in work units)."""

    checkpoint: str = ""  # "" = whatever the node has loaded
    family: ModelFamily = ModelFamily.sd15
    #: The family was chosen (by the user, or the caller), not guessed from the checkpoint's
    #: name; with no checkpoint and no choice, each node's loaded model decides it.
    family_chosen: bool = False
    upscalers: frozenset[str] = frozenset()
    adetailer_models: frozenset[str] = frozenset()
    node_classes: frozenset[str] = frozenset()  # ComfyUI custom nodes the work needs
    #: LoRAs its prompts name (`<lora:name:weight>`): a node that lists LoRAs must have them.
    loras: frozenset[str] = frozenset()
    #: Reference images as (kind, model or ""): a node that lists its ControlNet models must
    #: have one fitting each.
    references: frozenset[tuple[str, str]] = frozenset()
    vram_gb: float = 0.0
    #: Steps × megapixels over every diffusion pass, plus upscale cost: proportional to time.
    work_units: float = 1.0
    megapixels: float = 0.26
    #: The node tier its job asks for (None: ordinary work); a preference, never a must.
    tier: NodeTier | None = None

    @property
    def size_class(self) -> str:
        """Resolution class used to learn a node's speed separately for small and large work."""
        if self.megapixels <= 0.4:
            return "small"
        if self.megapixels <= 1.2:
            return "medium"
        return "large"


def vram_needed(family: ModelFamily, megapixels: float, model: str = "") -> float:
    """GB of VRAM a pass of *megapixels* needs; the model's name may say its precision (a Flux
    fp8, nf4 or GGUF file needs far less than the full one)."""
    return profile(_VRAM_CLASS.get(family, family)).vram_need(model).at(megapixels)


def requirements_for(config: PipelineConfig, *, family: ModelFamily | None = None) -> WorkRequirements:
    """Requirements of running *config* once (one image, every enabled stage)."""
    t = config.txt2img
    fam = family or guess_family(t.checkpoint, "" if t.family == "auto" else t.family.value)
    width, height = t.width, t.height
    mp = width * height / 1e6
    units = 0.0
    largest = 0.0
    upscalers: set[str] = set()
    if t.enabled:
        units += t.steps * mp
        largest = mp
        if t.hires.enabled:
            hw, hh = hires_size(width, height, t.hires)
            hmp = hw * hh / 1e6
            units += (t.hires.steps or t.steps) * hmp * max(t.hires.denoise, 0.2)
            largest = max(largest, hmp)
            width, height = hw, hh
            if not t.hires.upscaler.lower().startswith("latent"):
                upscalers.add(t.hires.upscaler)
    out_mp = width * height / 1e6
    if config.img2img.enabled:
        units += config.img2img.steps * out_mp * max(config.img2img.denoise, 0.2)
        largest = max(largest, out_mp)
    ad_models: set[str] = set()
    if config.adetailer.enabled:
        # A pass switched off needs no detector on the node and costs nothing.
        for _, p in config.adetailer.active_passes():
            ad_models.add(p.model)
            # Each detection is an inpaint of about a 512x512 crop.
            units += t.steps * 0.26 * max(p.denoise, 0.2)
    if config.upscale.enabled:
        upscalers.add(config.upscale.upscaler)
        fw, fh = config.final_size(t.width, t.height)
        units += 2.0 * fw * fh / 1e6  # model upscalers cost roughly per output megapixel
    prompts = [t.prompt, t.negative_prompt]
    if config.img2img.enabled:
        prompts += [config.img2img.prompt_override, config.img2img.negative_override]
    refs = list(t.references) if t.enabled else []
    refs += list(config.img2img.references) if config.img2img.enabled else []
    return WorkRequirements(
        checkpoint=t.checkpoint,
        family_chosen=family is not None or t.family != "auto",
        references=frozenset((r.kind.value, r.model) for r in refs),
        loras=frozenset(name for text in prompts if text for name in lora_names(text)),
        family=fam,
        upscalers=frozenset(u for u in upscalers if u and u != "None"),
        adetailer_models=frozenset(ad_models),
        vram_gb=vram_needed(fam, largest or out_mp, t.checkpoint),
        work_units=max(units, 0.01),
        megapixels=largest or out_mp,
    )


@dataclass
class VramExperience:
    """Per node and family: the largest need that ran and the smallest that ran out of memory."""

    ran: dict[ModelFamily, float] = field(default_factory=dict)
    failed: dict[ModelFamily, float] = field(default_factory=dict)

    def record_success(self, family: ModelFamily, need_gb: float) -> None:
        self.ran[family] = max(self.ran.get(family, 0.0), need_gb)

    def record_oom(self, family: ModelFamily, need_gb: float) -> None:
        self.failed[family] = min(self.failed.get(family, float("inf")), need_gb)

    def fits(self, family: ModelFamily, need_gb: float, vram_total_gb: float | None) -> bool:
        if need_gb <= self.ran.get(family, 0.0):
            return True  # proven by experience
        if need_gb >= self.failed.get(family, float("inf")):
            return False  # ran out of memory at this size before
        if vram_total_gb is None:
            return True  # unknown card: let it try; an OOM teaches us
        return need_gb <= vram_total_gb * 0.95
