"""Writing infotext: A1111's format for our images, each stage described from what its server
said it ran, and our own JSON chunk beside it.

The writer follows `create_infotext` in A1111's `modules/processing.py`, so A1111's PNG Info,
Civitai and image browsers read our files.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from stablenew import __version__
from stablenew.backends.types import RanWith
from stablenew.pipeline.config import PipelineConfig, StageName, hires_size
from stablenew.pipeline.infotext import (
    ORDINALS,
    PARAMETERS_KEY,
    RE_PARAM,
    STABLENEW_KEY,
    model_name,
    parse_infotext,
    quote,
    server_infotext_matches,
    unquote,
)
from stablenew.pipeline.infotext_models import family_params, reference_params
from stablenew.pipeline.records import RunTags

STABLENEW_FORMAT = 1


def format_infotext(prompt: str, negative_prompt: str, params: dict[str, Any]) -> str:
    """A1111's layout: prompt, optional negative line, then the `key: value, ...` line."""
    line = ", ".join(
        k if k == v else f"{k}: {quote(_fmt(v))}" for k, v in params.items() if v is not None
    )
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}".strip()


def _fmt(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e15 else repr(value)
    return value


def build_infotext(config: PipelineConfig, seed: int, stages: Sequence[str], *,
                   size: tuple[int, int] | None = None, ran: RanWith | None = None,
                   lora_hashes: str = "") -> str:
    """The infotext A1111 would write for this chain: the base generation's values first,
    then hires, refiner, ADetailer and upscale keys, as A1111 and its extensions name them.

    *size* is the size of the first diffusion pass (txt2img) or the input (for re-runs);
    *ran* is what the server reported for the first diffusion stage, which wins over the
    config (a ComfyUI node given no checkpoint names the one it loaded).
    """
    t = config.txt2img
    chain = [StageName(s) for s in stages]
    params: dict[str, Any] = {}
    prompt, negative = t.prompt, t.negative_prompt
    model = {"Model hash": (ran.model_hash if ran else "") or None,
             "Model": model_name((ran.checkpoint if ran else "") or t.checkpoint)}
    sampler = (ran.sampler if ran else "") or None
    if StageName.txt2img in chain:
        width, height = t.width, t.height
        params.update({"Steps": t.steps, "Sampler": sampler or t.sampler,
                       "Schedule type": t.scheduler, "CFG scale": t.cfg_scale, "Seed": seed,
                       "Size": f"{width}x{height}", **model})
        h = t.hires
        if h.enabled:
            params["Denoising strength"] = h.denoise
        params["Clip skip"] = t.clip_skip if t.clip_skip > 1 else None
        if h.enabled:
            if h.resize_width == 0 and h.resize_height == 0:
                params["Hires upscale"] = h.scale
            else:
                rw, rh = hires_size(width, height, h)
                params["Hires resize"] = f"{rw}x{rh}"
            params["Hires steps"] = h.steps or None
            params["Hires upscaler"] = h.upscaler
        if t.refiner.enabled and t.refiner.checkpoint:
            params["Refiner"] = t.refiner.checkpoint
            params["Refiner switch at"] = t.refiner.switch_at
        if StageName.img2img in chain:
            i = config.img2img
            # Not an A1111 key: A1111 has no chained img2img; kept so the chain is visible.
            params["Img2img denoising strength"] = i.denoise
            params["Img2img steps"] = i.steps
    elif StageName.img2img in chain:
        i = config.img2img
        prompt = i.prompt_override or t.prompt
        negative = i.negative_override or t.negative_prompt
        width, height = size or (t.width, t.height)
        params.update({"Steps": i.steps, "Sampler": sampler or i.sampler,
                       "Schedule type": i.scheduler, "CFG scale": i.cfg_scale, "Seed": seed,
                       "Size": f"{width}x{height}", **model, "Denoising strength": i.denoise,
                       "Clip skip": t.clip_skip if t.clip_skip > 1 else None})
    else:
        # Only ADetailer/upscale on a given image: what matters is the sampling they used.
        width, height = size or (t.width, t.height)
        params.update({"Steps": t.steps, "Sampler": sampler or t.sampler,
                       "Schedule type": t.scheduler, "CFG scale": t.cfg_scale, "Seed": seed,
                       "Size": f"{width}x{height}", **model})
    # After hires and refiner, before extensions' keys: where A1111 writes it.
    params["Lora hashes"] = lora_hashes or None
    if chain and chain[0] in (StageName.txt2img, StageName.img2img):
        params.update(family_params(config))
        refs = config.txt2img.references if chain[0] is StageName.txt2img else config.img2img.references
        params.update(reference_params(refs))
    if StageName.adetailer in chain:
        params.update(_adetailer_params(config))
    if StageName.upscale in chain:
        params.update(_upscale_params(config))
    params["Version"] = f"StableNew {__version__}"
    return format_infotext(prompt, negative, params)


def _adetailer_params(config: PipelineConfig) -> dict[str, Any]:
    """Only the passes that ran, each under its own tab's suffix, as ADetailer writes them."""
    params: dict[str, Any] = {}
    for n, ad in config.adetailer.active_passes():
        sfx = ORDINALS[n] if n < len(ORDINALS) else f" {n + 1}th"
        params[f"ADetailer model{sfx}"] = ad.model
        params[f"ADetailer prompt{sfx}"] = ad.prompt or None
        params[f"ADetailer negative prompt{sfx}"] = ad.negative_prompt or None
        params[f"ADetailer confidence{sfx}"] = ad.confidence
        params[f"ADetailer mask blur{sfx}"] = ad.mask_blur
        params[f"ADetailer denoising strength{sfx}"] = ad.denoise
        params[f"ADetailer inpaint only masked{sfx}"] = ad.inpaint_only_masked
        params[f"ADetailer inpaint padding{sfx}"] = ad.inpaint_padding
    return params


def _upscale_params(config: PipelineConfig) -> dict[str, Any]:
    u = config.upscale
    params: dict[str, Any] = {}
    if u.target_width and u.target_height:
        params["Postprocess upscale to"] = f"{u.target_width}x{u.target_height}"
    else:
        params["Postprocess upscale by"] = u.scale
    params["Postprocess upscaler"] = u.upscaler
    if u.upscaler_2 != "None" and u.upscaler_2_visibility > 0:
        params["Postprocess upscaler 2"] = u.upscaler_2
        params["Postprocess upscaler 2 visibility"] = u.upscaler_2_visibility
    return params


@dataclass(frozen=True)
class StageReport:
    """What the server said about one stage of one image: its infotext, its `info`, and
    what it ran with."""

    infotext: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    ran: RanWith | None = None


_TAG = re.compile(r"<[^>]+>")
#: An img2img stage's own keys, under the names the chained image carries them.
_IMG2IMG_KEYS = {"Sampler": "Img2img sampler", "Schedule type": "Img2img schedule type",
                 "CFG scale": "Img2img CFG scale", "Model": "Img2img model"}


def stage_prompt(config: PipelineConfig, stage: StageName) -> str:
    """The prompt a stage sends (img2img may override the main one)."""
    if stage is StageName.img2img:
        return config.img2img.prompt_override or config.txt2img.prompt
    return config.txt2img.prompt


def describe_image(config: PipelineConfig, seed: int, stages: Sequence[str],
                   reports: dict[str, StageReport], *, size: tuple[int, int] | None = None,
                   lora_hashes: str = "") -> str:
    """The infotext of an image that went through *stages*, each stage told by its own
    server report, so an image says what ran, not what was asked.

    The first stage's own infotext is the base when the server wrote one for this image
    (A1111 and Forge: the sampler it fell back to, the model it used, Forge's hires CFG);
    each later stage adds its keys from its own report: img2img's sampling under
    "Img2img …", ADetailer's keys as ADetailer wrote them, the upscaler as the extras
    answer names it. A server that writes no infotext (ComfyUI) is described from the
    config and what it reported running (the checkpoint it loaded), with *lora_hashes* (the
    `Lora hashes` of the LoRAs it loaded) where A1111 puts them.
    """
    chain = [StageName(s) for s in stages]
    if not chain:
        return build_infotext(config, seed, stages, size=size)
    first = chain[0]
    base = reports.get(first.value) or StageReport()
    if first is StageName.upscale or not server_infotext_matches(
            base.infotext, stage_prompt(config, first), seed):
        return build_infotext(config, seed, stages, size=size, ran=first_ran(chain, reports),
                              lora_hashes=lora_hashes)
    text = base.infotext.strip()
    known = parse_infotext(text)
    extra: dict[str, Any] = {}
    for stage in chain[1:]:
        for key, value in _later_stage_params(config, stage, reports.get(stage.value),
                                              known).items():
            if key not in known and key not in extra:
                extra[key] = value
    line = ", ".join(k if k == v else f"{k}: {quote(_fmt(v))}" for k, v in extra.items()
                     if v is not None)
    return f"{text}, {line}" if line else text


def first_ran(chain: Sequence[StageName], reports: dict[str, StageReport]) -> RanWith | None:
    for stage in chain:
        report = reports.get(stage.value)
        if stage is not StageName.upscale and report is not None and report.ran is not None:
            return report.ran
    return None


def _later_stage_params(config: PipelineConfig, stage: StageName, report: StageReport | None,
                        base: dict[str, str]) -> dict[str, Any]:
    """Keys a later stage adds to the base infotext, from its report when it gave one."""
    told = parse_infotext(report.infotext) if report is not None and report.infotext else {}
    if stage is StageName.img2img:
        i = config.img2img
        if "Steps" not in told:
            return {"Img2img denoising strength": i.denoise, "Img2img steps": i.steps}
        params: dict[str, Any] = {"Img2img denoising strength": told.get("Denoising strength"),
                                  "Img2img steps": told.get("Steps")}
        # As A1111 writes "Hires sampler": only what differs from the first pass.
        for key, ours in _IMG2IMG_KEYS.items():
            if told.get(key) and told.get(key) != base.get(key):
                params[ours] = told[key]
        return params
    if stage is StageName.adetailer:
        found = {k: v for k, v in told.items() if k.startswith("ADetailer ")}
        return found or _adetailer_params(config)
    if stage is StageName.upscale:
        html = str((report.info if report is not None else {}).get("html_info") or "")
        # The extras answer's infotext comes wrapped in HTML; its pairs are A1111's.
        said = RE_PARAM.findall(html_lib.unescape(_TAG.sub(" ", html)))
        found = {k.strip(): unquote(v.strip()) for k, v in said
                 if k.strip().startswith("Postprocess ")}
        return found or _upscale_params(config)
    return {}


def stablenew_payload(*, config: PipelineConfig, seed: int, stages: Sequence[str], run_id: str,
                      image_index: int, tags: RunTags | None, node: str, node_kind: str,
                      timings: dict[str, float] | None = None, created_at: float = 0.0,
                      source: str | None = None) -> dict[str, Any]:
    """Our JSON chunk: everything needed to reproduce the image and rebuild its record."""
    payload = {
        "format": STABLENEW_FORMAT,
        "app": f"StableNew {__version__}",
        "run_id": run_id,
        "image_index": image_index,
        "seed": seed,
        "stages": list(stages),
        "config": config.model_dump(mode="json"),
        "tags": {k: v for k, v in asdict(tags or RunTags()).items() if v is not None},
        "node": node,
        "node_kind": node_kind,
        "timings": dict(timings or {}),
        "created_at": created_at,
    }
    if source is not None:
        payload["source"] = source  # the input image a re-run started from
    return payload


__all__ = [
    "PARAMETERS_KEY",
    "STABLENEW_FORMAT",
    "STABLENEW_KEY",
    "StageReport",
    "build_infotext",
    "describe_image",
    "first_ran",
    "format_infotext",
    "quote",
    "stablenew_payload",
    "stage_prompt",
]
