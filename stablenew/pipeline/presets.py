"""Presets: named, versioned YAML documents holding all or part of a PipelineConfig.

A preset sets only the fields it names and is laid over the current config when applied, so
"SDXL quality" can change size, steps and sampler while keeping the user's prompt. Shipped
presets (resources/presets/) are read-only; the user's live in the config folder. Every
change goes through `LibraryFolder`: validated first, written atomically under a folder lock,
deletions go to a trash folder and can be undone, and a broken file stays in the list with
its file, line and field instead of vanishing.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    model_validator,
)

from stablenew.pipeline.config import (
    ConfigInvalid,
    PipelineConfig,
    migrate_config,
)
from stablenew.pipeline.styles import PromptStyle
from stablenew.storage.atomic import atomic_write_bytes, atomic_write_text
from stablenew.storage.documents import (
    DocumentError,
    dump_yaml,
    parse_yaml,
    parse_yaml_model,
    read_document_text,
)
from stablenew.storage.paths import AppPaths
from stablenew.storage.resources import resource_path
from stablenew.storage.validation import Problem, plain_problems

PRESET_VERSION = 1
DOCUMENT_SUFFIXES = (".yaml", ".yml")
TRASH_FOLDER = ".trash"
LOCK_FILE = ".stablenew.lock"

# Sampler names of A1111 1.10 and Forge (modules/sd_samplers_*.py). Servers differ and
# extensions add more, so an unknown name is a warning, never a refusal.
KNOWN_SAMPLERS: tuple[str, ...] = (
    "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
    "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart",
    "DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM",
    "Euler CFG++", "Euler a CFG++", "DPM++ 2M CFG++", "DPM++ 2S a CFG++", "DPM++ 2S a RF",
    "DPM++ 2M SDE RF", "Euler A2", "Euler Comfy", "Euler a Comfy", "DPM++ 2M Comfy",
)
# Scheduler labels of /sdapi/v1/schedulers (1.9.1+), plus Forge's additions.
KNOWN_SCHEDULERS: tuple[str, ...] = (
    "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform",
    "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM", "Beta", "Turbo",
    "Align Your Steps GITS", "Align Your Steps 11", "Align Your Steps 32",
)
_SAMPLER_FIELDS = (("txt2img", "sampler"), ("img2img", "sampler"))
_SCHEDULER_FIELDS = (("txt2img", "scheduler"), ("img2img", "scheduler"))


def _single_line(value: str) -> str:
    if not value:
        raise ValueError("The name is empty. Type a name.")
    if any(ord(c) < 32 for c in value):
        raise ValueError("The name must be one line of text, without tabs or line breaks.")
    return value


#: The name of a preset, pack or profile: one trimmed, non-empty line.
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=120),
                        AfterValidator(_single_line)]


class LibraryError(Exception):
    """A library operation that could not be done: `message` for users, `detail` for logs."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class DocumentWarning:
    """Something in a valid file that may not work on every server (e.g. an unknown sampler)."""

    path: Path | None
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = [str(self.path) if self.path else "<text>"]
        if self.line is not None:
            where.append(f"line {self.line}")
        where.append(f"field '{self.field}'")
        return ", ".join(where) + f": {self.message}"


# --- the partial config a preset holds ------------------------------------------------------


