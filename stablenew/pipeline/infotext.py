"""A1111 "parameters" infotext (writer and parser, exactly A1111's format) and our JSON chunk.

The writer follows `create_infotext` in A1111's `modules/processing.py`; the parser follows
`parse_generation_parameters` in `modules/infotext_utils.py`, so A1111's PNG Info, Civitai and
image browsers read our files, and we read theirs. Values in parsed dicts are strings, as in
A1111; `config_from_image` casts them into a PipelineConfig.
"""

from __future__ import annotations

import html as html_lib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stablenew import __version__
from stablenew.backends.types import RanWith
from stablenew.pipeline.config import (
    MAX_ADETAILER_PASSES,
    PipelineConfig,
    StageName,
    hires_size,
)
from stablenew.pipeline.infotext_models import family_params, reference_params
from stablenew.pipeline.records import RunTags

PARAMETERS_KEY = "parameters"
STABLENEW_KEY = "stablenew"
STABLENEW_FORMAT = 1

# The very expressions A1111 uses (modules/infotext_utils.py).
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")
# A1111's expression backtracks over every run of key characters, so its time grows with the
# square of a run's length: minutes for a crafted (or damaged) multi-megabyte line. A line
# longer than any real parameters line, or with a long stretch of no "," or ":", is prompt text.
MAX_PARAMS_LINE = 16_000
_RE_LONG_RUN = re.compile(r"[^,:]{1000}")

_ORDINALS = ("", " 2nd", " 3rd", " 4th", " 5th", " 6th")


# --- writing ------------------------------------------------------------------------------


def quote(value: Any) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


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
                   size: tuple[int, int] | None = None, ran: RanWith | None = None) -> str:
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
        sfx = _ORDINALS[n] if n < len(_ORDINALS) else f" {n + 1}th"
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
                   ) -> str:
    """The infotext of an image that went through *stages*, each stage told by its own
    server report, so an image says what ran, not what was asked.

    The first stage's own infotext is the base when the server wrote one for this image
    (A1111 and Forge: the sampler it fell back to, the model it used, Forge's hires CFG);
    each later stage adds its keys from its own report: img2img's sampling under
    "Img2img …", ADetailer's keys as ADetailer wrote them, the upscaler as the extras
    answer names it. A server that writes no infotext (ComfyUI) is described from the
    config and what it reported running (the checkpoint it loaded).
    """
    chain = [StageName(s) for s in stages]
    if not chain:
        return build_infotext(config, seed, stages, size=size)
    first = chain[0]
    base = reports.get(first.value) or StageReport()
    if first is StageName.upscale or not server_infotext_matches(
            base.infotext, stage_prompt(config, first), seed):
        return build_infotext(config, seed, stages, size=size, ran=first_ran(chain, reports))
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
        said = _RE_PARAM.findall(html_lib.unescape(_TAG.sub(" ", html)))
        found = {k.strip(): unquote(v.strip()) for k, v in said
                 if k.strip().startswith("Postprocess ")}
        return found or _upscale_params(config)
    return {}


_MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")


def model_name(checkpoint: str) -> str | None:
    """The model as A1111 names it in infotext: file name without folder, extension or hash
    ("SDXL/juggernaut_v9.safetensors [abc123]" -> "juggernaut_v9")."""
    name = checkpoint.strip()
    if not name:
        return None
    if name.endswith("]") and " [" in name:
        name = name.rsplit(" [", 1)[0]
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    for ext in _MODEL_EXTENSIONS:
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return name or None


def server_infotext_matches(infotext: str, prompt: str, seed: int) -> bool:
    """True when the server's own infotext describes this image (same prompt and seed)."""
    if not infotext:
        return False
    parsed = parse_infotext(infotext)
    return parsed.get("Prompt") == prompt.strip() and parsed.get("Seed") == str(seed)


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


# --- reading ------------------------------------------------------------------------------


