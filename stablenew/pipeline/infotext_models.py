"""Infotext keys for model families and reference images, as Forge and the ControlNet extension
write them, for images whose server writes no infotext of its own (ComfyUI)."""

from __future__ import annotations

from typing import Any

from stablenew.pipeline.config import PipelineConfig, ReferenceSettings


def family_params(config: PipelineConfig) -> dict[str, Any]:
    """Flux ran at CFG 1 with its guidance (Forge's "Distilled CFG Scale"); others add nothing."""
    from stablenew.backends.families import ModelFamily, detect_family

    t = config.txt2img
    choice = "" if t.family.value == "auto" else t.family.value
    if detect_family(t.checkpoint, choice=choice) is not ModelFamily.flux:
        return {}
    return {"CFG scale": 1.0, "Distilled CFG Scale": t.guidance}


def reference_params(refs: list[ReferenceSettings]) -> dict[str, Any]:
    """`ControlNet N` keys, each unit's fields as the extension serializes them."""
    from stablenew.backends.references import KINDS

    params: dict[str, Any] = {}
    for n, ref in enumerate(refs):
        kind = KINDS[ref.kind]
        module = kind.a1111_modules[0] if ref.preprocess or kind.ip_adapter else "none"
        params[f"ControlNet {n}"] = (
            f"Module: {module}, Model: {ref.model or 'automatic'}, Weight: {ref.strength}, "
            f"Resize Mode: Crop and Resize, Processor Res: 512, Threshold A: -1, Threshold B: -1, "
            f"Guidance Start: {ref.start}, Guidance End: {ref.end}, Pixel Perfect: True, "
            f"Control Mode: Balanced")
    return params
