"""Combos: a community image's LoRAs resolved against the local catalog, filtered, made a config.

A LoRA is found by hash first (AutoV3, A1111's short LoRA hash, as its `Lora hashes` write
it; a longer sha256 prefix also matches), then by name (file stem, alias or title). It is
*here* when the node Run goes to has it (or, before any node has answered, when the catalog
has it), *elsewhere* when only other nodes list it, else *missing*.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stablenew.backends.lora_tags import LORA_TAG
from stablenew.catalog.derive import base_from_label
from stablenew.catalog.entry import BaseModel, ModelEntry, ModelKind
from stablenew.catalog.index import Catalog
from stablenew.catalog.prompt import DEFAULT_WEIGHT, lora_token
from stablenew.community.client import SAFE_LEVEL
from stablenew.community.meta import CommunityImage, LoraRef
from stablenew.pipeline.config import PipelineConfig

_LORA_TAG = re.compile(rf"\s*{LORA_TAG.pattern}\s*,?", re.IGNORECASE)  # with its spacing and comma
_SCHEDULERS = ("SGM Uniform", "Polyexponential", "Exponential", "Karras", "Uniform")
_LEVEL_WORDS = {1: "PG", 2: "PG-13", 4: "R", 8: "X", 16: "XXX"}


class LoraState(StrEnum):
    """Whether a combo's LoRA can be used where Run goes."""

    here = "here"
    elsewhere = "elsewhere"  # only other nodes list it
    missing = "missing"


@dataclass(frozen=True)
class VersionInfo:
    """What CivitAI says about a model version (from a look-up by hash or id)."""

    version_id: int
    model_id: int | None
    name: str
    version_name: str = ""
    type: str = ""
    base_model: str = ""
    nsfw: bool = False
    file_name: str = ""
    size_kb: float = 0.0
    sha256: str = ""
    download_url: str = ""
    page_url: str = ""

    @property
    def size_bytes(self) -> int:
        return int(self.size_kb * 1024)

    @classmethod
    def from_api(cls, data: dict[str, Any], base_url: str) -> VersionInfo:
        """From `/model-versions/…`; the primary file (else the first) gives size and hash."""
        model = _object(data.get("model"))
        files = [f for f in data.get("files") or [] if isinstance(f, dict)]
        primary: dict[str, Any] = next((f for f in files if f.get("primary")), files[0] if files else {})
        hashes = _object(primary.get("hashes"))
        sha = next((str(v).lower() for k, v in hashes.items() if str(k).upper() == "SHA256"), "")
        version_id = int(data.get("id") or 0)
        model_id = data.get("modelId") if isinstance(data.get("modelId"), int) else None
        page = f"{base_url.rstrip('/')}/models/{model_id}?modelVersionId={version_id}" if model_id else ""
        size = primary.get("sizeKB")
        return cls(
            version_id=version_id, model_id=model_id,
            name=str(model.get("name") or data.get("name") or ""),
            version_name=str(data.get("name") or ""),
            type=str(model.get("type") or ""), base_model=str(data.get("baseModel") or ""),
            nsfw=model.get("nsfw") is True,
            file_name=str(primary.get("name") or ""),
            size_kb=float(size) if isinstance(size, (int, float)) and not isinstance(size, bool) else 0.0,
            sha256=sha,
            download_url=str(primary.get("downloadUrl") or data.get("downloadUrl") or ""),
            page_url=page)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class ResolvedLora:
    """One LoRA of a combo: the local entry it matched (and how), where it is, what CivitAI says."""

    ref: LoraRef
    entry: ModelEntry | None = None
    matched_by: str = ""
    state: LoraState = LoraState.missing
    nodes: tuple[str, ...] = ()
    info: VersionInfo | None = None

    @property
    def name(self) -> str:
        if self.entry is not None:
            return self.entry.display_name or self.entry.name
        if self.info is not None and self.info.name:
            return self.info.name
        return self.ref.label

    @property
    def weight(self) -> float:
        if self.ref.weight is not None:
            return self.ref.weight
        return self.entry.weight if self.entry is not None and self.entry.weight else DEFAULT_WEIGHT

    @property
    def nsfw(self) -> bool:
        return bool((self.entry is not None and self.entry.nsfw)
                    or (self.info is not None and self.info.nsfw))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "local_name": self.entry.name if self.entry else None,
                "weight": self.weight, "hash": self.ref.hash or None,
                "version_id": self.ref.version_id, "source": self.ref.source,
                "state": self.state.value, "matched_by": self.matched_by or None,
                "nodes": list(self.nodes), "nsfw": self.nsfw,
                "civitai": self.info.to_json() if self.info else None}


