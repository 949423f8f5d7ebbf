"""Truth about what ran: compare the WebUI's `info` with what we asked for.

A1111 falls back silently on unknown sampler names, drops an unknown checkpoint override and
swallows ADetailer failures; Forge runs the hires pass at CFG 1 unless told otherwise. Each
difference found here becomes one plain warning that names the setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from stablenew.backends.a1111_families import hires_cfg_for
from stablenew.backends.types import (
    ADetailerPass,
    BackendKind,
    RanWith,
    Sampling,
    Txt2ImgJob,
    UpscaleJob,
)

_PAIR = re.compile(r"""\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)""")
_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]$")
_ORDINALS = ("", " 2nd", " 3rd", " 4th", " 5th", " 6th", " 7th", " 8th")


def infotext_params(text: str) -> dict[str, str]:
    """The key/value pairs of an infotext's last line (A1111 needs at least 3 to call it params)."""
    last = text.strip().rsplit("\n", 1)[-1] if text else ""
    pairs = _PAIR.findall(last)
    if len(pairs) < 3:
        return {}
    out: dict[str, str] = {}
    for key, value in pairs:
        value = value.strip()
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out


def checkpoint_key(name: str) -> str:
    """Normalise a checkpoint title/filename/model_name ("SD15/a.safetensors [hash]" and
    "SD15_a" both become "sd15_a") so they compare equal."""
    name = _HASH_SUFFIX.sub("", name.strip())
    for ext in (".safetensors", ".ckpt", ".pt", ".pth", ".gguf", ".sft"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return name.replace("\\", "_").replace("/", "_").lower()


def same_checkpoint(asked: str, used: str) -> bool:
    """True when `used` (the server's model_name) is the checkpoint `asked` names; a bare stem
    matches a model in a subfolder."""
    a, u = checkpoint_key(asked), checkpoint_key(used)
    return a == u or u.endswith("_" + a) or a.endswith("_" + u)


def _norm(label: str) -> str:
    return label.strip().lower().replace("_", " ")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Expectation(NamedTuple):
    """What one job asked for, in the terms the server's `info` reports."""

    sampling: Sampling
    images: int  # how many images the job asked for
    sizes: tuple[int, int]  # the size every returned image should have
    check_seeds: bool = True
    hires_cfg: float | None = None  # Forge only: the CFG the hires pass should have used
    adetailer: Sequence[ADetailerPass] = ()


def compare(expect: Expectation, info: dict[str, Any], image_sizes: Sequence[tuple[int, int]],
            infotexts: Sequence[str]) -> list[str]:
    """Plain warnings for every difference between what was asked and what ran."""
    s = expect.sampling
    warnings: list[str] = []
    params = infotext_params(infotexts[0]) if infotexts else {}
    extra = info.get("extra_generation_params") or {}

    used_sampler = info.get("sampler_name")
    used_schedule = str(extra.get("Schedule type") or params.get("Schedule type") or "Automatic")
    if isinstance(used_sampler, str) and s.sampler:
        asked = _norm(s.sampler)
        if asked not in (_norm(used_sampler), _norm(f"{used_sampler} {used_schedule}")):
            warnings.append(f"Sampler: asked for '{s.sampler}', the server used '{used_sampler}' "
                            "(unknown sampler names fall back silently).")
    if s.scheduler and _norm(s.scheduler) != "automatic" and (params or "Schedule type" in extra):
        if _norm(s.scheduler) != _norm(used_schedule):
            warnings.append(f"Schedule type: asked for '{s.scheduler}', the server used '{used_schedule}' "
                            "(unknown schedule types fall back silently).")

    used_model = info.get("sd_model_name")
    if s.checkpoint and isinstance(used_model, str) and used_model:
        if not same_checkpoint(s.checkpoint, used_model):
            warnings.append(f"Checkpoint: asked for '{s.checkpoint}', the server used '{used_model}' "
                            "(a checkpoint name the server does not know is ignored silently).")

    clip = info.get("clip_skip")
    if isinstance(clip, int) and clip != max(1, s.clip_skip):
        warnings.append(f"Clip skip: asked for {s.clip_skip}, the server used {clip}.")

    if len(image_sizes) != expect.images:
        warnings.append(f"Images: asked for {expect.images}, the server returned {len(image_sizes)} "
                        "(a skip or an interrupt from someone else on the server stops a batch early).")

    seeds = info.get("all_seeds")
    if expect.check_seeds and isinstance(seeds, list) and seeds:
        wanted = [s.seed + i for i in range(len(seeds))]
        if seeds != wanted:
            warnings.append(f"Seeds: asked for {_seed_text(wanted)}, the server used {_seed_text(seeds)}.")

    wrong = sorted({size for size in image_sizes if size != expect.sizes})
    if wrong:
        got = ", ".join(f"{w}x{h}" for w, h in wrong)
        warnings.append(f"Size: asked for {expect.sizes[0]}x{expect.sizes[1]}, the server returned {got}.")

    if expect.hires_cfg is not None and params:
        used_cfg = _number(params.get("Hires CFG Scale"))
        if used_cfg is not None and abs(used_cfg - expect.hires_cfg) > 1e-6:
            warnings.append(f"Hires CFG scale: asked for {expect.hires_cfg:g}, the server used {used_cfg:g}"
                            + (" (at CFG 1 the hires pass ignores the negative prompt)." if used_cfg == 1
                               else "."))

    if expect.adetailer:
        for i, ad in enumerate(expect.adetailer):
            if not ad.enabled:
                continue  # ADetailer writes no keys for a tab it skips; later tabs keep theirs
            key = f"ADetailer model{_ORDINALS[i] if i < len(_ORDINALS) else f' {i + 1}th'}"
            used = params.get(key) or extra.get(key)
            if used is None:
                warnings.append(
                    f"ADetailer: pass {i + 1} with '{ad.model}' did not run (the infotext has no "
                    f"'{key}'); the model may be missing on the server or the extension failed.")
            elif used != ad.model:
                warnings.append(f"ADetailer: pass {i + 1} asked for '{ad.model}', the server used '{used}'.")
    return warnings


def _seed_text(seeds: Sequence[int]) -> str:
    if len(seeds) == 1:
        return str(seeds[0])
    if len(seeds) <= 4:
        return ", ".join(str(x) for x in seeds)
    return f"{seeds[0]}, {seeds[1]}, … {seeds[-1]}"


def txt2img_expectation(job: Txt2ImgJob, kind: BackendKind) -> Expectation:
    """What a txt2img job should come back as: hires fix changes the size, and Forge's hires
    pass has a CFG of its own."""
    s = job.sampling
    size = (s.width, s.height)
    if job.hires is not None:
        size = hires_size(s.width, s.height, job.hires.scale, job.hires.resize_width,
                          job.hires.resize_height)
    hires_cfg = None
    if job.hires is not None and kind == BackendKind.forge:
        hires_cfg = hires_cfg_for(s, job.hires.cfg_scale)
    return Expectation(s, job.batch_size, size, hires_cfg=hires_cfg)


def upscale_warnings(job: UpscaleJob, source: tuple[int, int], size: tuple[int, int]
                     ) -> list[str]:
    """A warning when the upscaled image of *source*'s size is not the size asked for."""
    if job.target_width > 0 and job.target_height > 0:
        expected = (job.target_width, job.target_height)
    else:
        expected = (int(source[0] * job.scale), int(source[1] * job.scale))
    if size == expected:
        return []
    return [f"Size: asked for {expected[0]}x{expected[1]}, the server returned {size[0]}x{size[1]}."]


def ran_with(info: dict[str, Any]) -> RanWith:
    """What the job ran with, from `info` (A1111 replaces what it does not know silently)."""
    extra = info.get("extra_generation_params")
    schedule = extra.get("Schedule type") if isinstance(extra, dict) else None

    def text(value: Any) -> str:
        return value if isinstance(value, str) else ""

    return RanWith(checkpoint=text(info.get("sd_model_name")),
                   model_hash=text(info.get("sd_model_hash")),
                   sampler=text(info.get("sampler_name")), scheduler=text(schedule))


def hires_size(width: int, height: int, scale: float, rx: int, ry: int) -> tuple[int, int]:
    """The hires output size: A1111's target (`calculate_target_resolution`), floored to a
    multiple of 8 because the second pass runs on a latent an eighth of that size
    (512 at scale 1.3: target 665, image 664)."""
    if rx <= 0 and ry <= 0:
        w, h = int(width * scale), int(height * scale)
    elif rx <= 0:
        w, h = ry * width // height, ry
    elif ry <= 0:
        w, h = rx, rx * height // width
    else:
        w, h = rx, ry
    return w // 8 * 8, h // 8 * 8
