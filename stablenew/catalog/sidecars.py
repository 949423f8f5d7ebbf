"""Sidecar files other tools keep beside a model, read into one `Sidecars` record.

Which exist varies: A1111/Forge user metadata `<name>.json` (also written by
sd-civitai-browser-plus), Civitai Helper `<name>.civitai.info`, sd-civitai-browser-plus
`<name>.api_info.json`, ComfyUI-Lora-Manager `<name>.metadata.json`. A file that is not JSON,
or a field of the wrong type, is skipped with a problem in words; the others still count.
Sidecars are only ever read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Suffixes after the model's stem, in the order they are read.
SIDECAR_SUFFIXES = (".json", ".civitai.info", ".api_info.json", ".metadata.json")
#: A sidecar larger than this is not metadata someone wrote; it is skipped unread.
MAX_SIDECAR_BYTES = 8 * 1024 * 1024


@dataclass
class Sidecars:
    """What the sidecars say, field by field (None: no sidecar said it), plus their problems."""

    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # A1111 / Forge user metadata (<name>.json)
    activation_text: str | None = None
    preferred_weight: float | None = None
    sd_version: str | None = None
    description: str | None = None
    negative_text: str | None = None
    notes: str | None = None
    # CivitAI, from whichever of .civitai.info / .api_info.json / .metadata.json has it
    trained_words: list[str] | None = None
    civitai_base_model: str | None = None
    civitai_model_name: str | None = None
    civitai_description: str | None = None
    civitai_tags: list[str] = field(default_factory=list)
    nsfw: bool | None = None
    # ComfyUI-Lora-Manager
    usage_weight: float | None = None
    manager_base_model: str | None = None
    manager_tags: list[str] = field(default_factory=list)
    favorite: bool = False


def read_sidecars(folder: Path, stem: str, present: set[str] | frozenset[str], model_file: str = ""
                  ) -> Sidecars:
    """Read the sidecars of *stem* in *folder*; *present* is the folder's file names (one listing)."""
    out = Sidecars()
    for suffix in SIDECAR_SUFFIXES:
        name = stem + suffix
        if name not in present:
            continue
        data = _load(folder / name, out)
        if data is None:
            continue
        out.files.append(name)
        if suffix == ".json":
            _a1111(data, name, out)
        elif suffix == ".civitai.info":
            _civitai_version(data, name, out)
        elif suffix == ".api_info.json":
            _api_info(data, name, out, model_file)
        else:
            _lora_manager(data, name, out)
    return out


def _load(path: Path, out: Sidecars) -> dict | None:
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            limit = MAX_SIDECAR_BYTES // 1024 // 1024
            out.problems.append(f"{path.name} is larger than {limit} MB; ignored.")
            return None
        data = json.loads(path.read_bytes())
    except OSError as exc:
        out.problems.append(f"{path.name} cannot be read ({exc.strerror or exc}); ignored.")
        return None
    except (ValueError, UnicodeDecodeError):
        out.problems.append(f"{path.name} is not valid JSON; ignored.")
        return None
    if not isinstance(data, dict):
        out.problems.append(f"{path.name} does not hold a JSON object; ignored.")
        return None
    return data


class _Fields:
    """Typed reads from one sidecar's JSON that note a wrong type instead of failing."""

    def __init__(self, data: dict, file: str, out: Sidecars) -> None:
        self.data, self.file, self.out = data, file, out

    def _wrong(self, key: str, wanted: str) -> None:
        self.out.problems.append(f"{self.file}: '{key}' should be {wanted}; ignored.")

    def text(self, key: str, data: Any = None) -> str | None:
        src = self.data if data is None else data
        value = src.get(key) if isinstance(src, dict) else None
        if value is None:
            return None
        if not isinstance(value, str):
            self._wrong(key, "text")
            return None
        return value.strip() or None

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self._wrong(key, "a number")
            return None
        try:
            return float(value)
        except ValueError:
            self._wrong(key, "a number")
            return None

    def words(self, key: str, data: Any = None) -> list[str] | None:
        src = self.data if data is None else data
        value = src.get(key) if isinstance(src, dict) else None
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._wrong(key, "a list of words")
            return None
        return [v.strip() for v in value if v.strip()]

    def obj(self, key: str, data: Any = None) -> dict | None:
        src = self.data if data is None else data
        value = src.get(key) if isinstance(src, dict) else None
        if value is None:
            return None
        if not isinstance(value, dict):
            self._wrong(key, "an object")
            return None
        return value


def _a1111(data: dict, file: str, out: Sidecars) -> None:
    f = _Fields(data, file, out)
    out.activation_text = f.text("activation text")
    weight = f.number("preferred weight")
    out.preferred_weight = weight if weight else None  # A1111 writes 0 for "not set"
    out.sd_version = f.text("sd version")
    out.description = f.text("description")
    out.negative_text = f.text("negative text")
    out.notes = f.text("notes")


def _version_fields(f: _Fields, version: dict, out: Sidecars) -> None:
    """A CivitAI model-version object (`/model-versions/by-hash` or an item of modelVersions)."""
    if out.trained_words is None:
        out.trained_words = f.words("trainedWords", version)
    out.civitai_base_model = out.civitai_base_model or f.text("baseModel", version)
    model = f.obj("model", version)
    if model:
        out.civitai_model_name = out.civitai_model_name or f.text("name", model)
        if isinstance(model.get("nsfw"), bool) and out.nsfw is None:
            out.nsfw = model["nsfw"]
        out.civitai_tags += f.words("tags", model) or []
    out.civitai_description = out.civitai_description or f.text("description", version)


def _civitai_version(data: dict, file: str, out: Sidecars) -> None:
    _version_fields(_Fields(data, file, out), data, out)


def _api_info(data: dict, file: str, out: Sidecars, model_file: str) -> None:
    f = _Fields(data, file, out)
    out.civitai_model_name = out.civitai_model_name or f.text("name")
    out.civitai_description = out.civitai_description or f.text("description")
    out.civitai_tags += f.words("tags") or []
    if isinstance(data.get("nsfw"), bool) and out.nsfw is None:
        out.nsfw = data["nsfw"]
    versions = data.get("modelVersions")
    if versions is None:
        return
    if not isinstance(versions, list):
        f._wrong("modelVersions", "a list")
        return
    versions = [v for v in versions if isinstance(v, dict)]
    # The version this file came from, by file name; else the newest (CivitAI lists it first).
    chosen = next((v for v in versions for fi in v.get("files") or []
                   if isinstance(fi, dict) and fi.get("name") == model_file),
                  versions[0] if versions else None)
    if chosen is not None:
        _version_fields(f, chosen, out)


def _lora_manager(data: dict, file: str, out: Sidecars) -> None:
    f = _Fields(data, file, out)
    out.manager_base_model = f.text("base_model")
    out.manager_tags = f.words("tags") or []
    if data.get("favorite") is True:
        out.favorite = True
    out.notes = out.notes or f.text("notes")
    civitai = f.obj("civitai")
    if civitai:
        _version_fields(f, civitai, out)
    out.civitai_model_name = out.civitai_model_name or f.text("model_name")
    tips = data.get("usage_tips")
    if tips in (None, "", "{}"):
        return
    try:
        parsed = json.loads(tips) if isinstance(tips, str) else tips
    except ValueError:
        parsed = None
    strength = parsed.get("strength") if isinstance(parsed, dict) else None
    if isinstance(strength, int | float) and not isinstance(strength, bool):
        out.usage_weight = float(strength)
    else:
        f._wrong("usage_tips", 'JSON text like {"strength": 0.8}')
