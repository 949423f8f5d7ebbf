"""Reading one `/api/v1/images` item: its settings and LoRAs, whatever tool made the image.

The `meta` keys differ by tool: A1111 images carry `resources` and `hashes` ("lora:<name>"),
CivitAI's generator `civitaiResources` (version ids, no names), ComfyUI uploads sometimes only
`additionalResources`; the item itself lists `modelVersionIds`. A key that is missing, null or
of an odd type is skipped with a reason in `notes`, never a crash. The same LoRA named by
several of these is one `LoraRef` (the first weight found wins, a later source fills in a
hash or version id the earlier one lacked).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from stablenew.backends.lora_tags import lora_tags
from stablenew.community.client import PG, PG13, XXX, R, X

#: Resource types that are LoRAs (CivitAI spells them several ways).
LORA_TYPES = frozenset({"lora", "locon", "lycoris", "dora"})
CHECKPOINT_TYPES = frozenset({"model", "checkpoint"})
_AIR_VERSION = re.compile(r"@(\d+)\s*$")
_SIZE = re.compile(r"^\s*(\d{2,5})\s*[x×]\s*(\d{2,5})\s*$")
#: The older `nsfwLevel` words, as browsing-level bits.
_NSFW_WORDS = {"none": PG, "soft": PG13, "mature": R, "x": X, "xxx": XXX}


@dataclass(frozen=True)
class LoraRef:
    """One LoRA an image was made with, as the image names it (any of the fields may be empty)."""

    name: str = ""
    weight: float | None = None
    #: Lower-case hex as the image gives it: AutoV3 for A1111's `Lora hashes`, or longer.
    hash: str = ""
    version_id: int | None = None
    #: Where it was read: "resources", "hashes", "Lora hashes", "civitaiResources",
    #: "additionalResources", "prompt".
    source: str = ""

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.version_id is not None:
            return f"model version {self.version_id}"
        return f"hash {self.hash}" if self.hash else "an unnamed LoRA"


@dataclass(frozen=True)
class Stats:
    """The reactions and comments an image got."""

    likes: int = 0
    hearts: int = 0
    laughs: int = 0
    cries: int = 0
    dislikes: int = 0
    comments: int = 0
    collected: int = 0

    @property
    def reactions(self) -> int:
        return self.likes + self.hearts + self.laughs + self.cries

    @property
    def engagement(self) -> int:
        """What a reroll weighted by engagement draws by: reactions, comments, collections."""
        return self.reactions + self.comments + self.collected


@dataclass(frozen=True)
class CommunityImage:
    """One community image with the settings and LoRAs it was made with."""

    id: int
    url: str = ""
    width: int = 0
    height: int = 0
    #: Browsing-level bit (1 PG … 16 XXX); 0 when the item did not say.
    level: int = 0
    base_model: str = ""
    username: str = ""
    created_at: str = ""
    post_id: int | None = None
    stats: Stats = field(default_factory=Stats)
    has_meta: bool = False
    prompt: str = ""
    negative: str = ""
    seed: int | None = None
    steps: int | None = None
    sampler: str = ""
    cfg_scale: float | None = None
    clip_skip: int | None = None
    size: tuple[int, int] | None = None
    checkpoint: str = ""
    checkpoint_hash: str = ""
    loras: tuple[LoraRef, ...] = ()
    #: The item's `modelVersionIds` no resource above accounts for (a checkpoint, a LoRA, an
    #: embedding: only a look-up can tell).
    other_versions: tuple[int, ...] = ()
    #: What was skipped and why ("meta is null: the site sent no settings").
    notes: tuple[str, ...] = ()

    def page_url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/images/{self.id}"


def parse_items(items: Any) -> tuple[list[CommunityImage], list[str]]:
    """Every readable image of a page's `items`, plus why each unreadable one was skipped."""
    images: list[CommunityImage] = []
    skipped: list[str] = []
    if not isinstance(items, list):
        return images, [f"the image list is a {type(items).__name__}, not a list"]
    seen: set[int] = set()
    for index, item in enumerate(items):
        image, reason = parse_item(item)
        if image is None:
            skipped.append(f"item {index + 1}: {reason}")
        elif image.id in seen:
            skipped.append(f"image {image.id}: listed twice, kept once")
        else:
            seen.add(image.id)
            images.append(image)
    return images, skipped


