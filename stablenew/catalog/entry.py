"""One model file in the catalog (`ModelEntry`) and the base-model families it can belong to."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class BaseModel(StrEnum):
    """The model family a LoRA was trained on or a checkpoint belongs to."""

    sd1 = "SD1"
    sd2 = "SD2"
    sdxl = "SDXL"
    pony = "Pony"
    illustrious = "Illustrious"
    flux = "Flux"
    sd3 = "SD3"
    unknown = "unknown"

    @property
    def family(self) -> BaseModel:
        """Pony and Illustrious are SDXL fine-tunes: their LoRAs load on any SDXL model."""
        return BaseModel.sdxl if self in (BaseModel.pony, BaseModel.illustrious) else self

    def fits(self, checkpoint: BaseModel) -> bool:
        """Whether a LoRA of this family can be used with a checkpoint of *checkpoint*'s."""
        if BaseModel.unknown in (self, checkpoint):
            return True  # we cannot tell, so we do not hide it
        return self.family is checkpoint.family


class ModelKind(StrEnum):
    """What a catalog entry is."""

    lora = "lora"
    checkpoint = "checkpoint"


@dataclass
class ModelEntry:
    """Everything the catalog knows about one model file, merged from header, sidecars and hashes."""

    kind: ModelKind
    path: str
    #: The `<lora:…>` token: the file stem, as A1111 names it.
    name: str
    alias: str
    display_name: str
    base_model: BaseModel = BaseModel.unknown
    #: Where base_model came from, in words ("its header (ss_base_model_version)").
    base_model_from: str = ""
    triggers: list[str] = field(default_factory=list)
    triggers_from: str = ""
    weight: float | None = None
    preview: str | None = None
    category: str = ""
    tags: list[str] = field(default_factory=list)
    description: str = ""
    favorite: bool = False
    nsfw: bool | None = None
    size: int = 0
    mtime_ns: int = 0
    #: False when the file itself could not be read; the entry is listed with its problems.
    readable: bool = True
    #: The node whose server listed it, for a LoRA known only from a server (no local file).
    origin: str = ""
    problems: list[str] = field(default_factory=list)
    #: A1111's LoRA hash (embedded sshs_model_hash, else sha256 of the bytes after the header).
    lora_hash: str | None = None
    #: sha256 of the whole file.
    sha256: str | None = None

    @property
    def autov3(self) -> str | None:
        """CivitAI's AutoV3 and A1111's short LoRA hash (what `Lora hashes` carries)."""
        return self.lora_hash[:12] if self.lora_hash else None

    @property
    def autov2(self) -> str | None:
        """CivitAI's AutoV2 and A1111's short checkpoint hash."""
        return self.sha256[:10] if self.sha256 else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["base_model"] = self.base_model.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelEntry:
        """The entry `to_json` wrote (the cache's rows: trusted, so no validation)."""
        entry = object.__new__(cls)  # thousands per start from the cache: skip __init__
        entry.__dict__.update(_DEFAULTS)
        entry.__dict__.update(data)
        entry.kind = _KINDS[data["kind"]]
        entry.base_model = _BASES[data["base_model"]]
        return entry

    def summary(self) -> dict[str, Any]:
        """The fields scripts read (`stablenew lora … --json`)."""
        return {
            "name": self.name, "alias": self.alias, "display_name": self.display_name,
            "kind": self.kind.value, "base_model": self.base_model.value, "triggers": self.triggers,
            "weight": self.weight, "preview": self.preview,
            "hashes": {"lora": self.lora_hash, "autov3": self.autov3, "sha256": self.sha256,
                       "autov2": self.autov2},
            "category": self.category, "tags": self.tags, "path": self.path,
            "problems": self.problems,
        }


_KINDS = {k.value: k for k in ModelKind}
_BASES = {b.value: b for b in BaseModel}
#: Fields a cache row written before a field existed lacks.
_DEFAULTS = {"origin": "", "readable": True, "lora_hash": None, "sha256": None}
