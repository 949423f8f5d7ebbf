"""Prompt packs: collections of prompts a user runs together, as files on disk.

A pack is a `.txt` file (one prompt per line, `#` comments, `negative:` lines), a `.yaml`
document (name, description, prompts with optional negatives, wildcards folder, default
preset, tags), or a folder holding a `pack.yaml` and/or `.txt` files plus an optional
`wildcards/` folder. Prompts may use the randomizer syntax. The packs folder is polled by
modification times, so files edited in another program show up without a restart and
without a file-watcher dependency.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.presets import DisplayName, FolderLock, LibraryError, line_at
from stablenew.pipeline.records import RunTags
from stablenew.randomizer.counting import compile_template, parse_template
from stablenew.randomizer.errors import TemplateError
from stablenew.randomizer.plan import Plan, plan
from stablenew.randomizer.spec import VariationSpec
from stablenew.storage.atomic import atomic_write_text
from stablenew.storage.documents import (
    DocumentError,
    dump_yaml,
    load_yaml_model,
    parse_yaml,
    read_document_text,
)
from stablenew.storage.folders import Signature, files_signature
from stablenew.storage.migrations import Migrations
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import peek_settings

PACK_VERSION = 1
PACK_FILE = "pack.yaml"
WILDCARDS_FOLDER = "wildcards"
OVERRIDES_FILE = ".stablenew-packs.yaml"
NEGATIVE_PREFIX = "negative:"
MAX_PROMPTS = 10_000


class PackKind(StrEnum):
    text = "text"
    yaml = "yaml"
    folder = "folder"


class PackPrompt(BaseModel):
    """One prompt of a pack, with its own negative prompt when it needs one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Where a prompt of a .txt file was written, so template errors can name the line.
    _source: Path | None = PrivateAttr(None)
    _line: int | None = PrivateAttr(None)

    prompt: str = Field(..., min_length=1, title="Prompt")
    negative: str = Field("", title="Negative prompt",
                          description="Empty: the pack's negative prompt (or the one you have now).")

    @model_validator(mode="before")
    @classmethod
    def _plain_string(cls, data: Any) -> Any:
        # In YAML a prompt without a negative may be written as a plain string.
        return {"prompt": data} if isinstance(data, str) else data


class PromptPack(BaseModel):
    """A named list of prompts with the wildcards and default preset they were written for."""

    model_config = ConfigDict(extra="forbid")

    version: int = PACK_VERSION
    name: DisplayName = Field(..., title="Name")
    description: str = Field("", max_length=4000, title="Description")
    tags: list[str] = Field(default_factory=list, title="Tags")
    negative: str = Field("", title="Negative prompt",
                          description="Used for every prompt that has no negative of its own.")
    prompts: list[PackPrompt] = Field(..., min_length=1, max_length=MAX_PROMPTS, title="Prompts")
    wildcards: str | None = Field(None, title="Wildcards folder",
                                  description="Folder of __name__ files, relative to the pack.")
    default_preset: str | None = Field(None, title="Default preset",
                                       description="Preset applied together with the pack.")

    def resolved(self) -> list[tuple[str, str]]:
        """(prompt, negative) for each prompt, the pack's negative filling in missing ones."""
        return [(p.prompt, p.negative or self.negative) for p in self.prompts]

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_defaults=True, exclude={"prompts"})
        data = {"version": PACK_VERSION, "name": self.name, **data}
        data["prompts"] = [p.prompt if not p.negative else p.model_dump(mode="json") for p in self.prompts]
        return dump_yaml(data)

    def to_text(self) -> str:
        """The pack as a .txt pack (name, tags and default preset are not kept in that format).

        Raises ValueError for a prompt that format cannot hold (several lines, a leading '#'
        or 'negative:', spaces at either end); save such packs as .yaml.
        """
        for n, item in enumerate(self.prompts, start=1):
            for text in filter(None, (item.prompt, item.negative)):
                if "\n" in text or text != text.strip(" \t\r") or (
                        text is item.prompt and (text.startswith("#")
                                                 or text.casefold().startswith(NEGATIVE_PREFIX))):
                    raise ValueError(f"Prompt {n} cannot be kept in a .txt pack as it is; save the "
                                     "pack as .yaml instead.")
        lines = [f"# {self.name}"]
        lines += [f"# {line}" for line in self.description.split("\n")]
        if self.negative:
            lines.append(f"{NEGATIVE_PREFIX} {self.negative}")
        for item in self.prompts:
            lines.append(item.prompt)
            if item.negative:
                lines.append(f"{NEGATIVE_PREFIX} {item.negative}")
        return "\n".join(lines) + "\n"