def parse_item(item: Any) -> tuple[CommunityImage | None, str]:
    """One image, or None and the reason it cannot be used at all (no id)."""
    if not isinstance(item, dict):
        return None, f"not an object ({type(item).__name__})"
    image_id = _int(item.get("id"))
    if image_id is None:
        return None, "it has no id"
    notes: list[str] = []
    meta = item.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("meta"), dict) and "prompt" not in meta:
        meta = meta["meta"]  # some answers nest the generation settings one level down
    if meta is None:
        notes.append("meta is null: the site sent no settings (asked without withMeta=true, or "
                     "the author hid them)")
        meta = {}
    elif not isinstance(meta, dict):
        notes.append(f"meta is a {type(meta).__name__}, not an object: ignored")
        meta = {}
    loras = _loras(meta, notes)
    checkpoint, checkpoint_hash = _checkpoint(meta)
    versions = [v for v in (_int(x) for x in _list(item.get("modelVersionIds"), "modelVersionIds", notes))
                if v is not None]
    known = {ref.version_id for ref in loras}
    width, height = _int(item.get("width")) or 0, _int(item.get("height")) or 0
    image = CommunityImage(
        id=image_id,
        url=_text(item.get("url")),
        width=width,
        height=height,
        level=_level(item),
        base_model=_text(item.get("baseModel")) or _text(meta.get("baseModel")),
        username=_text(item.get("username")),
        created_at=_text(item.get("createdAt")),
        post_id=_int(item.get("postId")),
        stats=_stats(item.get("stats")),
        has_meta=bool(meta),
        prompt=_field(meta, "prompt", str, notes) or "",
        negative=_field(meta, "negativePrompt", str, notes) or "",
        seed=_number(meta, "seed", int, notes),
        steps=_number(meta, "steps", int, notes),
        sampler=_field(meta, "sampler", str, notes) or "",
        cfg_scale=_number(meta, "cfgScale", float, notes),
        clip_skip=_number(meta, "clipSkip", int, notes) or _number(meta, "Clip skip", int, notes),
        size=_size(meta.get("Size"), notes) or ((width, height) if width and height else None),
        checkpoint=checkpoint,
        checkpoint_hash=checkpoint_hash,
        loras=tuple(loras),
        other_versions=tuple(dict.fromkeys(v for v in versions if v not in known)),
        notes=tuple(notes),
    )
    return image, ""


# --- LoRAs -----------------------------------------------------------------------------------


class _Loras:
    """LoRAs gathered from several keys, the same one merged by name, hash or version id."""

    def __init__(self) -> None:
        self.refs: list[LoraRef] = []

    def add(self, ref: LoraRef) -> None:
        for i, old in enumerate(self.refs):
            if _same(old, ref):
                self.refs[i] = replace(
                    old, name=old.name or ref.name, hash=old.hash or ref.hash,
                    version_id=old.version_id if old.version_id is not None else ref.version_id,
                    weight=old.weight if old.weight is not None else ref.weight)
                return
        self.refs.append(ref)


def _same(a: LoraRef, b: LoraRef) -> bool:
    if a.name and b.name and _name_key(a.name) == _name_key(b.name):
        return True
    if a.hash and b.hash and (a.hash.startswith(b.hash) or b.hash.startswith(a.hash)):
        return True
    return a.version_id is not None and a.version_id == b.version_id