@cache
def partial_model(model: type[BaseModel]) -> type[BaseModel]:
    """A copy of *model* where every field is optional (None: "not set by this preset").

    Titles, descriptions and limits are copied, so errors read exactly as for the full
    config ("Steps must be between 1 and 150") and name the precise field.
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name == "version":
            continue
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = partial_model(annotation)
        partial_info = copy.copy(info)
        partial_info.default = None
        partial_info.default_factory = None
        partial_info.annotation = annotation | None  # type: ignore[operator]
        fields[name] = (annotation | None, partial_info)  # type: ignore[operator]
    return create_model(  # type: ignore[call-overload, no-any-return]
        f"Partial{model.__name__}", __config__=ConfigDict(extra="forbid"), __doc__=model.__doc__,
        **fields)


PartialPipelineConfig = partial_model(PipelineConfig)


def partial_of(config: PipelineConfig, *, include_prompts: bool = False,
               include_seed: bool = False) -> dict[str, Any]:
    """The nested dict a preset stores for *config*: every stage setting; prompts and seed
    only if asked (a preset is a look to reuse, not one image to repeat).

    Every value is kept (not only non-defaults) because a preset is laid over whatever the
    user has now: a value equal to the default must still reset a changed field. The safety
    limits are the user's, never a preset's.
    """
    data = config.model_dump(mode="json", exclude={"version", "limits"})
    if not include_prompts:
        data["txt2img"].pop("prompt", None)
        data["txt2img"].pop("negative_prompt", None)
    if not include_seed:
        data["txt2img"].pop("seed", None)
    return data


def _clean(data: Any) -> Any:
    if isinstance(data, dict):
        cleaned = {k: _clean(v) for k, v in data.items() if v is not None}
        return {k: v for k, v in cleaned.items() if v != {}}
    if isinstance(data, list):
        return [_clean(v) for v in data]
    return data


class Preset(BaseModel):
    """A named, versioned part of a PipelineConfig plus prompt styles, laid over the current one."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    version: int = PRESET_VERSION
    name: DisplayName = Field(..., title="Name", description="What the preset is called in the list.")
    description: str = Field("", max_length=4000, title="Description")
    tags: list[str] = Field(default_factory=list, title="Tags")
    styles: list[PromptStyle] = Field(default_factory=list, title="Styles",
                                      description="Prompt styles merged into the prompt when applied.")
    config: PartialPipelineConfig = Field(  # type: ignore[valid-type]
        default_factory=PartialPipelineConfig, title="Settings",
        description="The settings this preset changes; everything else stays as it is.")

    @model_validator(mode="after")
    def _valid_over_defaults(self) -> Preset:
        # The cross-field limits (total upscale, output size) are checked on the defaults, so
        # a preset that can never run is refused when it is saved, not when it is used.
        try:
            PipelineConfig().layered(self.partial())
        except ValidationError as exc:
            problems = plain_problems(exc, PipelineConfig)
            raise ValueError("; ".join(str(p) for p in problems)) from None
        return self

    def partial(self) -> dict[str, Any]:
        """The settings this preset sets, as a nested dict (unset fields left out)."""
        return _clean(self.config.model_dump(mode="json", exclude_unset=True))

    def apply_to(self, config: PipelineConfig) -> PipelineConfig:
        """*config* with this preset's settings laid over it and its styles merged in.

        Raises ConfigInvalid (plain words) when the combination cannot run, e.g. the preset's
        upscale on top of the hires fix already set exceeds the upscale limit.
        """
        try:
            result = config.layered(self.partial())
        except ValidationError as exc:
            problems = plain_problems(exc, PipelineConfig)
            raise ConfigInvalid([Problem(p.field, f"With preset '{self.name}': {p.message}")
                                 for p in problems]) from None
        if self.styles:
            prompt, negative = result.txt2img.prompt, result.txt2img.negative_prompt
            for style in self.styles:
                prompt, negative = style.apply(prompt, negative)
            result = result.with_changes({"txt2img.prompt": prompt, "txt2img.negative_prompt": negative})
        return result

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude={"config"}, exclude_defaults=True)
        data = {"version": PRESET_VERSION, "name": self.name, **data}
        partial = self.partial()
        if partial:
            data["config"] = partial
        return dump_yaml(data)

    @classmethod
    def from_config(cls, name: str, config: PipelineConfig, *, description: str = "",
                    tags: list[str] | None = None, include_prompts: bool = False,
                    include_seed: bool = False) -> Preset:
        return cls(name=name, description=description, tags=list(tags or []),
                   config=partial_of(config, include_prompts=include_prompts, include_seed=include_seed))


