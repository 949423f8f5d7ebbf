"""Folders of library documents (presets, profiles): listing with broken files kept, and safe
changes — validated first, written atomically under an OS-level folder lock, deletions into a
trash folder with undo, shipped documents read-only.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, StringConstraints

from stablenew.errors import StableNewError
from stablenew.storage.atomic import atomic_write_bytes, atomic_write_text
from stablenew.storage.documents import DocumentError, keep_comments, read_document_text
from stablenew.storage.folders import Signature, files_signature

DOCUMENT_SUFFIXES = (".yaml", ".yml")
TRASH_FOLDER = ".trash"
LOCK_FILE = ".stablenew.lock"


def _single_line(value: str) -> str:
    if not value:
        raise ValueError("The name is empty. Type a name.")
    if any(ord(c) < 32 for c in value):
        raise ValueError("The name must be one line of text, without tabs or line breaks.")
    return value


#: The name of a preset, pack or profile: one trimmed, non-empty line.
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=120),
                        AfterValidator(_single_line)]


class LibraryError(StableNewError):
    """A library operation that could not be done: `message` for users, `detail` for logs."""


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
    write sequences such as "is this name free? then save" whole across processes. It is
    re-entrant within a thread, so an operation holding it may call another that takes it.
    """

    _held = threading.local()

    def __init__(self, folder: Path, *, timeout: float = 15.0) -> None:
        self.path = folder / LOCK_FILE
        self.timeout = timeout
        self._key = os.path.normcase(os.path.abspath(self.path))

    def _depths(self) -> dict[str, list[Any]]:
        if not hasattr(self._held, "depths"):
            self._held.depths = {}
        return self._held.depths

    def __enter__(self) -> FolderLock:
        held = self._depths().get(self._key)
        if held is not None:
            held[1] += 1
            return self
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
        self._depths()[self._key] = [handle, 1]
        return self

    def __exit__(self, *exc: object) -> None:
        held = self._depths()[self._key]
        held[1] -= 1
        if held[1]:
            return
        del self._depths()[self._key]
        try:
            _unlock_file(held[0])
        finally:
            held[0].close()


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


class LibraryFolder(ABC, Generic[T]):
    """A folder of YAML documents (plus optional read-only shipped ones) with safe changes."""

    kind = "document"

    def __init__(self, user_dir: Path, shipped_dir: Path | None = None) -> None:
        self.user_dir = Path(user_dir)
        self.shipped_dir = Path(shipped_dir) if shipped_dir is not None else None

    # Subclasses say how to read and write their documents.
    @abstractmethod
    def parse(self, text: str, path: Path | None) -> tuple[T, list[DocumentWarning]]: ...

    @abstractmethod
    def dump(self, item: T) -> str: ...

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

    def signature(self) -> Signature:
        """A cheap fingerprint of the folders; it changes when a file is added, edited or removed."""
        folders = [f for f in (self.user_dir, self.shipped_dir) if f is not None and f.is_dir()]
        return files_signature(path for folder in folders for path in self._files(folder))

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
            text = _with_comments_of(target if target.exists() else previous, text)
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
        with FolderLock(self.user_dir):  # the free name stays free until the copy is written
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


def _with_comments_of(old: Path | None, text: str) -> str:
    """*text*, keeping the comments a person wrote into the file it replaces (same data)."""
    if old is None:
        return text
    try:
        old_text = old.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return text
    return keep_comments(old_text, text)


def _same_file(a: Path, b: Path | None) -> bool:
    if b is None:
        return False
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


__all__ = [
    "DisplayName",
    "DocumentWarning",
    "FolderLock",
    "LibraryEntry",
    "LibraryError",
    "LibraryFolder",
    "Source",
    "TrashTicket",
    "file_stem",
    "line_at",
]
