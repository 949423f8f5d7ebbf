"""Request schemas and infotext helpers of the fake SD WebUI server.

Written from the A1111 1.10 / Forge / SD.Next API reference, independently of the client's
own field list (`stablenew.backends.a1111_fields`): if both shared one list, a misspelled
field would pass on both sides and go unseen. Every model allows unknown keys (like the real
server, which ignores them silently) so the fake can record them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

_STR = str | None
_INT = int | None
_FLOAT = float | None
_BOOL = bool | None
_STRS = list[str] | None
_DICT = dict | None
_LIST = list | None

# StableDiffusionProcessing (the base class) as the API model generator sees it.
_BASE_FIELDS: dict[str, Any] = {
    "prompt": _STR, "negative_prompt": _STR, "styles": _STRS,
    "seed": _INT, "subseed": _INT, "subseed_strength": _FLOAT,
    "seed_resize_from_h": _INT, "seed_resize_from_w": _INT,
    "sampler_name": _STR, "sampler_index": _STR, "scheduler": _STR,
    "batch_size": _INT, "n_iter": _INT, "steps": _INT, "cfg_scale": _FLOAT,
    "width": _INT, "height": _INT, "restore_faces": _BOOL, "tiling": _BOOL,
    "do_not_save_samples": _BOOL, "do_not_save_grid": _BOOL, "eta": _FLOAT,
    "denoising_strength": _FLOAT, "s_min_uncond": _FLOAT, "s_churn": _FLOAT, "s_tmax": _FLOAT,
    "s_tmin": _FLOAT, "s_noise": _FLOAT, "override_settings": _DICT,
    "override_settings_restore_afterwards": _BOOL, "refiner_checkpoint": _STR,
    "refiner_switch_at": _FLOAT, "disable_extra_networks": _BOOL, "firstpass_image": _STR,
    "comments": _DICT,
}
# Fields the API appends to both generation models.
_API_FIELDS: dict[str, Any] = {
    "force_task_id": _STR, "script_name": _STR, "script_args": _LIST, "send_images": _BOOL,
    "save_images": _BOOL, "alwayson_scripts": _DICT, "infotext": _STR,
}
_HIRES_FIELDS: dict[str, Any] = {
    "enable_hr": _BOOL, "firstphase_width": _INT, "firstphase_height": _INT, "hr_scale": _FLOAT,
    "hr_upscaler": _STR, "hr_second_pass_steps": _INT, "hr_resize_x": _INT, "hr_resize_y": _INT,
    "hr_checkpoint_name": _STR, "hr_sampler_name": _STR, "hr_scheduler": _STR, "hr_prompt": _STR,
    "hr_negative_prompt": _STR,
}
_FORGE_TXT2IMG: dict[str, Any] = {
    "distilled_cfg_scale": _FLOAT, "hr_cfg": _FLOAT, "hr_distilled_cfg": _FLOAT,
    "hr_additional_modules": _STRS,
}
_IMG2IMG_FIELDS: dict[str, Any] = {
    "init_images": _STRS, "resize_mode": _INT, "image_cfg_scale": _FLOAT, "mask": _STR,
    "mask_blur": _INT, "mask_blur_x": _INT, "mask_blur_y": _INT, "mask_round": _BOOL,
    "inpainting_fill": _INT, "inpaint_full_res": _BOOL, "inpaint_full_res_padding": _INT,
    "inpainting_mask_invert": _INT, "initial_noise_multiplier": _FLOAT, "latent_mask": _STR,
    "include_init_images": _BOOL,
}
_FORGE_IMG2IMG: dict[str, Any] = {"distilled_cfg_scale": _FLOAT, "hr_distilled_cfg": _FLOAT}
# SD.Next: the hires pass has its own denoise and there is no force_task_id.
_SDNEXT_TXT2IMG: dict[str, Any] = {
    "hr_denoising_strength": _FLOAT, "hr_force": _BOOL, "hr_resize_mode": _INT,
    "hr_resize_context": _STR, "refiner_steps": _INT, "refiner_start": _FLOAT,
    "refiner_prompt": _STR, "refiner_negative": _STR,
}
_EXTRAS_FIELDS: dict[str, Any] = {
    "image": _STR, "resize_mode": _INT, "show_extras_results": _BOOL,
    "gfpgan_visibility": _FLOAT, "codeformer_visibility": _FLOAT, "codeformer_weight": _FLOAT,
    "upscaling_resize": _FLOAT, "upscaling_resize_w": _INT, "upscaling_resize_h": _INT,
    "upscaling_crop": _BOOL, "upscaler_1": _STR, "upscaler_2": _STR,
    "extras_upscaler_2_visibility": _FLOAT, "upscale_first": _BOOL,
}
_PNGINFO_FIELDS: dict[str, Any] = {"image": _STR}
_INTERNAL_PROGRESS_FIELDS: dict[str, Any] = {
    "id_task": _STR, "id_live_preview": _INT, "live_preview": _BOOL,
}

# ADetailer's per-tab dict (adetailer/args.py, ADetailerArgs); the real model forbids extras.
ADETAILER_TAB_FIELDS: dict[str, Any] = {
    "ad_model": _STR, "ad_model_classes": _STR, "ad_tab_enable": _BOOL, "ad_prompt": _STR,
    "ad_negative_prompt": _STR, "ad_confidence": _FLOAT, "ad_mask_filter_method": _STR,
    "ad_mask_k": _INT, "ad_mask_min_ratio": _FLOAT, "ad_mask_max_ratio": _FLOAT,
    "ad_dilate_erode": _INT, "ad_x_offset": _INT, "ad_y_offset": _INT,
    "ad_mask_merge_invert": _STR, "ad_mask_blur": _INT, "ad_denoising_strength": _FLOAT,
    "ad_inpaint_only_masked": _BOOL, "ad_inpaint_only_masked_padding": _INT,
    "ad_use_inpaint_width_height": _BOOL, "ad_inpaint_width": _INT, "ad_inpaint_height": _INT,
    "ad_use_steps": _BOOL, "ad_steps": _INT, "ad_use_cfg_scale": _BOOL, "ad_cfg_scale": _FLOAT,
    "ad_use_checkpoint": _BOOL, "ad_checkpoint": _STR, "ad_use_vae": _BOOL, "ad_vae": _STR,
    "ad_use_sampler": _BOOL, "ad_sampler": _STR, "ad_scheduler": _STR,
    "ad_use_noise_multiplier": _BOOL, "ad_noise_multiplier": _FLOAT, "ad_use_clip_skip": _BOOL,
    "ad_clip_skip": _INT, "ad_restore_face": _BOOL, "ad_controlnet_model": _STR,
    "ad_controlnet_module": _STR, "ad_controlnet_weight": _FLOAT,
    "ad_controlnet_guidance_start": _FLOAT, "ad_controlnet_guidance_end": _FLOAT, "is_api": _BOOL,
}


def _model(name: str, fields: dict[str, Any]) -> type[BaseModel]:
    spec = {key: (annotation, None) for key, annotation in fields.items()}
    return create_model(name, __config__=ConfigDict(extra="allow"), **spec)


def _build(flavor: str) -> dict[str, type[BaseModel]]:
    txt = {**_BASE_FIELDS, **_HIRES_FIELDS, **_API_FIELDS}
    img = {**_BASE_FIELDS, **_IMG2IMG_FIELDS, **_API_FIELDS}
    if flavor == "forge":
        txt.update(_FORGE_TXT2IMG)
        img.update(_FORGE_IMG2IMG)
    elif flavor == "sdnext":
        txt.update(_SDNEXT_TXT2IMG)
        txt.pop("force_task_id")
        img.pop("force_task_id")
    return {
        "/sdapi/v1/txt2img": _model(f"Txt2Img_{flavor}", txt),
        "/sdapi/v1/img2img": _model(f"Img2Img_{flavor}", img),
        "/sdapi/v1/extra-single-image": _model(f"Extras_{flavor}", _EXTRAS_FIELDS),
        "/sdapi/v1/png-info": _model(f"PngInfo_{flavor}", _PNGINFO_FIELDS),
        "/internal/progress": _model(f"InternalProgress_{flavor}", _INTERNAL_PROGRESS_FIELDS),
    }


REQUEST_MODELS: dict[str, dict[str, type[BaseModel]]] = {
    flavor: _build(flavor) for flavor in ("a1111", "forge", "sdnext")
}
ADetailerTab = _model("ADetailerTab", ADETAILER_TAB_FIELDS)


def validation_detail(exc: ValidationError, *, with_input: bool) -> list[dict]:
    """FastAPI's 422 body: one entry per bad field, `loc` starting with "body"."""
    out = []
    for err in exc.errors():
        entry = {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
        if with_input:
            entry["input"] = err.get("input")
        out.append(entry)
    return out


# --- infotext (modules/processing.py create_infotext, modules/infotext_utils.py) ---

def _quote(text: str) -> str:
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def create_infotext(prompt: str, negative: str, params: dict[str, Any]) -> str:
    line = ", ".join(
        k if k == v else f"{k}: {_quote(str(v))}" for k, v in params.items() if v is not None
    )
    negative_line = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{negative_line}\n{line}".strip()


_PAIR = re.compile(r"""\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)""")
_SIZE = re.compile(r"^(\d+)x(\d+)$")


def parse_infotext(text: str) -> dict[str, Any]:
    """A small `parse_generation_parameters`: prompt, negative prompt and the param pairs."""
    lines = text.strip().split("\n")
    params_line = lines[-1] if len(_PAIR.findall(lines[-1])) >= 3 else ""
    if params_line:
        lines = lines[:-1]
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    for line in lines:
        if negative_lines or line.startswith("Negative prompt:"):
            negative_lines.append(line.removeprefix("Negative prompt:").lstrip()
                                  if not negative_lines else line)
        else:
            prompt_lines.append(line)
    out: dict[str, Any] = {"Prompt": "\n".join(prompt_lines),
                           "Negative prompt": "\n".join(negative_lines)}
    for key, value in _PAIR.findall(params_line):
        value = value.strip()
        if value.startswith('"') and value.endswith('"'):
            value = json.loads(value)
        size = _SIZE.match(value)
        if size:
            out[f"{key}-1"], out[f"{key}-2"] = size.group(1), size.group(2)
        else:
            out[key] = value
    return out