def _name_key(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base.lower().endswith((".safetensors", ".pt", ".ckpt")):
        base = base.rsplit(".", 1)[0]
    return base.strip().lower()


def _loras(meta: dict[str, Any], notes: list[str]) -> list[LoraRef]:
    found = _Loras()
    prompt_weights = _prompt_weights(meta.get("prompt"))
    for entry in _list(meta.get("resources"), "resources", notes):
        if not isinstance(entry, dict):
            notes.append(f"a resource is a {type(entry).__name__}, not an object: skipped")
            continue
        if _text(entry.get("type")).lower() not in LORA_TYPES:
            continue
        name = _text(entry.get("name"))
        weight = _float(entry.get("weight"))
        found.add(LoraRef(name, weight if weight is not None else prompt_weights.get(_name_key(name)),
                          _hash(entry.get("hash")), None, "resources"))
    hashes = meta.get("hashes")
    if isinstance(hashes, dict):
        for key, value in hashes.items():
            if isinstance(key, str) and key.lower().startswith(("lora:", "lyco:")):
                name = key.split(":", 1)[1]
                found.add(LoraRef(name, prompt_weights.get(_name_key(name)), _hash(value), None, "hashes"))
    elif hashes is not None:
        notes.append(f"meta.hashes is a {type(hashes).__name__}, not an object: skipped")
    # Images uploaded from A1111 often keep its infotext line as it was: "name: hash, name: hash".
    lora_hashes = meta.get("Lora hashes")
    if isinstance(lora_hashes, str):
        for part in lora_hashes.strip().strip('"').split(","):
            name, sep, value = part.rpartition(":")
            if sep and name.strip() and _hash(value):
                found.add(LoraRef(name.strip(), prompt_weights.get(_name_key(name)), _hash(value), None,
                                  "Lora hashes"))
    elif lora_hashes is not None:
        notes.append(f"meta.Lora hashes is a {type(lora_hashes).__name__}, not text: skipped")
    for entry in _list(meta.get("civitaiResources"), "civitaiResources", notes):
        if not isinstance(entry, dict):
            notes.append(f"a civitaiResource is a {type(entry).__name__}, not an object: skipped")
            continue
        if _text(entry.get("type")).lower() not in LORA_TYPES:
            continue
        version = _int(entry.get("modelVersionId"))
        if version is None:
            notes.append("a civitaiResource LoRA has no modelVersionId: skipped")
            continue
        # Its `modelVersionName` names the version ("v1.0"), not the LoRA: only a look-up can.
        found.add(LoraRef("", _float(entry.get("weight")), "", version, "civitaiResources"))
    for entry in _list(meta.get("additionalResources"), "additionalResources", notes):
        if not isinstance(entry, dict):
            notes.append(f"an additionalResource is a {type(entry).__name__}, not an object: skipped")
            continue
        if _text(entry.get("type")).lower() not in LORA_TYPES:
            continue
        name = _text(entry.get("name"))
        air = _AIR_VERSION.search(name) if name.startswith("urn:air:") else None
        weight = _float(entry.get("strength"))
        if weight is None:
            weight = _float(entry.get("weight"))
        found.add(LoraRef("" if air else name, weight, "", int(air.group(1)) if air else None,
                          "additionalResources"))
    # A1111 writes every LoRA into the prompt too; one the lists above missed still counts.
    for name, weight in prompt_weights.items():
        if not any(_name_key(r.name) == name for r in found.refs):
            found.add(LoraRef(_prompt_names(meta.get("prompt")).get(name, name), weight, "", None, "prompt"))
    return found.refs


def _prompt_weights(prompt: Any) -> dict[str, float | None]:
    if not isinstance(prompt, str):
        return {}
    out: dict[str, float | None] = {}
    for tag in lora_tags(prompt):
        out.setdefault(_name_key(tag.name), tag.te)
    return out


def _prompt_names(prompt: Any) -> dict[str, str]:
    if not isinstance(prompt, str):
        return {}
    return {_name_key(tag.name): tag.name for tag in lora_tags(prompt)}


def _checkpoint(meta: dict[str, Any]) -> tuple[str, str]:
    name = _text(meta.get("Model"))
    file_hash = _hash(meta.get("Model hash"))
    resources = meta.get("resources")
    for entry in resources if isinstance(resources, list) else []:
        if isinstance(entry, dict) and _text(entry.get("type")).lower() in CHECKPOINT_TYPES:
            name = name or _text(entry.get("name"))
            file_hash = file_hash or _hash(entry.get("hash"))
    hashes = meta.get("hashes")
    if isinstance(hashes, dict):
        file_hash = file_hash or _hash(hashes.get("model"))
    return name, file_hash


# --- small readers ---------------------------------------------------------------------------


def _list(value: Any, key: str, notes: list[str]) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    notes.append(f"meta.{key} is a {type(value).__name__}, not a list: skipped")
    return []


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _hash(value: Any) -> str:
    text = _text(value).lower()
    return text if text and all(c in "0123456789abcdef" for c in text) else ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _field(meta: dict[str, Any], key: str, kind: type[str], notes: list[str]) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, kind):
        return value.strip()
    notes.append(f"meta.{key} is a {type(value).__name__}, not text: skipped")
    return None


def _number(meta: dict[str, Any], key: str, kind: type[int] | type[float], notes: list[str]
            ) -> Any:
    value = meta.get(key)
    if value is None:
        return None
    number = _int(value) if kind is int else _float(value)
    if number is None:
        notes.append(f"meta.{key} is {value!r}, not a number: skipped")
    return number


def _size(value: Any, notes: list[str]) -> tuple[int, int] | None:
    if value is None:
        return None
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        notes.append(f"meta.Size is {value!r}, not WIDTHxHEIGHT: skipped")
        return None
    return int(match.group(1)), int(match.group(2))


def _stats(value: Any) -> Stats:
    if not isinstance(value, dict):
        return Stats()

    def count(key: str) -> int:
        number = _int(value.get(key))
        return number if number is not None and number > 0 else 0

    return Stats(count("likeCount"), count("heartCount"), count("laughCount"), count("cryCount"),
                 count("dislikeCount"), count("commentCount"), count("collectedCount"))


def _level(item: dict[str, Any]) -> int:
    """The image's browsing-level bit, from `browsingLevel`, a numeric or worded `nsfwLevel`,
    or the old boolean `nsfw` (True counts as X: better hidden than shown by mistake)."""
    for key in ("browsingLevel", "nsfwLevel"):
        value = item.get(key)
        number = _int(value)
        if number is not None and number > 0:
            return number
        if isinstance(value, str) and value.strip().lower() in _NSFW_WORDS:
            return _NSFW_WORDS[value.strip().lower()]
    nsfw = item.get("nsfw")
    if isinstance(nsfw, bool):
        return X if nsfw else PG
    return 0