def _pack_v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    # v0 (the prototype) called the name "title" and the prompts "lines".
    if "title" in data:
        data.setdefault("name", data.pop("title"))
    if "lines" in data:
        data.setdefault("prompts", data.pop("lines"))
    return data


#: Upgrades older pack documents to the current format.
migrate_pack = Migrations("pack format", PACK_VERSION, ((0, 1, _pack_v0_to_v1),))


def parse_text_pack(text: str, path: Path, *, name: str | None = None) -> PromptPack:
    """A .txt pack: one prompt per line, `#` comments, `negative:` for the prompt above.

    A `negative:` line before the first prompt is the pack's negative for every prompt.
    """
    prompts: list[dict[str, str]] = []
    lines: list[int] = []
    negative = ""
    # Only \n (and \r\n) end a line: str.splitlines would also split on characters such as
    # U+2028 that editors show inside a line, shifting every line number after them.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        if line.casefold().startswith(NEGATIVE_PREFIX):
            value = line[len(NEGATIVE_PREFIX):].strip(" \t\r")
            if not prompts:
                negative = value
            elif prompts[-1].get("negative"):
                raise DocumentError(path, "This prompt already has a negative line; put both in one "
                                    "'negative:' line, separated by commas.", line=number)
            else:
                prompts[-1]["negative"] = value
            continue
        if len(prompts) >= MAX_PROMPTS:
            raise DocumentError(path, f"A pack holds at most {MAX_PROMPTS} prompts. Split this file.",
                                line=number)
        prompts.append({"prompt": line})
        lines.append(number)
    if not prompts:
        raise DocumentError(path, "This pack has no prompts: write one prompt per line "
                            "(lines starting with # are comments).")
    pack = PromptPack(name=name or path.stem, negative=negative, prompts=prompts)
    for item, number in zip(pack.prompts, lines, strict=True):
        item._source, item._line = path, number
    return pack


@dataclass(frozen=True)
class PackEntry:
    """One pack in the packs folder: the loaded pack, or why it is broken."""

    path: Path
    kind: PackKind
    pack: PromptPack | None = None
    error: DocumentError | None = None
    wildcards_dir: Path | None = None
    default_preset: str | None = None

    @property
    def broken(self) -> bool:
        return self.pack is None

    @property
    def name(self) -> str:
        return self.pack.name if self.pack is not None else self.path.stem

    @property
    def key(self) -> str:
        return str(self.path)


def _pack_kind(path: Path) -> PackKind | None:
    if path.name.startswith("."):
        return None
    if path.is_dir():
        return PackKind.folder if path.name != WILDCARDS_FOLDER else None
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return PackKind.text
    if suffix in (".yaml", ".yml"):
        return PackKind.yaml
    return None


def load_pack(path: str | os.PathLike[str]) -> tuple[PromptPack, Path | None]:
    """Read a pack file or folder; returns it with its wildcards folder (if any).

    Raises DocumentError naming the file (inside a folder pack: the file in it), line and field.
    """
    target = Path(path)
    kind = _pack_kind(target) if target.exists() else None
    if kind is None:
        if not target.exists():
            raise DocumentError(target, "There is no file or folder here.")
        raise DocumentError(target, "A pack is a .txt or .yaml file, or a folder of them.")
    if kind is PackKind.text:
        return parse_text_pack(read_document_text(target), target), None
    if kind is PackKind.yaml:
        pack = load_yaml_model(target, PromptPack, migrate=migrate_pack)
        return pack, _wildcards_of(pack, target.parent)
    return _load_folder(target)


def _load_folder(folder: Path) -> tuple[PromptPack, Path | None]:
    meta_file = folder / PACK_FILE
    prompts: list[PackPrompt] = []
    meta: _FolderMeta | None = None
    if meta_file.is_file():
        meta = load_yaml_model(meta_file, _FolderMeta, migrate=migrate_pack)
        prompts.extend(meta.prompts)
    negative = meta.negative if meta is not None else ""
    for text_file in sorted(folder.glob("*.txt"), key=lambda p: p.name.casefold()):
        part = parse_text_pack(read_document_text(text_file), text_file)
        # A file-level negative applies to that file's prompts only.
        prompts.extend(p if p.negative or not part.negative
                       else p.model_copy(update={"negative": part.negative}) for p in part.prompts)
    if not prompts:
        raise DocumentError(folder, f"This pack folder has no prompts: add .txt files or a {PACK_FILE} "
                            "with prompts.")
    base: dict[str, Any] = (meta.model_dump(exclude={"version"}) if meta is not None
                            else {"name": folder.name})
    base.update(prompts=prompts, negative=negative)
    pack = PromptPack.model_validate(base)
    wildcards = _wildcards_of(pack, folder)
    if wildcards is None and (folder / WILDCARDS_FOLDER).is_dir():
        wildcards = folder / WILDCARDS_FOLDER
    return pack, wildcards