def migrate_preset(data: dict[str, Any]) -> dict[str, Any]:
    """Upgrade older preset documents to the current format."""
    version = data.get("version", 0)
    if not isinstance(version, int):
        raise ValueError("'version' must be a whole number")
    if version > PRESET_VERSION:
        raise ValueError(
            f"it was written by a newer StableNew (preset format {version}; this one reads up "
            f"to {PRESET_VERSION}). Update StableNew to open it.")
    if version == 0:
        # v0 (the prototype) used title/notes and kept the config, itself in config format
        # v0 (txt2img fields at the top level, "cfg"), under "settings".
        data = dict(data)
        if "title" in data:
            data.setdefault("name", data.pop("title"))
        if "notes" in data:
            data.setdefault("description", data.pop("notes"))
        settings = data.pop("settings", None)
        if isinstance(settings, dict):
            config = migrate_config({**settings, "version": 0})
            config.pop("version", None)
            data["config"] = config
        data["version"] = 1
    return data


# --- unknown sampler names --------------------------------------------------------------------


def line_at(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of the value at *loc* (names and list positions) in a parsed YAML tree."""
    current = node
    line = None
    for part in loc:
        if isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(current.value):
                return line
            current = current.value[part]
            line = current.start_mark.line + 1
            continue
        if not isinstance(current, yaml.MappingNode):
            return line
        for key, value in current.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                line, current = key.start_mark.line + 1, value
                break
        else:
            return line
    return line


# Old names carry the scheduler ("DPM++ 2M Karras"); servers still accept and split them.
_SAMPLER_NAMES = frozenset(KNOWN_SAMPLERS) | {
    f"{s} {sch}" for s in KNOWN_SAMPLERS for sch in KNOWN_SCHEDULERS if sch != "Automatic"}


def name_warnings(partial: dict[str, Any], node: yaml.Node | None = None,
                  path: Path | None = None, prefix: tuple[str, ...] = ("config",)) -> list[DocumentWarning]:
    """Warnings for sampler and scheduler names no known server offers, with a suggestion."""
    found: list[DocumentWarning] = []
    checks = [(loc, _SAMPLER_NAMES, "sampler") for loc in _SAMPLER_FIELDS]
    checks += [(loc, frozenset(KNOWN_SCHEDULERS), "scheduler") for loc in _SCHEDULER_FIELDS]
    for loc, known, kind in checks:
        value = partial.get(loc[0], {}).get(loc[1]) if isinstance(partial.get(loc[0]), dict) else None
        if not isinstance(value, str) or value in known:
            continue
        close = difflib.get_close_matches(value, sorted(known), n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        message = (f"'{value}' is not a {kind} StableNew knows from A1111 or Forge.{hint} It will only "
                   f"work if your server has a {kind} by that exact name.")
        full = prefix + loc
        found.append(DocumentWarning(path, line_at(node, full), ".".join(full), message))
    return found


# --- folders of documents ---------------------------------------------------------------------


class Source(StrEnum):
    shipped = "shipped"
    user = "user"


T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")


@dataclass(frozen=True)
class LibraryEntry(Generic[T]):
    """One file in a library list: the loaded item, or why it is broken."""

    path: Path
    source: Source
    item: T | None = None
    error: DocumentError | None = None
    warnings: tuple[DocumentWarning, ...] = ()

    @property
    def broken(self) -> bool:
        return self.item is None

    @property
    def read_only(self) -> bool:
        return self.source is Source.shipped

    @property
    def name(self) -> str:
        item_name = getattr(self.item, "name", None)
        return str(item_name) if item_name else self.path.stem

    @property
    def key(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class TrashTicket:
    """What `undo_delete` needs to bring a deleted file back."""

    original: Path
    trashed: Path
    name: str = ""


class FolderLock:
    """An OS-level lock on a folder so two windows or processes never interleave changes.

    The file writes themselves are atomic (write-then-replace); the lock keeps read-check-
    write sequences such as "is this name free? then save" whole across processes.
    """

    _local = threading.local()

    def __init__(self, folder: Path, *, timeout: float = 15.0) -> None:
        self.path = folder / LOCK_FILE
        self.timeout = timeout
        self._handle: Any = None

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 - held until __exit__
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                _lock_file(handle)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    handle.close()
                    raise LibraryError(
                        "Another StableNew window is busy changing this folder. Try again in a moment.",
                        detail=f"lock {self.path} not acquired in {self.timeout}s: {exc}") from None
                time.sleep(0.005)
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                _unlock_file(handle)
            finally:
                handle.close()


if sys.platform == "win32":
    import msvcrt

    def _lock_file(handle: Any) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock_file(handle: Any) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock_file(handle: Any) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_file(handle: Any) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}


def file_stem(name: str) -> str:
    """A file name for *name* that is valid on Windows, macOS and Linux."""
    stem = re.sub(r'[<>:"/\\|?*\x00-\x1f]+', "_", name).strip().rstrip(". ")
    stem = stem.lstrip(".") or "preset"
    if stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    return stem[:100]


def _retrying(action: Callable[[], R]) -> R:
    # Windows refuses to replace a file while another process (a second window listing the
    # folder) has it open for a moment; elsewhere a PermissionError is real and raised at once.
    attempts = 50 if os.name == "nt" else 1
    for attempt in range(attempts):
        try:
            return action()
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.01)
    raise AssertionError("unreachable")


def _replace_with_retry(src: Path, dst: Path) -> None:
    _retrying(lambda: os.replace(src, dst))


class LibraryFolder(Generic[T]):
    """A folder of YAML documents (plus optional read-only shipped ones) with safe changes."""

    kind = "document"

    def __init__(self, user_dir: Path, shipped_dir: Path | None = None) -> None:
        self.user_dir = Path(user_dir)
        self.shipped_dir = Path(shipped_dir) if shipped_dir is not None else None

    # Subclasses say how to read and write their documents.
    def parse(self, text: str, path: Path | None) -> tuple[T, list[DocumentWarning]]:
        raise NotImplementedError

    def dump(self, item: T) -> str:
        raise NotImplementedError

    def renamed(self, item: T, name: str) -> T:
        return item.model_copy(update={"name": name})

    # --- reading ---------------------------------------------------------------------------

    @property
    def trash_dir(self) -> Path:
        return self.user_dir / TRASH_FOLDER

    def load(self, path: str | os.PathLike[str]) -> tuple[T, list[DocumentWarning]]:
        """Read and validate one file; raises DocumentError naming file, line and field."""
        file = Path(path)
        return self.parse(read_document_text(file), file)

    def entries(self) -> list[LibraryEntry[T]]:
        """User documents first, then shipped ones, each sorted by name; broken ones included."""
        found: list[LibraryEntry[T]] = []
        for folder, source in ((self.user_dir, Source.user), (self.shipped_dir, Source.shipped)):
            if folder is None or not folder.is_dir():
                continue
            batch = [self._entry(path, source) for path in self._files(folder)]
            found.extend(sorted(batch, key=lambda e: e.name.casefold()))
        return found

    def _files(self, folder: Path) -> Iterator[Path]:
        for path in folder.iterdir():
            if path.suffix.lower() in DOCUMENT_SUFFIXES and not path.name.startswith(".") \
                    and path.is_file():
                yield path

    def _entry(self, path: Path, source: Source) -> LibraryEntry[T]:
        try:
            item, warnings = self.load(path)
        except DocumentError as exc:
            return LibraryEntry(path, source, error=exc)
        return LibraryEntry(path, source, item=item, warnings=tuple(warnings))

    def find(self, name: str) -> LibraryEntry[T] | None:
        """The entry called *name* (a user document wins over a shipped one of the same name)."""
        for entry in self.entries():
            if entry.name == name or (entry.broken and entry.path.stem == name):
                return entry
        return None

    def signature(self) -> tuple[tuple[str, int, int], ...]:
        """A cheap fingerprint of the folders; it changes when a file is added, edited or removed."""
        sig = []
        for folder in (self.user_dir, self.shipped_dir):
            if folder is None or not folder.is_dir():
                continue
            for path in self._files(folder):
                try:
                    st = path.stat()
                except OSError:
                    continue
                sig.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(sorted(sig))

    # --- changing --------------------------------------------------------------------------

    def path_for(self, name: str) -> Path:
        return self.user_dir / f"{file_stem(name)}.yaml"

    def _validated_text(self, item: T) -> str:
        # Validate the exact text that will be written, so a save can never produce a file
        # that the next start cannot read.
        text = self.dump(item)
        self.parse(text, None)
        return text

    def save(self, item: T, *, replace: bool = True, previous: Path | None = None) -> Path:
        """Validate, then write atomically into the user folder; returns the file written.

        *replace* False refuses to overwrite another document of the same file name.
        *previous* is the file this item was loaded from: it is removed after a rename.
        """
        try:
            text = self._validated_text(item)
        except DocumentError as exc:
            raise LibraryError(f"This {self.kind} was not saved: {exc.reason}", detail=str(exc)) from None
        target = self.path_for(getattr(item, "name", "untitled"))
        with FolderLock(self.user_dir):
            if target.exists() and not replace and not _same_file(target, previous):
                raise LibraryError(
                    f"A {self.kind} named '{getattr(item, 'name', target.stem)}' already exists. "
                    "Choose another name.", detail=str(target))
            _retrying(lambda: atomic_write_text(target, text))
            if previous is not None and previous.parent == self.user_dir and not _same_file(target, previous):
                previous.unlink(missing_ok=True)
        return target

    def _require_user(self, entry: LibraryEntry[T], verb: str) -> None:
        if entry.read_only:
            raise LibraryError(
                f"'{entry.name}' ships with StableNew and cannot be {verb}. Duplicate it first, "
                "then change the copy.", detail=str(entry.path))

    def rename(self, entry: LibraryEntry[T], new_name: str) -> Path:
        self._require_user(entry, "renamed")
        if entry.item is None:
            raise LibraryError(f"'{entry.name}' cannot be renamed while it is broken: {entry.error}")
        new_name = new_name.strip()
        if not new_name:
            raise LibraryError("The new name is empty. Type a name.")
        if not entry.path.exists():
            # Renaming writes the new file from memory; it must not bring back a deleted one.
            raise LibraryError(f"'{entry.name}' is already gone from disk (deleted in another "
                               "window or program).", detail=str(entry.path))
        return self.save(self.renamed(entry.item, new_name), replace=False, previous=entry.path)

    def free_name(self, base: str) -> str:
        taken = {e.name.casefold() for e in self.entries()}
        taken |= {p.stem.casefold() for p in self._files(self.user_dir)} if self.user_dir.is_dir() else set()
        if base.casefold() not in taken and file_stem(base).casefold() not in taken:
            return base
        for n in range(1, 1000):
            candidate = f"{base} (copy)" if n == 1 else f"{base} (copy {n})"
            if candidate.casefold() not in taken and file_stem(candidate).casefold() not in taken:
                return candidate
        return f"{base} {uuid.uuid4().hex[:6]}"

    def duplicate(self, entry: LibraryEntry[T], new_name: str | None = None) -> Path:
        if entry.item is None:
            raise LibraryError(f"'{entry.name}' cannot be duplicated while it is broken: {entry.error}")
        name = new_name.strip() if new_name else self.free_name(entry.name)
        return self.save(self.renamed(entry.item, name), replace=False)

    def delete(self, entry: LibraryEntry[T]) -> TrashTicket:
        """Move a user document (even a broken one) into the trash folder; undo brings it back."""
        self._require_user(entry, "deleted")
        with FolderLock(self.user_dir):
            self.trash_dir.mkdir(parents=True, exist_ok=True)
            stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
            trashed = self.trash_dir / f"{stamp}-{entry.path.name}"
            try:
                _replace_with_retry(entry.path, trashed)
            except FileNotFoundError:
                raise LibraryError(f"'{entry.name}' is already gone from disk.",
                                   detail=str(entry.path)) from None
        return TrashTicket(entry.path, trashed, entry.name)

    def undo_delete(self, ticket: TrashTicket) -> Path:
        """Bring a deleted document back (under a free file name if its old one is taken)."""
        with FolderLock(self.user_dir):
            if not ticket.trashed.exists():
                raise LibraryError("The deleted file is no longer in the trash, so it cannot be restored.",
                                   detail=str(ticket.trashed))
            target = ticket.original
            n = 2
            while target.exists():
                target = ticket.original.with_name(f"{ticket.original.stem} ({n}){ticket.original.suffix}")
                n += 1
            _replace_with_retry(ticket.trashed, target)
        return target

    def import_file(self, source: str | os.PathLike[str], *, replace: bool = False) -> Path:
        """Copy a valid document into the user folder, byte for byte (comments kept).

        An invalid file raises DocumentError and nothing is written.
        """
        src = Path(source)
        item, _warnings = self.load(src)
        raw = src.read_bytes()
        target = self.path_for(getattr(item, "name", src.stem))
        with FolderLock(self.user_dir):
            if target.exists() and not replace:
                raise LibraryError(
                    f"You already have a {self.kind} named '{getattr(item, 'name', src.stem)}' "
                    f"({target}). Rename one of them, or replace it.", detail=str(target))
            _retrying(lambda: atomic_write_bytes(target, raw))
        return target

    def export(self, entry: LibraryEntry[T], destination: str | os.PathLike[str]) -> Path:
        if entry.broken:
            raise LibraryError(f"'{entry.name}' is broken and was not exported: {entry.error}")
        return atomic_write_bytes(Path(destination), entry.path.read_bytes())

    def empty_trash(self, older_than_s: float = 30 * 24 * 3600) -> int:
        """Remove trashed files older than *older_than_s*; returns how many went."""
        if not self.trash_dir.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for path in self.trash_dir.iterdir():
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _same_file(a: Path, b: Path | None) -> bool:
    if b is None:
        return False
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


class PresetStore(LibraryFolder[Preset]):
    """The shipped presets (read-only) and the user's presets folder."""

    kind = "preset"

    def __init__(self, user_dir: Path | None = None, shipped_dir: Path | None = None) -> None:
        super().__init__(user_dir if user_dir is not None else AppPaths.default().presets_dir,
                         shipped_dir if shipped_dir is not None else shipped_presets_dir())

    def parse(self, text: str, path: Path | None) -> tuple[Preset, list[DocumentWarning]]:
        return parse_preset(text, path)

    def dump(self, item: Preset) -> str:
        return item.to_yaml()


def shipped_presets_dir() -> Path:
    return resource_path("presets")


def parse_preset(
    text: str, path: str | os.PathLike[str] | None = None
) -> tuple[Preset, list[DocumentWarning]]:
    """Validate preset YAML; raises DocumentError (file/line/field), returns name warnings."""
    preset = parse_yaml_model(text, Preset, path=path, migrate=migrate_preset)
    _data, node = parse_yaml(text, path)
    return preset, name_warnings(preset.partial(), node, Path(path) if path is not None else None)


def load_preset(path: str | os.PathLike[str]) -> tuple[Preset, list[DocumentWarning]]:
    return parse_preset(read_document_text(path), path)


__all__ = [
    "DisplayName",
    "DocumentWarning",
    "FolderLock",
    "KNOWN_SAMPLERS",
    "KNOWN_SCHEDULERS",
    "LibraryEntry",
    "LibraryError",
    "LibraryFolder",
    "PRESET_VERSION",
    "PartialPipelineConfig",
    "Preset",
    "PresetStore",
    "Source",
    "TrashTicket",
    "file_stem",
    "line_at",
    "load_preset",
    "migrate_preset",
    "name_warnings",
    "parse_preset",
    "partial_of",
]
