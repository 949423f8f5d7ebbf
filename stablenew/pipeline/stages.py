"""From PipelineConfig to backend jobs: one builder per stage, plus the work each stage costs.

The runner stays generic: it asks `plan_stages` which stages to run and `build_job` for each
one, then hands the job to the backend method `STAGE_CALLS` names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from stablenew.backends import types as bt
from stablenew.backends.a1111_truth import same_checkpoint
from stablenew.backends.comfyui_names import match_file, missing
from stablenew.pipeline.config import STAGE_ORDER, PipelineConfig, StageName, hires_size
from stablenew.pipeline.references import reference_units

log = logging.getLogger("stablenew.pipeline.stages")


class NothingToRun(ValueError):
    """The config switches off every stage this run could do."""


def plan_stages(config: PipelineConfig, *, from_images: bool) -> tuple[StageName, ...]:
    """The enabled stages in order; a run from given images starts after txt2img."""
    stages = config.enabled_stages()
    idle_adetailer = config.adetailer.enabled and not config.adetailer.runs
    if idle_adetailer:
        # Every pass off is ADetailer off: no request goes to the server for it.
        log.info("ADetailer is on but all its detector passes are off; the stage is skipped")
    if from_images:
        stages = tuple(s for s in stages if s is not StageName.txt2img)
        if not stages:
            if idle_adetailer and not config.img2img.enabled and not config.upscale.enabled:
                raise NothingToRun(
                    "ADetailer is on but all its detector passes are off, so there is nothing "
                    "to do with the given images. Switch on a detector pass.")
            raise NothingToRun(
                "No stage after text to image is switched on, so there is nothing to do with "
                "the given images. Switch on image to image, ADetailer or upscale.")
    elif not stages or stages[0] is not StageName.txt2img:
        raise NothingToRun(
            "Text to image is switched off and no input images were given. Switch on text to "
            "image, or start the run from images.")
    return stages


UPSCALE_UNITS = 5.0


def stage_units(config: PipelineConfig, stage: StageName) -> float:
    """Roughly how many sampling steps a stage runs, for progress and ETA weighting."""
    t = config.txt2img
    if stage is StageName.txt2img:
        units = float(t.steps)
        if t.hires.enabled:
            units += (t.hires.steps or t.steps) * max(t.hires.denoise, 0.05)
        return units * t.batch_size
    if stage is StageName.img2img:
        return max(1.0, config.img2img.steps * config.img2img.denoise)
    if stage is StageName.adetailer:
        return sum(max(1.0, t.steps * p.denoise) for _, p in config.adetailer.active_passes())
    # An upscale has no steps; counted like a few steps until its own time is measured.
    return UPSCALE_UNITS


def sampling(config: PipelineConfig, seed: int, *, size: tuple[int, int] | None = None,
             stage: StageName = StageName.txt2img) -> bt.Sampling:
    t = config.txt2img
    width, height = size or (t.width, t.height)
    family: dict[str, Any] = {"family": "" if t.family == "auto" else t.family.value,
                              "guidance": t.guidance, "vae": t.vae,
                              "text_encoders": tuple(e for e in (t.text_encoder,
                                                                 t.text_encoder_2) if e)}
    if stage is StageName.img2img:
        i = config.img2img
        return bt.Sampling(
            prompt=i.prompt_override or t.prompt,
            negative_prompt=i.negative_override or t.negative_prompt,
            checkpoint=t.checkpoint, sampler=i.sampler, scheduler=i.scheduler, steps=i.steps,
            cfg_scale=i.cfg_scale, width=width, height=height, seed=seed, clip_skip=t.clip_skip,
            **family)
    return bt.Sampling(
        prompt=t.prompt, negative_prompt=t.negative_prompt, checkpoint=t.checkpoint,
        sampler=t.sampler, scheduler=t.scheduler, steps=t.steps, cfg_scale=t.cfg_scale,
        width=width, height=height, seed=seed, clip_skip=t.clip_skip, **family)


def txt2img_job(config: PipelineConfig, seed: int, task_id: str) -> bt.Txt2ImgJob:
    t = config.txt2img
    hires = None
    if t.hires.enabled:
        h = t.hires
        hires = bt.HiresFix(upscaler=h.upscaler, scale=h.scale, resize_width=h.resize_width,
                            resize_height=h.resize_height, steps=h.steps, denoise=h.denoise)
    refiner = None
    if t.refiner.enabled and t.refiner.checkpoint:
        refiner = bt.Refiner(checkpoint=t.refiner.checkpoint, switch_at=t.refiner.switch_at)
    return bt.Txt2ImgJob(sampling=sampling(config, seed), task_id=task_id,
                         batch_size=t.batch_size, hires=hires, refiner=refiner,
                         references=reference_units(t.references))


def img2img_job(config: PipelineConfig, seed: int, image: bytes, size: tuple[int, int],
                task_id: str) -> bt.Img2ImgJob:
    i = config.img2img
    return bt.Img2ImgJob(
        sampling=sampling(config, seed, size=size, stage=StageName.img2img), init_image=image,
        task_id=task_id, denoise=i.denoise, resize_mode=bt.ResizeMode[i.resize_mode.value],
        references=reference_units(i.references))


def adetailer_job(config: PipelineConfig, seed: int, image: bytes, size: tuple[int, int],
                  task_id: str) -> bt.ADetailerJob:
    # Every pass goes in, the ones switched off too: a pass's place is its ADetailer tab.
    passes = tuple(
        bt.ADetailerPass(model=p.model, prompt=p.prompt, negative_prompt=p.negative_prompt,
                         confidence=p.confidence, mask_blur=p.mask_blur, denoise=p.denoise,
                         inpaint_only_masked=p.inpaint_only_masked,
                         inpaint_padding=p.inpaint_padding, enabled=p.enabled)
        for p in config.adetailer.passes)
    return bt.ADetailerJob(sampling=sampling(config, seed, size=size), image=image,
                           task_id=task_id, passes=passes)


def upscale_job(config: PipelineConfig, image: bytes, task_id: str) -> bt.UpscaleJob:
    u = config.upscale
    return bt.UpscaleJob(image=image, task_id=task_id, upscaler=u.upscaler, scale=u.scale,
                         target_width=u.target_width, target_height=u.target_height,
                         upscaler_2=u.upscaler_2, upscaler_2_visibility=u.upscaler_2_visibility)


def build_job(config: PipelineConfig, stage: StageName, *, seed: int, task_id: str,
              image: bytes | None = None, size: tuple[int, int] | None = None):
    """The backend job for *stage* (image and its size are needed after txt2img)."""
    if stage is StageName.txt2img:
        return txt2img_job(config, seed, task_id)
    if image is None or size is None:
        raise ValueError(f"the {stage.value} stage needs an input image")
    if stage is StageName.img2img:
        return img2img_job(config, seed, image, size, task_id)
    if stage is StageName.adetailer:
        return adetailer_job(config, seed, image, size, task_id)
    return upscale_job(config, image, task_id)


#: Backend method for each stage.
STAGE_CALLS: dict[StageName, str] = {
    StageName.txt2img: "txt2img",
    StageName.img2img: "img2img",
    StageName.adetailer: "adetailer",
    StageName.upscale: "upscale",
}


def first_pass_size(config: PipelineConfig) -> tuple[int, int]:
    return config.txt2img.width, config.txt2img.height


def expected_size(config: PipelineConfig, stages: Sequence[StageName],
                  start: tuple[int, int]) -> tuple[int, int]:
    """The output size after *stages* for an input of *start* (used for the safety limit)."""
    width, height = start
    for stage in stages:
        if stage is StageName.txt2img and config.txt2img.hires.enabled:
            width, height = hires_size(width, height, config.txt2img.hires)
        elif stage is StageName.upscale:
            u = config.upscale
            if u.target_width and u.target_height:
                width, height = u.target_width, u.target_height
            else:
                width, height = round(width * u.scale), round(height * u.scale)
    return width, height


#: ComfyUI node classes ADetailer passes need, and the custom-node pack each comes from.
_DETAILER_CLASSES = {
    "FaceDetailer": "the Impact Pack custom nodes (ComfyUI-Impact-Pack)",
    "UltralyticsDetectorProvider": "the Impact Subpack custom nodes (ComfyUI-Impact-Subpack)",
}


def unavailable(config: PipelineConfig, chain: Sequence[StageName], caps: bt.Capabilities,
                node: str) -> str | None:
    """The first thing a stage of *chain* needs that the node lacks, in plain words; None
    when every stage can run. Checked before the first request, so a missing detector does
    not show only after txt2img ran. A list the node did not give is not held against it."""
    t = config.txt2img

    def words(names: Sequence[str]) -> str:
        shown = ", ".join(names[:8])
        more = f" and {len(names) - 8} more" if len(names) > 8 else ""
        return f"it has {shown}{more}" if names else "it has none"

    def has(name: str, names: Sequence[str]) -> bool:
        return name.casefold() in {n.casefold() for n in names}

    diffusion = [s for s in chain if s is not StageName.upscale]
    wanted = [(t.checkpoint, "checkpoint")] if diffusion and t.checkpoint else []
    if StageName.txt2img in chain and t.refiner.enabled and t.refiner.checkpoint:
        wanted.append((t.refiner.checkpoint, "refiner checkpoint"))
    for name, what in wanted:
        if caps.checkpoints and not any(same_checkpoint(name, c) for c in caps.checkpoints):
            return missing("checkpoint", name, caps.checkpoints, node,
                           hint=f"The {what} is needed before anything runs: pick one the node "
                                "has, or install it there. Nothing was sent.").message
    upscalers: list[tuple[str, str]] = []
    if StageName.txt2img in chain and t.hires.enabled:
        upscalers.append((t.hires.upscaler, "hires fix"))
    if StageName.upscale in chain:
        u = config.upscale
        upscalers.append((u.upscaler, "the upscale step"))
        if u.upscaler_2 != "None" and u.upscaler_2_visibility > 0:
            upscalers.append((u.upscaler_2, "the upscale step's second upscaler"))
    for name, what in upscalers:
        if caps.upscalers and not has(name, caps.upscalers):
            return (f"Node '{node}' has no upscaler '{name}' for {what} "
                    f"({words(caps.upscalers)}). Pick one it has. Nothing was sent.")
    if StageName.adetailer in chain:
        if caps.kind is bt.BackendKind.comfyui and caps.node_classes:
            for cls, pack in _DETAILER_CLASSES.items():
                if cls not in caps.node_classes:
                    return (f"ADetailer passes need the '{cls}' node, which is not installed on "
                            f"node '{node}': install {pack}, or switch ADetailer off. Nothing "
                            "was sent.")
        for _, p in config.adetailer.active_passes():
            if caps.adetailer_models and match_file(p.model, caps.adetailer_models) is None:
                return (f"Node '{node}' has no ADetailer detector '{p.model}' "
                        f"({words(caps.adetailer_models)}). Pick one it has. Nothing was sent.")
    return None


__all__ = ["STAGE_CALLS", "STAGE_ORDER", "NothingToRun", "build_job", "expected_size",
           "plan_stages", "stage_units"]
