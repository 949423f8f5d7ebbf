"""Build the JSON bodies A1111/Forge/SD.Next expect from our typed jobs (pure functions).

Every parameter is sent explicitly: the API's defaults (50 steps, Euler, denoise null) are
not the UI's. Field names come from `a1111_fields`, the one list a test checks them against.
"""

from __future__ import annotations

import base64
from typing import Any

from stablenew.backends import a1111_fields as F
from stablenew.backends.a1111_families import apply_family
from stablenew.backends.types import (
    ADetailerJob,
    ADetailerPass,
    BackendKind,
    Img2ImgJob,
    Sampling,
    Txt2ImgJob,
    UpscaleJob,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _overrides(s: Sampling) -> dict[str, Any]:
    out: dict[str, Any] = {F.OPTION_CLIP_SKIP: max(1, s.clip_skip)}
    if s.checkpoint:
        out[F.OPTION_CHECKPOINT] = s.checkpoint
    return out


def _common(s: Sampling, task_id: str, kind: BackendKind, batch_size: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": s.prompt,
        "negative_prompt": s.negative_prompt,
        "styles": [],
        "seed": s.seed,
        "subseed": -1,
        "subseed_strength": 0.0,
        "seed_resize_from_h": -1,
        "seed_resize_from_w": -1,
        "sampler_name": s.sampler,
        "scheduler": s.scheduler or "Automatic",
        "batch_size": batch_size,
        "n_iter": 1,
        "steps": s.steps,
        "cfg_scale": s.cfg_scale,
        "width": s.width,
        "height": s.height,
        "restore_faces": False,
        "tiling": False,
        "override_settings": _overrides(s),
        "override_settings_restore_afterwards": True,
        "disable_extra_networks": False,
        "send_images": True,
        "save_images": False,
        "alwayson_scripts": {},
    }
    if kind != BackendKind.sdnext:  # SD.Next has no task ids; its progress is global only
        body["force_task_id"] = task_id
    return body


def txt2img_payload(job: Txt2ImgJob, kind: BackendKind) -> dict[str, Any]:
    s = job.sampling
    body = _common(s, job.task_id, kind, job.batch_size)
    body["enable_hr"] = job.hires is not None
    if job.hires is not None:
        h = job.hires
        by_size = h.resize_width > 0 or h.resize_height > 0
        body.update({
            "hr_scale": h.scale,
            "hr_upscaler": h.upscaler,
            "hr_second_pass_steps": h.steps,
            "hr_resize_x": h.resize_width if by_size else 0,
            "hr_resize_y": h.resize_height if by_size else 0,
            # The same sampler, named: the UI's "Use same sampler" placeholder crashes the API.
            "hr_sampler_name": s.sampler,
            "hr_scheduler": s.scheduler or "Automatic",
            "hr_prompt": "",
            "hr_negative_prompt": "",
            # Without it the hires pass raises a TypeError (A1111 issue #6838).
            "denoising_strength": h.denoise,
        })
        if kind == BackendKind.forge:
            # Forge defaults hr_cfg to 1.0 (CFG 1, negative prompt dropped) and crashes when
            # hr_additional_modules is null.
            body["hr_cfg"] = h.cfg_scale if h.cfg_scale is not None else s.cfg_scale
            body["hr_additional_modules"] = [F.FORGE_SAME_MODULES]
        if kind == BackendKind.sdnext:
            body["hr_denoising_strength"] = h.denoise
            body["hr_force"] = True
    if job.refiner is not None:
        body["refiner_checkpoint"] = job.refiner.checkpoint
        body["refiner_switch_at"] = job.refiner.switch_at
    apply_family(body, s, kind)
    return body


def _img2img_base(s: Sampling, task_id: str, kind: BackendKind, init: bytes, denoise: float) -> dict:
    body = _common(s, task_id, kind, 1)
    body.update({
        "init_images": [b64(init)],
        "denoising_strength": denoise,
        "resize_mode": 0,
        "include_init_images": False,
        "initial_noise_multiplier": 1.0,
    })
    return body


def img2img_payload(job: Img2ImgJob, kind: BackendKind) -> dict[str, Any]:
    body = _img2img_base(job.sampling, job.task_id, kind, job.init_image, job.denoise)
    body["resize_mode"] = int(job.resize_mode)
    if job.mask is not None:
        # The UI's defaults, not the API's ("only masked" with 0 padding, "fill").
        body.update({
            "mask": b64(job.mask),
            "mask_blur": job.mask_blur,
            "mask_round": True,
            "inpainting_fill": 1,
            "inpaint_full_res": False,
            "inpaint_full_res_padding": 32,
            "inpainting_mask_invert": 0,
        })
    apply_family(body, job.sampling, kind)
    return body


def adetailer_tab(p: ADetailerPass) -> dict[str, Any]:
    return {
        "ad_model": p.model,
        "ad_tab_enable": p.enabled,
        "ad_prompt": p.prompt,
        "ad_negative_prompt": p.negative_prompt,
        "ad_confidence": p.confidence,
        "ad_mask_blur": p.mask_blur,
        "ad_denoising_strength": p.denoise,
        "ad_inpaint_only_masked": p.inpaint_only_masked,
        "ad_inpaint_only_masked_padding": p.inpaint_padding,
    }


def adetailer_payload(job: ADetailerJob, kind: BackendKind, image_size: tuple[int, int]
                      ) -> dict[str, Any]:
    """img2img over the given image with the main pass skipped: only the detector passes run."""
    width, height = image_size
    s = job.sampling
    sampling = Sampling(prompt=s.prompt, negative_prompt=s.negative_prompt, checkpoint=s.checkpoint,
                        sampler=s.sampler, scheduler=s.scheduler, steps=s.steps, cfg_scale=s.cfg_scale,
                        width=width, height=height, seed=s.seed, clip_skip=s.clip_skip)
    body = _img2img_base(sampling, job.task_id, kind, job.image, 0.0)
    # A pass switched off is still sent, with ad_tab_enable false, so the later ones keep their
    # tab numbers (and their " 3rd"-style infotext keys).
    args: list[Any] = [True, True, *(adetailer_tab(p) for p in job.passes)]
    body["alwayson_scripts"] = {F.ADETAILER_SCRIPT: {"args": args}}
    return body


def upscale_payload(job: UpscaleJob) -> dict[str, Any]:
    by_size = job.target_width > 0 and job.target_height > 0
    return {
        "image": b64(job.image),
        "resize_mode": 1 if by_size else 0,
        "show_extras_results": True,
        "gfpgan_visibility": 0.0,
        "codeformer_visibility": 0.0,
        "codeformer_weight": 0.0,
        "upscaling_resize": job.scale,
        "upscaling_resize_w": job.target_width if by_size else 512,
        "upscaling_resize_h": job.target_height if by_size else 512,
        "upscaling_crop": True,
        "upscaler_1": job.upscaler,
        "upscaler_2": job.upscaler_2,
        "extras_upscaler_2_visibility": job.upscaler_2_visibility,
        "upscale_first": False,
    }