def parse_infotext(text: str) -> dict[str, str]:
    """A1111's parser: keys to string values, plus "Prompt" and "Negative prompt".

    `WxH` values split into `<key>-1`/`<key>-2`; unknown keys are kept as they are. Unlike
    A1111 no defaults are injected, so the dict says only what the text says.
    """
    result: dict[str, str] = {}
    prompt = ""
    negative = ""
    done_with_prompt = False
    *lines, lastline = text.strip().split("\n")
    if (len(lastline) > MAX_PARAMS_LINE or _RE_LONG_RUN.search(lastline)
            or len(_RE_PARAM.findall(lastline)) < 3):
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    for key, value in _RE_PARAM.findall(lastline):
        if value and value[0] == '"' and value[-1] == '"':
            value = unquote(value)
        match = _RE_IMAGESIZE.match(value)
        if match is not None:
            result[f"{key}-1"] = match.group(1)
            result[f"{key}-2"] = match.group(2)
        else:
            result[key] = value
    result["Prompt"] = prompt
    result["Negative prompt"] = negative
    return result


@dataclass(frozen=True)
class ImageMetadata:
    """What an image file says about itself: A1111 infotext, our JSON, other tools' chunks."""

    path: Path
    width: int
    height: int
    format: str
    parameters: str | None = None  # the raw A1111 infotext
    parsed: dict[str, str] = field(default_factory=dict)  # parse_infotext(parameters)
    stablenew: dict[str, Any] | None = None  # our JSON chunk
    other: dict[str, str] = field(default_factory=dict)  # ComfyUI prompt/workflow, InvokeAI...


class ImageMetadataError(ValueError):
    """An image whose metadata cannot be read; `message` is for users, `detail` for logs."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


_OTHER_KEYS = ("prompt", "workflow", "invokeai_metadata", "invokeai_workflow",
               "invokeai_graph", "fooocus_scheme", "sui_image_params")


def read_image_metadata(path: str | Path) -> ImageMetadata:
    """Read the text chunks (PNG) or EXIF UserComment (JPEG/WebP) without decoding pixels."""
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    try:
        with Image.open(file) as image:
            info = dict(image.info)
            width, height = image.size
            fmt = image.format or ""
            exif_comment = _exif_user_comment(image) if fmt in ("JPEG", "WEBP") else None
    except FileNotFoundError:
        raise ImageMetadataError(f"{file} does not exist.", detail=str(file)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageMetadataError(f"{file.name} is not an image StableNew can read.",
                                 detail=f"{file}: {exc!r}") from None
    parameters = info.get(PARAMETERS_KEY)
    if not isinstance(parameters, str):
        parameters = exif_comment
    ours = None
    raw = info.get(STABLENEW_KEY)
    if isinstance(raw, str):
        try:
            loaded = json.loads(raw)
            ours = loaded if isinstance(loaded, dict) else None
        except ValueError:
            ours = None
    other = {k: info[k] for k in _OTHER_KEYS if isinstance(info.get(k), str)}
    parsed = parse_infotext(parameters) if parameters and not parameters.lstrip().startswith("{") \
        else {}
    return ImageMetadata(file, width, height, fmt, parameters, parsed, ours, other)


def _exif_user_comment(image: Any) -> str | None:
    try:
        exif = image.getexif().get_ifd(0x8769)  # Exif IFD
        raw = exif.get(0x9286)  # UserComment
    except Exception:  # noqa: BLE001 - broken EXIF must not hide the rest of the metadata
        return None
    if isinstance(raw, bytes):
        head, body = raw[:8], raw[8:]
        if head.startswith(b"UNICODE"):
            for codec in ("utf-16-be", "utf-16-le"):
                try:
                    return body.decode(codec)
                except UnicodeDecodeError:
                    continue
        return body.decode("utf-8", "replace")
    return raw if isinstance(raw, str) else None


# --- infotext -> config -------------------------------------------------------------------

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
            if suffix in _ORDINALS:
                return _ORDINALS.index(suffix), name
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
