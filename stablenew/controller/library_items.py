"""The library's rows in plain values (what the sidebar lists show) and the error of a row
that changed on disk meanwhile."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from stablenew.pipeline.presets import LibraryEntry
from stablenew.randomizer.packs import PackEntry

if TYPE_CHECKING:
    from stablenew.pipeline.presets import Preset
    from stablenew.randomizer.profiles import Profile


class ItemKind(StrEnum):
    """The three kinds of things the library keeps."""

    preset = "preset"
    pack = "pack"
    profile = "profile"


@dataclass(frozen=True)
class LibraryItem:
    """One row of a sidebar list, in plain values the view shows as they are."""

    key: str
    kind: ItemKind
    name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    source: str = "user"  # "shipped" rows are read-only
    broken: bool = False
    problem: str = ""  # why a broken row cannot be used, or its warnings (tooltip text)
    detail: str = ""  # e.g. "12 prompts · default preset SDXL quality"
    default_preset: str = ""

    @property
    def read_only(self) -> bool:
        return self.source == "shipped"

    def matches(self, text: str) -> bool:
        needle = text.casefold().strip()
        if not needle:
            return True
        haystack = " ".join((self.name, self.description, " ".join(self.tags), self.detail)).casefold()
        return all(word in haystack for word in needle.split())


def folder_item(kind: ItemKind, entry: LibraryEntry[Preset] | LibraryEntry[Profile]) -> LibraryItem:
    item = entry.item
    problem = str(entry.error) if entry.error is not None else "\n".join(
        f"Warning: {w.message} (line {w.line}, {w.field})" if w.line else f"Warning: {w.message}"
        for w in entry.warnings)
    return LibraryItem(
        key=entry.key, kind=kind, name=entry.name,
        description=getattr(item, "description", "") if item is not None else "",
        tags=tuple(getattr(item, "tags", ()) or ()) if item is not None else (),
        source=entry.source.value, broken=entry.broken, problem=problem)


def pack_item(entry: PackEntry) -> LibraryItem:
    if entry.pack is None:
        return LibraryItem(key=entry.key, kind=ItemKind.pack, name=entry.name, broken=True,
                           problem=str(entry.error))
    count = len(entry.pack.prompts)
    detail = f"{count} prompt{'s' if count != 1 else ''}"
    if entry.default_preset:
        detail += f" · default preset {entry.default_preset}"
    return LibraryItem(key=entry.key, kind=ItemKind.pack, name=entry.name,
                       description=entry.pack.description, tags=tuple(entry.pack.tags), detail=detail,
                       default_preset=entry.default_preset or "")


class Gone(Exception):
    """An item the view asked for is no longer in the list (changed on disk meanwhile)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def gone(kind: ItemKind) -> Gone:
    return Gone(f"That {kind.value} is no longer in the list (it may have changed on disk). "
                 "Refresh the list and try again.")

