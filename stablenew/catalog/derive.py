"""Derived fields of a catalog entry: base model, trigger words, tags, weight, names, preview.

The precedence rules are the issue's (and A1111's where it has one): the file's own header
decides the architecture and a sidecar may only narrow SDXL to Pony or Illustrious; trigger
words come from the user's activation text, then modelspec, then CivitAI; training tags are
tags, never triggers.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path, PurePath

from stablenew.catalog.entry import BaseModel, ModelEntry, ModelKind
from stablenew.catalog.safetensors import SafetensorsHeader
from stablenew.catalog.sidecars import Sidecars

#: A1111's preview order (`find_preview`): for each extension, `<n>.<ext>` then `<n>.preview.<ext>`.
PREVIEW_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")
#: Training tags kept per LoRA (the most frequent first): enough to match, small to cache.
MAX_TRAINING_TAGS = 20
#: Folder and tag names taken as a category when the LoRA sits in no sub-folder.
KNOWN_CATEGORIES = ("character", "style", "concept", "clothing", "pose", "background", "detail",
                    "tool", "object", "vehicle", "animal", "celebrity")
_DESCRIPTION_CHARS = 600
_HTML_TAG = re.compile(r"<[^>]+>")


def base_from_header(header: SafetensorsHeader) -> tuple[BaseModel, str]:
    """The architecture the header states, with where it was read; unknown when it says nothing."""
    meta = header.metadata
    arch = meta.get("modelspec.architecture", "").lower()
    if arch:
        found = _from_architecture(arch)
        if found is not BaseModel.unknown:
            return found, "its header (modelspec.architecture)"
    version = meta.get("ss_base_model_version", "").lower()
    if version:
        found = _from_kohya_version(version)
        if found is not BaseModel.unknown:
            return found, "its header (ss_base_model_version)"
    if meta.get("ss_v2", "").lower() == "true":
        return BaseModel.sd2, "its header (ss_v2)"
    found = base_from_tensor_names(header.tensor_names)
    if found is not BaseModel.unknown:
        return found, "its tensor names"
    return BaseModel.unknown, ""


def _from_architecture(arch: str) -> BaseModel:
    if "flux" in arch:
        return BaseModel.flux
    if "stable-diffusion-xl" in arch or "sdxl" in arch:
        return BaseModel.sdxl
    if "stable-diffusion-v3" in arch or "stable-diffusion-3" in arch or arch.startswith("sd3"):
        return BaseModel.sd3
    if "stable-diffusion-v2" in arch:
        return BaseModel.sd2
    if "stable-diffusion-v1" in arch:
        return BaseModel.sd1
    return BaseModel.unknown


def _from_kohya_version(version: str) -> BaseModel:
    if version.startswith("sdxl"):
        return BaseModel.sdxl
    if version.startswith("flux"):
        return BaseModel.flux
    if version.startswith("sd3"):
        return BaseModel.sd3
    if version.startswith(("sd_v2", "sd_2", "v2")):
        return BaseModel.sd2
    if version.startswith(("sd_v1", "sd_1", "v1")):
        return BaseModel.sd1
    return BaseModel.unknown


def base_from_tensor_names(names: tuple[str, ...] | list[str]) -> BaseModel:
    """Tell the family from tensor names alone (kohya, diffusers and checkpoint layouts)."""
    te1 = te_single = unet_input = unet_down = False
    for name in names:
        if "double_blocks" in name or "single_blocks" in name or "single_transformer_blocks" in name:
            return BaseModel.flux
        if "joint_blocks" in name:
            return BaseModel.sd3
        if (name.startswith(("lora_te2_", "conditioner.embedders.1")) or "text_encoder_2" in name
                or "add_embedding" in name or "label_emb" in name):
            return BaseModel.sdxl
        if name.startswith("cond_stage_model.model."):
            return BaseModel.sd2
        te1 = te1 or name.startswith("lora_te1_")
        te_single = te_single or name.startswith(("lora_te_", "cond_stage_model.transformer"))
        unet_input = unet_input or "input_blocks" in name
        unet_down = unet_down or "down_blocks" in name
    if te1:
        return BaseModel.sdxl
    if te_single or unet_down or unet_input:
        return BaseModel.sd1
    return BaseModel.unknown


def base_from_label(label: str | None) -> BaseModel:
    """A base-model label a sidecar wrote (CivitAI "SDXL 1.0", "Pony", A1111 "SD1") as a family."""
    t = (label or "").lower().replace(" ", "").replace(".", "").replace("-", "")
    if not t:
        return BaseModel.unknown
    if "pony" in t:
        return BaseModel.pony
    if "illustrious" in t or "noobai" in t:
        return BaseModel.illustrious
    if "flux" in t:
        return BaseModel.flux
    if "sdxl" in t or t.startswith("xl"):
        return BaseModel.sdxl
    if t.startswith(("sd3", "stablediffusion3")):
        return BaseModel.sd3
    if t.startswith(("sd2", "sdv2")):
        return BaseModel.sd2
    if t.startswith(("sd1", "sdv1")):
        return BaseModel.sd1
    return BaseModel.unknown


def decide_base(header_base: BaseModel, header_from: str, side: Sidecars
                ) -> tuple[BaseModel, str, str | None]:
    """(base, where from, a problem) after the sidecars had their say."""
    labels = [("its A1111 settings (sd version)", side.sd_version),
              ("its CivitAI information", side.civitai_base_model),
              ("its Lora Manager information", side.manager_base_model)]
    said = [(src, base_from_label(text), text) for src, text in labels
            if base_from_label(text) is not BaseModel.unknown]
    if header_base is BaseModel.unknown:
        if said:
            return said[0][1], said[0][0], None
        return BaseModel.unknown, "", None
    for src, base, _text in said:
        if header_base is BaseModel.sdxl and base in (BaseModel.pony, BaseModel.illustrious):
            return base, f"{header_from}, narrowed by {src}", None
    clash = next(((src, text) for src, base, text in said if base.family is not header_base.family), None)
    problem = None
    if clash:
        source = clash[0].removeprefix("its ")
        problem = (f"{source[:1].upper()}{source[1:]} says '{clash[1]}' but the file's header "
                   f"says {header_base.value}; the header wins.")
    return header_base, header_from, problem


def split_words(text: str | None) -> list[str]:
    """'a, b ,c' -> ['a', 'b', 'c'] (activation texts and trigger phrases are comma lists)."""
    return [w.strip() for w in (text or "").split(",") if w.strip()]


def _unique(words: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for w in words:
        key = w.lower()
        if key not in seen:
            seen.add(key)
            out.append(w)
    return out


def training_tags(meta: dict[str, str], problems: list[str]) -> list[str]:
    """The most frequent tags of the training captions (`ss_tag_frequency`)."""
    raw = meta.get("ss_tag_frequency")
    if not raw:
        return []
    try:
        data = json.loads(raw)
        counts: Counter[str] = Counter()
        for folder in data.values():
            for tag, n in folder.items():
                counts[str(tag).strip()] += int(n)
    except (ValueError, TypeError, AttributeError):
        problems.append("Its training tag list (ss_tag_frequency) cannot be read; ignored.")
        return []
    ranked = sorted(((-n, tag) for tag, n in counts.items() if tag), key=lambda p: p)
    return [tag for _n, tag in ranked[:MAX_TRAINING_TAGS]]


_WEIGHT_HINT = re.compile(r"(?:weight|strength)\D{0,12}?(-?\d+(?:\.\d+)?)", re.IGNORECASE)


def weight_from_hint(hint: str | None) -> float | None:
    """A weight out of modelspec.usage_hint text ("use at weight 0.7")."""
    m = _WEIGHT_HINT.search(hint or "")
    if not m:
        return None
    value = float(m.group(1))
    return value if -5 <= value <= 5 and value != 0 else None


def find_preview(folder: Path, stem: str, present: set[str] | frozenset[str], problems: list[str]
                 ) -> str | None:
    """The first real image among the preview names A1111 looks for; others are noted, skipped."""
    for ext in PREVIEW_EXTENSIONS:
        for name in (f"{stem}.{ext}", f"{stem}.preview.{ext}"):
            if name not in present:
                continue
            if is_image(folder / name):
                return str(folder / name)
            problems.append(f"{name} is not an image; not used as the preview.")
    return None


def is_image(path: Path) -> bool:
    """Whether the file starts like a PNG, JPEG, WebP or GIF (a cheap check, 12 bytes)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    return (head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff")
            or head.startswith((b"GIF87a", b"GIF89a")) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"))


def category_of(relative_folder: str, tags: list[str]) -> str:
    """The first sub-folder under the scanned root, else a well-known category among the tags."""
    if relative_folder and relative_folder != ".":
        return relative_folder.split("/")[0]
    lowered = {t.lower() for t in tags}
    return next((c for c in KNOWN_CATEGORIES if c in lowered), "")


def _plain(text: str | None) -> str:
    text = _HTML_TAG.sub(" ", text or "")
    return " ".join(text.split())[:_DESCRIPTION_CHARS]


def build_entry(kind: ModelKind, path: PurePath, relative_folder: str, header: SafetensorsHeader | None,
                header_problem: str | None, side: Sidecars, preview: str | None,
                problems: list[str], size: int, mtime_ns: int) -> ModelEntry:
    """Merge header, sidecars and preview into one entry with the precedence rules above."""
    stem = path.stem
    meta = header.metadata if header else {}
    problems = list(problems)
    if header_problem:
        problems.insert(0, header_problem)
    problems += side.problems
    header_base, header_from = base_from_header(header) if header else (BaseModel.unknown, "")
    base, base_from, clash = decide_base(header_base, header_from, side)
    if clash:
        problems.append(clash)

    triggers: list[str] = []
    triggers_from = ""
    if kind is ModelKind.lora:
        for source, words in (("your activation text", split_words(side.activation_text)),
                              ("its header (modelspec.trigger_phrase)",
                               split_words(meta.get("modelspec.trigger_phrase"))),
                              ("CivitAI's trained words",
                               [w for t in side.trained_words or [] for w in split_words(t)])):
            if words:
                triggers, triggers_from = _unique(words), source
                break

    tags = _unique(split_words(meta.get("modelspec.tags")) + side.manager_tags + side.civitai_tags
                   + training_tags(meta, problems))
    weight = side.preferred_weight or side.usage_weight or weight_from_hint(meta.get("modelspec.usage_hint"))
    alias = meta.get("ss_output_name", "").strip() or stem
    display = (meta.get("modelspec.title", "").strip() or side.civitai_model_name
               or meta.get("ss_output_name", "").strip() or stem)
    description = _plain(side.description or side.civitai_description or meta.get("modelspec.description")
                         or side.notes)
    return ModelEntry(
        kind=kind, path=str(path), name=stem, alias=alias, display_name=display, base_model=base,
        base_model_from=base_from, triggers=triggers, triggers_from=triggers_from, weight=weight,
        preview=preview, category=category_of(relative_folder, tags), tags=tags, description=description,
        favorite=side.favorite, nsfw=side.nsfw, size=size, mtime_ns=mtime_ns,
        readable=header is not None, problems=problems,
        # A1111 takes the embedded hash as it is, even when a later edit made it stale.
        lora_hash=(meta.get("sshs_model_hash") or None) if kind is ModelKind.lora else None)