def _wildcards_of(pack: PromptPack, base: Path) -> Path | None:
    if not pack.wildcards:
        return None
    folder = Path(pack.wildcards).expanduser()
    return folder if folder.is_absolute() else (base / folder)


def save_pack(pack: PromptPack, path: str | os.PathLike[str]) -> Path:
    """Validate, then write a pack atomically as .yaml or .txt (by the file's suffix)."""
    target = Path(path)
    PromptPack.model_validate(pack.model_dump())
    text = pack.to_text() if target.suffix.lower() == ".txt" else pack.to_yaml()
    return atomic_write_text(target, text)


class _FolderMeta(PromptPack):
    """pack.yaml inside a pack folder: the same fields, but prompts may all be in .txt files."""

    prompts: list[PackPrompt] = Field(default_factory=list, max_length=MAX_PROMPTS, title="Prompts")


class PackOverrides(BaseModel):
    """The user's own choices about packs, kept beside them so pack files stay as written."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    default_presets: dict[str, str] = Field(default_factory=dict, title="Default presets")


def load_packs_folder(paths: AppPaths) -> Path:
    """The packs folder chosen in Settings, or the default one (also when the settings are unreadable)."""
    return peek_settings(paths).packs_path(paths)


class PackLibrary:
    """The packs folder: lists packs (broken ones included) and notices changes on disk."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else load_packs_folder(AppPaths.default())
        self._signature: Signature | None = None

    @property
    def overrides_file(self) -> Path:
        return self.folder / OVERRIDES_FILE

    def _overrides(self) -> PackOverrides:
        if not self.overrides_file.is_file():
            return PackOverrides()
        try:
            return load_yaml_model(self.overrides_file, PackOverrides)
        except DocumentError:
            # Only remembered choices live there; a damaged file must not hide the packs.
            return PackOverrides()

    def scan(self) -> list[PackEntry]:
        """The entries, remembering the folder's state first so `poll` misses no later change."""
        self._signature = self.signature()
        return self.entries()

    def entries(self) -> list[PackEntry]:
        if not self.folder.is_dir():
            return []
        overrides = self._overrides().default_presets
        found = []
        for path in self.folder.iterdir():
            kind = _pack_kind(path)
            if kind is None:
                continue
            try:
                pack, wildcards = validate_pack_path(path, check_templates=False)
            except DocumentError as exc:
                found.append(PackEntry(path, kind, error=exc))
                continue
            preset = overrides.get(path.name, pack.default_preset)
            found.append(PackEntry(path, kind, pack, None, wildcards, preset or None))
        return sorted(found, key=lambda e: e.name.casefold())

    def find(self, name: str) -> PackEntry | None:
        return next((e for e in self.entries() if e.name == name or e.path.name == name), None)

    def set_default_preset(self, entry: PackEntry, preset_name: str | None) -> None:
        """Remember the preset applied with this pack (None: back to the pack's own choice)."""
        with FolderLock(self.folder):
            overrides = self._overrides()
            chosen = dict(overrides.default_presets)
            if preset_name:
                chosen[entry.path.name] = preset_name
            else:
                chosen.pop(entry.path.name, None)
            data = {"version": 1, "default_presets": chosen}
            atomic_write_text(self.overrides_file, dump_yaml(data))

    def signature(self) -> Signature:
        """Names, sizes and modification times of every pack file (two levels deep)."""
        if not self.folder.is_dir():
            return ()
        return files_signature(_walk(self.folder, depth=3))

    def poll(self) -> bool:
        """True when something in the packs folder changed since the last call."""
        current = self.signature()
        changed = self._signature is not None and current != self._signature
        self._signature = current
        return changed


def _walk(folder: Path, depth: int) -> Iterator[Path]:
    try:
        children = list(folder.iterdir())
    except OSError:
        return
    for child in children:
        yield child
        if depth > 1 and child.is_dir() and not child.name.startswith("."):
            yield from _walk(child, depth - 1)


def pack_configs(pack: PromptPack, base: PipelineConfig) -> Iterator[PipelineConfig]:
    """One config per prompt of the pack, laid over *base* (its negative kept if the pack has none)."""
    for prompt, negative in pack.resolved():
        changes: dict[str, Any] = {"txt2img.prompt": prompt}
        if negative:
            changes["txt2img.negative_prompt"] = negative
        yield base.with_changes(changes)


@dataclass(frozen=True)
class PackRunItem:
    """One image-run of a pack: a prompt of the pack (times one item of the randomizer plan)."""

    config: PipelineConfig
    label: str
    index: int  # 0-based over the whole pack run
    prompt_index: int  # 0-based prompt of the pack
    tags: RunTags


