"""The request field names A1111, Forge and SD.Next accept: the one place they are written.

The WebUI API silently ignores unknown keys, so a misspelled field is a silent bug (the
setting just does not apply). Payload builders take names from here and a test checks every
payload they build against these sets. Sources: A1111 1.10 `modules/api/models.py` and
`modules/processing.py`, Forge `modules/processing.py`, SD.Next `modules/api/models.py`,
ADetailer `adetailer/args.py`.
"""

from __future__ import annotations

from stablenew.backends.types import BackendKind

TXT2IMG = "/sdapi/v1/txt2img"
IMG2IMG = "/sdapi/v1/img2img"
EXTRAS_SINGLE = "/sdapi/v1/extra-single-image"
PNG_INFO = "/sdapi/v1/png-info"
OPTIONS = "/sdapi/v1/options"
#: The rescans of the model folders a WebUI keeps listed until asked (SD.Next lacks the third).
RESCANS = ("/sdapi/v1/refresh-checkpoints", "/sdapi/v1/refresh-loras",
           "/sdapi/v1/refresh-embeddings", "/sdapi/v1/refresh-vae")
INTERNAL_PROGRESS = "/internal/progress"

_PROCESSING = frozenset({
    "prompt", "negative_prompt", "styles", "seed", "subseed", "subseed_strength",
    "seed_resize_from_h", "seed_resize_from_w", "sampler_name", "sampler_index", "scheduler",
    "batch_size", "n_iter", "steps", "cfg_scale", "width", "height", "restore_faces", "tiling",
    "do_not_save_samples", "do_not_save_grid", "eta", "denoising_strength", "s_min_uncond",
    "s_churn", "s_tmax", "s_tmin", "s_noise", "override_settings",
    "override_settings_restore_afterwards", "refiner_checkpoint", "refiner_switch_at",
    "disable_extra_networks", "comments",
})
_API_ONLY = frozenset({
    "force_task_id", "script_name", "script_args", "send_images", "save_images",
    "alwayson_scripts", "infotext",
})
_HIRES = frozenset({
    "enable_hr", "firstphase_width", "firstphase_height", "hr_scale", "hr_upscaler",
    "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "hr_checkpoint_name", "hr_sampler_name",
    "hr_scheduler", "hr_prompt", "hr_negative_prompt",
})
_IMG2IMG_ONLY = frozenset({
    "init_images", "resize_mode", "image_cfg_scale", "mask", "mask_blur", "mask_blur_x",
    "mask_blur_y", "mask_round", "inpainting_fill", "inpaint_full_res", "inpaint_full_res_padding",
    "inpainting_mask_invert", "initial_noise_multiplier", "include_init_images",
})
_FORGE_TXT2IMG = frozenset({"distilled_cfg_scale", "hr_cfg", "hr_distilled_cfg", "hr_additional_modules"})
_FORGE_IMG2IMG = frozenset({"distilled_cfg_scale", "hr_distilled_cfg"})
# SD.Next names the hires denoise separately and has no force_task_id.
_SDNEXT_TXT2IMG = frozenset({"hr_denoising_strength", "hr_force", "hr_resize_mode"})

_EXTRAS = frozenset({
    "image", "resize_mode", "show_extras_results", "gfpgan_visibility", "codeformer_visibility",
    "codeformer_weight", "upscaling_resize", "upscaling_resize_w", "upscaling_resize_h",
    "upscaling_crop", "upscaler_1", "upscaler_2", "extras_upscaler_2_visibility", "upscale_first",
})

#: Keys of one ADetailer tab dict (its pydantic model forbids anything else and drops the tab).
ADETAILER_TAB = frozenset({
    "ad_model", "ad_model_classes", "ad_tab_enable", "ad_prompt", "ad_negative_prompt",
    "ad_confidence", "ad_mask_filter_method", "ad_mask_k", "ad_mask_min_ratio", "ad_mask_max_ratio",
    "ad_dilate_erode", "ad_x_offset", "ad_y_offset", "ad_mask_merge_invert", "ad_mask_blur",
    "ad_denoising_strength", "ad_inpaint_only_masked", "ad_inpaint_only_masked_padding",
    "ad_use_inpaint_width_height", "ad_inpaint_width", "ad_inpaint_height", "ad_use_steps",
    "ad_steps", "ad_use_cfg_scale", "ad_cfg_scale", "ad_use_checkpoint", "ad_checkpoint",
    "ad_use_vae", "ad_vae", "ad_use_sampler", "ad_sampler", "ad_scheduler",
    "ad_use_noise_multiplier", "ad_noise_multiplier", "ad_use_clip_skip", "ad_clip_skip",
    "ad_restore_face", "ad_controlnet_model", "ad_controlnet_module", "ad_controlnet_weight",
    "ad_controlnet_guidance_start", "ad_controlnet_guidance_end",
})
#: The always-on script title ADetailer registers.
ADETAILER_SCRIPT = "ADetailer"

#: Option keys we set, through POST /options or per request in override_settings.
OPTION_CHECKPOINT = "sd_model_checkpoint"
OPTION_CLIP_SKIP = "CLIP_stop_at_last_layers"
OVERRIDE_KEYS = frozenset({OPTION_CHECKPOINT, OPTION_CLIP_SKIP})

#: Forge's placeholder meaning "the same VAE/text encoders as the first pass".
FORGE_SAME_MODULES = "Use same choices"


def accepted_fields(endpoint: str, kind: BackendKind) -> frozenset[str]:
    """Top-level request keys the given server kind reads at this endpoint."""
    if endpoint == TXT2IMG:
        fields = _PROCESSING | _API_ONLY | _HIRES
        if kind == BackendKind.forge:
            return fields | _FORGE_TXT2IMG
        if kind == BackendKind.sdnext:
            return (fields | _SDNEXT_TXT2IMG) - {"force_task_id"}
        return fields
    if endpoint == IMG2IMG:
        fields = _PROCESSING | _API_ONLY | _IMG2IMG_ONLY
        if kind == BackendKind.forge:
            return fields | _FORGE_IMG2IMG
        if kind == BackendKind.sdnext:
            return fields - {"force_task_id"}
        return fields
    if endpoint == EXTRAS_SINGLE:
        return _EXTRAS
    if endpoint == PNG_INFO:
        return frozenset({"image"})
    if endpoint == INTERNAL_PROGRESS:
        return frozenset({"id_task", "id_live_preview", "live_preview"})
    raise KeyError(f"no field list for {endpoint}")


def unknown_fields(endpoint: str, kind: BackendKind, payload: dict) -> list[str]:
    """Names in `payload` (top level, override_settings, ADetailer tabs) the server would ignore."""
    bad = sorted(set(payload) - accepted_fields(endpoint, kind))
    bad += [f"override_settings.{k}" for k in sorted(set(payload.get("override_settings") or {})
                                                     - OVERRIDE_KEYS)]
    scripts = payload.get("alwayson_scripts") or {}
    for title, script in scripts.items():
        if title != ADETAILER_SCRIPT:
            bad.append(f"alwayson_scripts.{title}")
            continue
        for arg in script.get("args", []):
            if isinstance(arg, dict):
                bad += [f"ADetailer.{k}" for k in sorted(set(arg) - ADETAILER_TAB)]
    return bad
