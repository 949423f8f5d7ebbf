"""ImageFacts: what the gallery keeps about one image, read from ours and peers' metadata.

The chunks are read by `pipeline.infotext.read_image_metadata` (our `stablenew` JSON, A1111
`parameters`, EXIF UserComment, and the raw ComfyUI, InvokeAI and SwarmUI chunks); this module
turns each of those into the same few searchable facts. Anything odd in a chunk (bad JSON, a
wrong type, a graph without a sampler) leaves that fact empty rather than failing the image.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stablenew.backends.lora_tags import lora_names
from stablenew.gallery.sidecar import Marks
from stablenew.pipeline.infotext import ImageMetadataError, model_name, read_image_metadata

#: Longest prompt kept in the index: past this it is someone's pasted novel, not a prompt.
MAX_TEXT = 8_000
#: Largest JSON chunk (ComfyUI graph, InvokeAI metadata) parsed for facts.
MAX_JSON = 2_000_000
#: Bytes read from each end of a file for its content hash (see `content_hash`).
HASH_SPAN = 64 * 1024

MEDIA_TYPES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


@dataclass
class ImageFacts:
    """The searchable facts of one image (empty strings and None where the image says nothing)."""

    width: int = 0
    height: int = 0
    media: str = ""
    prompt: str = ""
    negative: str = ""
    model: str = ""
    loras: tuple[str, ...] = ()
    seed: int | None = None
    sampler: str = ""
    steps: int | None = None
    cfg: float | None = None
    pack: str = ""
    node: str = ""
    source: str = ""  # whose metadata: stablenew, a1111, comfyui, invokeai, swarmui, or ""
    marks: Marks = field(default_factory=Marks)  # from the sidecar, if the image has one


def content_hash(path: str | os.PathLike[str], size: int) -> str:
    """A hash of the file's size and its first and last 64 KiB.

    Enough to know a moved image again (a PNG's start holds its text chunks and first pixel
    rows), without reading whole multi-megabyte files for 100,000 images.
    """
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as file:
        digest.update(file.read(HASH_SPAN))
        if size > 2 * HASH_SPAN:
            file.seek(size - HASH_SPAN)
            digest.update(file.read(HASH_SPAN))
        elif size > HASH_SPAN:
            digest.update(file.read())
    return digest.hexdigest()


def read_facts(path: Path) -> ImageFacts:
    """The facts of the image at *path*; ImageMetadataError when it is not a readable image."""
    meta = read_image_metadata(path)
    facts = ImageFacts(width=meta.width, height=meta.height,
                       media=MEDIA_TYPES.get(path.suffix.lower(), meta.format.lower()))
    ours = meta.stablenew
    if isinstance(ours, dict) and _from_ours(facts, ours):
        pass
    elif meta.parsed:
        _from_a1111(facts, meta.parsed)
    elif meta.parameters and meta.parameters.lstrip().startswith("{"):
        _from_swarm(facts, _json(meta.parameters))
    elif "sui_image_params" in meta.other:
        _from_swarm(facts, {"sui_image_params": _json(meta.other["sui_image_params"])})
    elif "invokeai_metadata" in meta.other:
        _from_invoke(facts, _json(meta.other["invokeai_metadata"]))
    elif "prompt" in meta.other:
        _from_comfy(facts, _json(meta.other["prompt"]))
    facts.prompt = facts.prompt[:MAX_TEXT]
    facts.negative = facts.negative[:MAX_TEXT]
    if facts.prompt:
        found = lora_names(facts.prompt)
        facts.loras = tuple(dict.fromkeys([*facts.loras, *found]))
    facts.loras = tuple(n for n in facts.loras if n)[:64]
    return facts


__all__ = ["ImageFacts", "ImageMetadataError", "content_hash", "read_facts"]


def _json(text: str) -> Any:
    if len(text) > MAX_JSON:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if -(2**63) <= number < 2**63 else None


def _float(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) < 1e12 else None


def _from_ours(facts: ImageFacts, ours: dict[str, Any]) -> bool:
    config = ours.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("txt2img"), dict):
        return False
    t = config["txt2img"]
    facts.prompt = _str(t.get("prompt"))
    facts.negative = _str(t.get("negative_prompt"))
    facts.model = model_name(_str(t.get("checkpoint"))) or ""
    facts.sampler = _str(t.get("sampler"))
    facts.steps = _int(t.get("steps"))
    facts.cfg = _float(t.get("cfg_scale"))
    facts.seed = _int(ours.get("seed"))
    tags = ours.get("tags")
    facts.pack = _str(tags.get("pack")) if isinstance(tags, dict) else ""
    facts.node = _str(ours.get("node"))
    facts.source = "stablenew"
    return True


def _from_a1111(facts: ImageFacts, parsed: dict[str, str]) -> None:
    facts.prompt = parsed.get("Prompt", "")
    facts.negative = parsed.get("Negative prompt", "")
    facts.model = parsed.get("Model", "")
    facts.seed = _int(parsed.get("Seed"))
    facts.sampler = parsed.get("Sampler", "")
    facts.steps = _int(parsed.get("Steps"))
    facts.cfg = _float(parsed.get("CFG scale"))
    # "Lora hashes: \"name1: abc, name2: def\"" names LoRAs loaded by extensions, too.
    hashes = parsed.get("Lora hashes", "")
    facts.loras = tuple(part.split(":", 1)[0].strip() for part in hashes.split(",") if ":" in part)
    facts.source = "a1111"


def _from_swarm(facts: ImageFacts, data: Any) -> None:
    params = data.get("sui_image_params") if isinstance(data, dict) else None
    if not isinstance(params, dict):
        return
    facts.prompt = _str(params.get("prompt"))
    facts.negative = _str(params.get("negativeprompt"))
    facts.model = model_name(_str(params.get("model"))) or ""
    facts.seed = _int(params.get("seed"))
    facts.sampler = _str(params.get("sampler"))
    facts.steps = _int(params.get("steps"))
    facts.cfg = _float(params.get("cfgscale"))
    loras = params.get("loras")
    if isinstance(loras, list):
        facts.loras = tuple(model_name(_str(n)) or "" for n in loras)
    facts.source = "swarmui"


def _from_invoke(facts: ImageFacts, data: Any) -> None:
    if not isinstance(data, dict):
        return
    facts.prompt = _str(data.get("positive_prompt"))
    facts.negative = _str(data.get("negative_prompt"))
    model = data.get("model")
    if isinstance(model, dict):
        facts.model = _str(model.get("name") or model.get("model_name"))
    facts.seed = _int(data.get("seed"))
    facts.sampler = _str(data.get("scheduler"))
    facts.steps = _int(data.get("steps"))
    facts.cfg = _float(data.get("cfg_scale"))
    names = []
    for entry in data.get("loras") or []:
        if isinstance(entry, dict):
            inner = entry.get("model") or entry.get("lora")
            if isinstance(inner, dict):
                names.append(_str(inner.get("name") or inner.get("model_name")))
    facts.loras = tuple(names)
    facts.source = "invokeai"


_COMFY_SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom")


def _from_comfy(facts: ImageFacts, graph: Any) -> None:
    """ComfyUI's API graph: the first sampler's settings and the text its conditionings trace to."""
    if not isinstance(graph, dict):
        return
    nodes = {k: v for k, v in graph.items() if isinstance(v, dict)}
    loras = []
    for node in nodes.values():
        inputs = _inputs(node)
        kind = _str(node.get("class_type"))
        if kind.startswith("CheckpointLoader") and not facts.model:
            facts.model = model_name(_str(inputs.get("ckpt_name"))) or ""
        elif kind.startswith("LoraLoader"):
            loras.append(model_name(_str(inputs.get("lora_name"))) or "")
    facts.loras = tuple(loras)
    for node in nodes.values():
        if _str(node.get("class_type")) not in _COMFY_SAMPLERS:
            continue
        inputs = _inputs(node)
        facts.seed = _int(inputs.get("seed", inputs.get("noise_seed")))
        facts.steps = _int(inputs.get("steps"))
        facts.cfg = _float(inputs.get("cfg"))
        facts.sampler = _str(inputs.get("sampler_name"))
        facts.prompt = _comfy_text(nodes, inputs.get("positive"))
        facts.negative = _comfy_text(nodes, inputs.get("negative"))
        break
    facts.source = "comfyui"


def _inputs(node: dict[str, Any]) -> dict[str, Any]:
    inputs = node.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def _comfy_text(nodes: dict[str, Any], link: Any, depth: int = 0) -> str:
    """Follow a conditioning link back to the text encoder that wrote it (a few hops at most)."""
    if depth > 8 or not isinstance(link, list) or not link:
        return ""
    node = nodes.get(str(link[0]))
    if not isinstance(node, dict):
        return ""
    inputs = _inputs(node)
    for key in ("text", "text_g", "prompt"):
        if isinstance(inputs.get(key), str):
            return inputs[key]
    for key in ("conditioning", "conditioning_1", "positive"):
        if isinstance(inputs.get(key), list):
            return _comfy_text(nodes, inputs[key], depth + 1)
    return ""