def plan_pack(pack: PromptPack, base: PipelineConfig, *,
              plan_for: Callable[[PipelineConfig], Iterable[Any] | None] | None = None,
              preset: str | None = None) -> Iterator[PackRunItem]:
    """Every prompt of *pack* over *base*, each times the randomizer's plan, lazily.

    *plan_for* turns one config into plan items (with `config`, `variant_id`, `label`), e.g.
    `lambda c: plan(c, spec, wildcards_dir=...)`; None (or a None result) runs each prompt once.
    """
    index = 0
    for number, config in enumerate(pack_configs(pack, base)):
        short = _shorten(config.txt2img.prompt)
        items = plan_for(config) if plan_for is not None else None
        if items is None:
            tags = RunTags(pack=pack.name, preset=preset, variant_id=f"p{number + 1}", variant_label=short)
            yield PackRunItem(config, f"{number + 1}. {short}", index, number, tags)
            index += 1
            continue
        for item in items:
            variant = getattr(item, "variant_id", "") or ""
            label = getattr(item, "label", "") or short
            tags = RunTags(pack=pack.name, preset=preset, variant_id=f"p{number + 1}-{variant}".rstrip("-"),
                           variant_label=label)
            yield PackRunItem(item.config, f"{number + 1}. {label}", index, number, tags)
            index += 1


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validate_pack_path(path: str | os.PathLike[str], *,
                       check_templates: bool = True) -> tuple[PromptPack, Path | None]:
    """Like load_pack, but a wildcards folder named by the pack must exist and, when
    *check_templates*, every prompt must be valid randomizer syntax (its wildcards found in
    the pack's wildcards folder, when it has one)."""
    target = Path(path)
    pack, wildcards = load_pack(target)
    if wildcards is not None and not wildcards.is_dir():
        raise DocumentError(target, f"The wildcards folder '{pack.wildcards}' does not exist "
                            f"(looked for {wildcards}).", field="wildcards")
    if check_templates:
        check_pack_templates(pack, target, wildcards)
    return pack, wildcards


def check_pack_templates(pack: PromptPack, path: Path, wildcards: Path | None) -> None:
    """Raise DocumentError (file, line, field) for the first prompt the randomizer cannot read."""
    texts: list[tuple[str, str, PackPrompt | None, str]] = [(pack.negative, "negative", None, "Negative")]
    for n, entry in enumerate(pack.prompts):
        texts.append((entry.prompt, f"prompts.{n}.prompt", entry, f"Prompt {n + 1}"))
        texts.append((entry.negative, f"prompts.{n}.negative", entry, f"Negative of prompt {n + 1}"))
    node = None
    for text, field, item, what in texts:
        if not text:
            continue
        try:
            if wildcards is not None:
                compile_template(text, wildcards=wildcards)
            else:
                # Without a pack wildcards folder, __names__ are the randomizer's to resolve.
                parse_template(text)
        except TemplateError as exc:
            source, line = (item._source, item._line) if item is not None else (None, None)
            if source is None:
                # From YAML: pack.yaml inside a folder pack, or the pack file itself.
                source = path / PACK_FILE if path.is_dir() else path
                if source.is_file():
                    node = node or parse_yaml(read_document_text(source), source)[1]
                    line = line_at(node, tuple(int(p) if p.isdigit() else p for p in field.split(".")))
            from_text = source.suffix.lower() == ".txt"
            raise DocumentError(source, f"{what}: {exc.message}", line=line,
                                field=None if from_text else field) from None


def pack_plan_for(spec: VariationSpec | None = None, *, wildcards_dir: Path | None = None,
                  bias: Any = None) -> Callable[[PipelineConfig], Plan]:
    """The randomizer's plan for one prompt of a pack: the spec's axes, seeds and counts, with
    the pack's prompt as the template (a template in the spec would replace every prompt)."""
    chosen = (spec or VariationSpec()).model_copy(update={"template": None, "negative_template": None})
    if bias is not None:
        chosen = bias.apply_to_spec(chosen)
    return lambda config: plan(config, chosen, wildcards_dir=wildcards_dir)


__all__ = [
    "LibraryError",
    "PACK_VERSION",
    "PackEntry",
    "PackKind",
    "PackLibrary",
    "PackPrompt",
    "PackRunItem",
    "check_pack_templates",
    "PromptPack",
    "load_pack",
    "load_packs_folder",
    "migrate_pack",
    "pack_configs",
    "pack_plan_for",
    "parse_text_pack",
    "plan_pack",
    "save_pack",
    "validate_pack_path",
]
