"""From infotext to a PipelineConfig: laying an image's settings over the cards (drag and drop).

Our own JSON chunk wins when an image has one; otherwise A1111's keys are cast into their
config fields, and a value that does not fit is reported instead of loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stablenew.pipeline.config import MAX_ADETAILER_PASSES, PipelineConfig
from stablenew.pipeline.infotext import ORDINALS, ImageMetadataError, read_image_metadata

_SCHEDULER_SUFFIXES = ("Karras", "Exponential", "SGM Uniform", "Uniform", "Polyexponential")

# infotext key -> (dotted config field, cast)
_SIMPLE: dict[str, tuple[str, Any]] = {
    "Prompt": ("txt2img.prompt", str),
    "Negative prompt": ("txt2img.negative_prompt", str),
    "Steps": ("txt2img.steps", int),
    "Sampler": ("txt2img.sampler", str),
    "Schedule type": ("txt2img.scheduler", str),
    "CFG scale": ("txt2img.cfg_scale", float),
    "Seed": ("txt2img.seed", int),
    "Size-1": ("txt2img.width", int),
    "Size-2": ("txt2img.height", int),
    "Model": ("txt2img.checkpoint", str),
    "Clip skip": ("txt2img.clip_skip", int),
    "Batch size": ("txt2img.batch_size", int),
    "Hires upscale": ("txt2img.hires.scale", float),
    "Hires resize-1": ("txt2img.hires.resize_width", int),
    "Hires resize-2": ("txt2img.hires.resize_height", int),
    "Hires steps": ("txt2img.hires.steps", int),
    "Hires upscaler": ("txt2img.hires.upscaler", str),
    "Refiner": ("txt2img.refiner.checkpoint", str),
    "Refiner switch at": ("txt2img.refiner.switch_at", float),
    "Img2img denoising strength": ("img2img.denoise", float),
    "Img2img steps": ("img2img.steps", int),
    "Img2img sampler": ("img2img.sampler", str),
    "Img2img schedule type": ("img2img.scheduler", str),
    "Img2img CFG scale": ("img2img.cfg_scale", float),
    "Postprocess upscale by": ("upscale.scale", float),
    "Postprocess upscale to-1": ("upscale.target_width", int),
    "Postprocess upscale to-2": ("upscale.target_height", int),
    "Postprocess upscaler": ("upscale.upscaler", str),
    "Postprocess upscaler 2": ("upscale.upscaler_2", str),
    "Postprocess upscaler 2 visibility": ("upscale.upscaler_2_visibility", float),
}
def _infotext_bool(value: str) -> bool:
    if value in ("True", "False"):
        return value == "True"
    raise ValueError(value)


_ADETAILER: dict[str, tuple[str, Any]] = {
    "ADetailer model": ("model", str),
    "ADetailer prompt": ("prompt", str),
    "ADetailer negative prompt": ("negative_prompt", str),
    "ADetailer confidence": ("confidence", float),
    "ADetailer mask blur": ("mask_blur", int),
    "ADetailer denoising strength": ("denoise", float),
    "ADetailer inpaint only masked": ("inpaint_only_masked", _infotext_bool),
    "ADetailer inpaint padding": ("inpaint_padding", int),
}
# Keys we understand but that have no config field (informational only).
_IGNORED = {"Version", "Model hash", "VAE hash", "ADetailer version", "Seed resize from-1",
            "Seed resize from-2", "Template", "Negative Template", "Img2img model",
            "Incomplete", "Stopped before"}


def config_from_infotext(parsed: dict[str, str], *, base: PipelineConfig | None = None,
                         ) -> tuple[PipelineConfig, list[str], list[str]]:
    """Lay parsed A1111 values over *base*; returns (config, loaded fields, unknown keys).

    A value that does not fit its field (out of range, not a number) is left out and its key
    reported with the unknown ones, so a half-readable image still loads what it can.
    """
    config = base or PipelineConfig()
    data = config.model_dump(mode="json")
    loaded: list[str] = []
    unknown: list[str] = []
    values = dict(parsed)
    sampler = values.get("Sampler", "")
    if sampler and "Schedule type" not in values:
        # Old A1111 names carry the scheduler ("DPM++ 2M Karras"); 1.10 splits them the same way.
        for suffix in _SCHEDULER_SUFFIXES:
            if sampler.endswith(" " + suffix):
                values["Sampler"] = sampler[: -len(suffix) - 1]
                values["Schedule type"] = suffix
                break
    changes: list[tuple[str, str, Any]] = []  # (key, dotted, value)
    passes: dict[int, dict[str, Any]] = {}
    for key, raw in values.items():
        if key in _SIMPLE:
            dotted, cast = _SIMPLE[key]
            try:
                changes.append((key, dotted, cast(raw)))
            except (TypeError, ValueError):
                unknown.append(key)
            continue
        ad = _adetailer_key(key)
        if ad is not None:
            index, name = ad
            field_name, cast = _ADETAILER[name]
            try:
                passes.setdefault(index, {})[field_name] = cast(raw)
            except (TypeError, ValueError):
                unknown.append(key)
            continue
        if key not in _IGNORED and key != "Denoising strength":
            unknown.append(key)
    hires = "Denoising strength" in values and any(
        k in values for k in ("Hires upscale", "Hires upscaler", "Hires resize-1"))
    if "Denoising strength" in values:
        dotted = "txt2img.hires.denoise" if hires else "img2img.denoise"
        try:
            changes.append(("Denoising strength", dotted, float(values["Denoising strength"])))
        except ValueError:
            unknown.append("Denoising strength")
    if hires:
        changes.append(("Hires", "txt2img.hires.enabled", True))
    if values.get("Refiner"):
        changes.append(("Refiner", "txt2img.refiner.enabled", True))
    if "Img2img denoising strength" in values:
        changes.append(("Img2img", "img2img.enabled", True))
    if any(k.startswith("Postprocess upscale") for k in values):
        changes.append(("Postprocess", "upscale.enabled", True))
    # Tabs past the last pass a config holds (ADetailer may have up to six) cannot be kept.
    ad_keys = {k: ad[0] for k in values if (ad := _adetailer_key(k)) is not None}
    unknown.extend(k for k, tab in ad_keys.items() if tab >= MAX_ADETAILER_PASSES)
    passes = {i: p for i, p in passes.items() if i < MAX_ADETAILER_PASSES}
    if passes:
        # A tab the image does not name did not run: it stays in its place, switched off, so
        # the passes after it keep their numbers.
        data["adetailer"]["enabled"] = True
        data["adetailer"]["passes"] = [passes.get(i, {"enabled": False})
                                       for i in range(max(passes) + 1)]
        loaded.append("adetailer.passes")
        try:
            PipelineConfig.model_validate(data)
        except ValidationError:
            data["adetailer"] = config.model_dump(mode="json")["adetailer"]
            loaded.remove("adetailer.passes")
            unknown.extend(k for k, tab in ad_keys.items() if tab < MAX_ADETAILER_PASSES)
    for key, dotted, value in changes:
        trial = json.loads(json.dumps(data))
        _set(trial, dotted, value)
        try:
            PipelineConfig.model_validate(trial)
        except ValidationError:
            unknown.append(key)
            continue
        data = trial
        loaded.append(dotted)
    return PipelineConfig.model_validate(data), loaded, unknown


def config_from_image(path: str | Path, *, base: PipelineConfig | None = None,
                      ) -> tuple[PipelineConfig, list[str], list[str]]:
    """The config an image was made with (for drag and drop): (config, loaded, unknown).

    Our own JSON chunk wins when present and valid; otherwise the A1111 infotext is read.
    """
    meta = read_image_metadata(path)
    ours = meta.stablenew
    if ours and isinstance(ours.get("config"), dict):
        try:
            config = PipelineConfig.model_validate(ours["config"])
        except ValidationError:
            config = None
        if config is not None:
            seed = ours.get("seed")
            if isinstance(seed, int) and 0 <= seed <= 2**32 - 1:
                config = config.with_changes({"txt2img.seed": seed})
            return config, sorted(_leaf_paths(config.model_dump(mode="json"))), []
    if not meta.parameters:
        raise ImageMetadataError(
            f"{Path(path).name} carries no generation settings (no A1111 or StableNew metadata).",
            detail=f"{path}: chunks {sorted(meta.other)}")
    if not meta.parsed:
        raise ImageMetadataError(
            f"{Path(path).name} has settings in a format StableNew does not read yet.",
            detail=meta.parameters[:200])
    return config_from_infotext(meta.parsed, base=base)


def _adetailer_key(key: str) -> tuple[int, str] | None:
    for name in _ADETAILER:
        if key == name:
            return 0, name
        if key.startswith(name + " "):
            suffix = key[len(name):]
            if suffix in ORDINALS:
                return ORDINALS.index(suffix), name
    return None


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[last] = value


def _leaf_paths(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, dict):
        out: list[str] = []
        for key, value in data.items():
            out += _leaf_paths(value, f"{prefix}.{key}" if prefix else key)
        return out
    return [prefix]
