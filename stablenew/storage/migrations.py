"""Versioned documents (configs, presets, packs, profiles): one runner for their upgrades.

Each kind of document declares its steps as (from version, to version, function); the runner
checks the version, applies the steps in order on a copy, and either returns the upgraded copy or
raises ValueError — the caller's data is never left half-upgraded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Step = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Migrations:
    """The upgrade path of one kind of document, from its oldest format to *current*."""

    kind: str  # the user's word for the document: "preset", "pack format", ...
    current: int
    steps: tuple[tuple[int, int, Step], ...] = ()

    def __post_init__(self) -> None:
        version = min((start for start, _, _ in self.steps), default=self.current)
        for start, end, _ in sorted(self.steps, key=lambda s: s[0]):
            if start != version or end <= start:
                raise ValueError(f"{self.kind}: migration steps must run {version} -> ... in order, "
                                 f"got {start} -> {end}")
            version = end
        if version != self.current:
            raise ValueError(f"{self.kind}: the steps end at {version}, not at {self.current}")

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        """*data* upgraded to the current version (a copy; *data* itself is not changed)."""
        version = data.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("'version' must be a whole number")
        if version > self.current:
            raise ValueError(f"it was written by a newer StableNew ({self.kind} {version}; this one "
                             f"reads up to {self.current}). Update StableNew to open it.")
        if version == self.current:
            return data
        upgraded = copy.deepcopy(data)
        for start, end, step in sorted(self.steps, key=lambda s: s[0]):
            if start < version:
                continue
            if start != version:
                raise ValueError(f"StableNew cannot upgrade a {self.kind} {version} document.")
            upgraded = step(upgraded)
            upgraded["version"] = version = end
        return upgraded