class LocalIndex:
    """The catalog's LoRAs and checkpoints by hash prefix (10, 12 and 64 hex digits)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._loras: dict[str, ModelEntry] = {}
        self._checkpoints: dict[str, ModelEntry] = {}
        for entry in catalog.entries:
            table = self._loras if entry.kind is ModelKind.lora else self._checkpoints
            hashes = [entry.lora_hash, entry.sha256] if entry.kind is ModelKind.lora else [entry.sha256]
            for full in hashes:
                if full:
                    for size in (10, 12, len(full)):
                        table.setdefault(full[:size].lower(), entry)

    def lora(self, ref: LoraRef, info: VersionInfo | None = None) -> tuple[ModelEntry | None, str]:
        """The local LoRA *ref* names, and in words how it was recognised."""
        for file_hash in (ref.hash, info.sha256 if info else ""):
            if file_hash and (entry := self._loras.get(file_hash.lower())) is not None:
                return entry, "its hash"
        for name in (ref.name, info.file_name if info else "", info.name if info else ""):
            if name and (entry := self.catalog.find(name, ModelKind.lora)) is not None:
                return entry, "its name"
        return None, ""

    def checkpoint(self, name: str, file_hash: str = "") -> ModelEntry | None:
        if file_hash and (entry := self._checkpoints.get(file_hash.lower())) is not None:
            return entry
        return self.catalog.find(name, ModelKind.checkpoint) if name else None


def resolve_lora(ref: LoraRef, index: LocalIndex, *, node: str = "",
                 info: VersionInfo | None = None) -> ResolvedLora:
    entry, how = index.lora(ref, info)
    if entry is None:
        return ResolvedLora(ref, None, "", LoraState.missing, (), info)
    catalog = index.catalog
    nodes = tuple(catalog.nodes_with(entry))
    on_node = catalog.available_on(entry, node) if node else None
    if on_node is True or (on_node is None and not entry.origin):
        state = LoraState.here
    else:
        state = LoraState.elsewhere if nodes else LoraState.missing
    return ResolvedLora(ref, entry, how, state, nodes, info)


@dataclass(frozen=True)
class Combo:
    """A community image and its LoRAs as they stand here."""

    image: CommunityImage
    loras: tuple[ResolvedLora, ...] = ()

    @property
    def base(self) -> BaseModel:
        return base_from_label(self.image.base_model)

    @property
    def runnable(self) -> bool:
        """It names LoRAs and every one is here."""
        return bool(self.loras) and all(lora.state is LoraState.here for lora in self.loras)

    @property
    def missing(self) -> list[ResolvedLora]:
        return [lora for lora in self.loras if lora.state is not LoraState.here]

    def to_json(self, base_url: str) -> dict[str, Any]:
        image = self.image
        return {
            "id": image.id, "url": image.url, "page": image.page_url(base_url),
            "username": image.username, "base_model": image.base_model, "level": image.level,
            "reactions": image.stats.reactions, "comments": image.stats.comments,
            "prompt": image.prompt, "negative": image.negative, "seed": image.seed,
            "steps": image.steps, "sampler": image.sampler, "cfg_scale": image.cfg_scale,
            "clip_skip": image.clip_skip, "size": list(image.size) if image.size else None,
            "checkpoint": image.checkpoint or None, "runnable": self.runnable,
            "loras": [lora.to_json() for lora in self.loras], "notes": list(image.notes),
        }


def resolve(images: Iterable[CommunityImage], catalog: Catalog, *, node: str = "",
            infos: dict[str, VersionInfo] | None = None) -> list[Combo]:
    """A combo per image; *infos* (by "h:<hash>" or "v:<version id>") are earlier look-ups."""
    index = LocalIndex(catalog)
    known = infos or {}
    out = []
    for image in images:
        loras = []
        for ref in image.loras:
            info = known.get(f"h:{ref.hash}") if ref.hash else None
            if info is None and ref.version_id is not None:
                info = known.get(f"v:{ref.version_id}")
            loras.append(resolve_lora(ref, index, node=node, info=info))
        out.append(Combo(image, tuple(loras)))
    return out


@dataclass(frozen=True)
class ComboFilter:
    """Which combos to keep: the defaults keep runnable, safe ones with LoRAs."""

    with_loras: bool = True
    runnable_only: bool = True
    #: Browsing-level bits allowed (1: PG only).
    browsing_level: int = SAFE_LEVEL
    allow_nsfw_loras: bool = False
    #: The family of the checkpoint the combo would run with (unknown: any).
    checkpoint: BaseModel = BaseModel.unknown

    def reason_to_drop(self, combo: Combo) -> str | None:
        image = combo.image
        if image.level and image.level & ~self.browsing_level:
            return f"its rating is {_LEVEL_WORDS.get(image.level, str(image.level))}"
        if self.with_loras and not combo.loras:
            return "it names no LoRA"
        if not self.allow_nsfw_loras and (nsfw := [lora.name for lora in combo.loras if lora.nsfw]):
            return f"{_names(nsfw)} {'is' if len(nsfw) == 1 else 'are'} marked NSFW"
        if not combo.base.fits(self.checkpoint):
            return f"it was made for {combo.base.value}, your model is {self.checkpoint.value}"
        unfit = [lora.name for lora in combo.loras
                 if lora.entry is not None and not lora.entry.base_model.fits(self.checkpoint)]
        if unfit:
            return f"{_names(unfit)} {'does' if len(unfit) == 1 else 'do'} not fit {self.checkpoint.value}"
        if self.runnable_only and not combo.runnable:
            missing = [lora.name for lora in combo.missing]
            return f"{_names(missing)} {'is' if len(missing) == 1 else 'are'} not here"
        return None


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass
class Filtered:
    """The combos kept, and each dropped one with the reason."""

    kept: list[Combo] = field(default_factory=list)
    dropped: list[tuple[Combo, str]] = field(default_factory=list)


def filter_combos(combos: Iterable[Combo], rules: ComboFilter) -> Filtered:
    out = Filtered()
    for combo in combos:
        reason = rules.reason_to_drop(combo)
        if reason is None:
            out.kept.append(combo)
        else:
            out.dropped.append((combo, reason))
    return out


def pick(combos: Sequence[Combo], rng: random.Random, *, by_engagement: bool = False,
         avoid: int | None = None) -> Combo | None:
    """One combo of the pool (another than image *avoid* when there is a choice), drawn evenly
    or weighted by reactions, comments and collections."""
    pool = [c for c in combos if c.image.id != avoid] or list(combos)
    if not pool:
        return None
    if not by_engagement:
        return rng.choice(pool)
    return rng.choices(pool, weights=[1 + c.image.stats.engagement for c in pool], k=1)[0]


# --- a combo as a config -----------------------------------------------------------------------


def combo_prompt(combo: Combo) -> str:
    """The image's prompt with its LoRA tags replaced by the local LoRAs, at the image's weights."""
    text = _LORA_TAG.sub(" ", combo.image.prompt)
    text = re.sub(r"\s{2,}", " ", text).strip(" ,")
    tokens = [lora_token(lora.entry, lora.weight) for lora in combo.loras if lora.entry is not None]
    return ", ".join([p for p in (text, " ".join(tokens)) if p])


def split_sampler(name: str) -> tuple[str, str]:
    """'DPM++ 2M Karras' -> ('DPM++ 2M', 'Karras'): A1111 names the schedule apart since 1.9."""
    for scheduler in _SCHEDULERS:
        if name.endswith(f" {scheduler}"):
            return name[: -len(scheduler) - 1].strip(), scheduler
    return name, "Automatic"


def combo_changes(combo: Combo, *, settings: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Dotted config changes for the combo (prompt, negative; with *settings* also sampler,
    steps, CFG, clip skip and size), and what could not be taken, in words."""
    image = combo.image
    changes: dict[str, Any] = {"txt2img.prompt": combo_prompt(combo),
                               "txt2img.negative_prompt": image.negative}
    skipped: list[str] = []
    if not settings:
        return changes, skipped
    if image.sampler:
        changes["txt2img.sampler"], changes["txt2img.scheduler"] = split_sampler(image.sampler)
    _bounded(changes, skipped, "txt2img.steps", "steps", image.steps, 1, 150)
    _bounded(changes, skipped, "txt2img.cfg_scale", "CFG scale", image.cfg_scale, 1.0, 30.0)
    _bounded(changes, skipped, "txt2img.clip_skip", "clip skip", image.clip_skip, 1, 12)
    if image.size:
        width, height = (max(64, min(4096, round(v / 8) * 8)) for v in image.size)
        changes["txt2img.width"], changes["txt2img.height"] = width, height
    return changes, skipped


def _bounded(changes: dict[str, Any], skipped: list[str], key: str, words: str,
             value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if low <= value <= high:
        changes[key] = value
    else:
        skipped.append(f"its {words} ({value:g}) is outside {low:g}–{high:g}, so yours is kept")


def combo_config(combo: Combo, base: PipelineConfig, *, settings: bool = False) -> PipelineConfig:
    return base.with_changes(combo_changes(combo, settings=settings)[0])


@dataclass(frozen=True)
class TrendingItem:
    """One image of a "N trending combos" batch: the queue tags it with the source image."""

    config: PipelineConfig
    variant_id: str
    label: str


def source_id(image_id: int) -> str:
    """The variant id an image made from a community image carries: 'civitai:<image id>'."""
    return f"civitai:{image_id}"


def batch_items(combos: Iterable[Combo], base: PipelineConfig, *, settings: bool = False
                ) -> list[TrendingItem]:
    return [TrendingItem(combo_config(c, base, settings=settings), source_id(c.image.id),
                         f"CivitAI image {c.image.id}") for c in combos]
