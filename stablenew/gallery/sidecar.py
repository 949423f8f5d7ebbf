"""Ratings and tags beside the image: a small JSON sidecar, so a lost database loses neither.

The learning store is where a rating is kept; the sidecar is its copy on disk that travels with
the image (moved, copied or restored from a backup with it) and that a rebuilt index reads back.
A sidecar is written only for an image with a rating or a tag, and removed when both are cleared.
The image file itself is never rewritten: that would change its date and content hash.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from stablenew.storage.atomic import atomic_write_text

SUFFIX = ".stablenew.json"
MAX_SIDECAR = 64 * 1024  # larger is not ours


@dataclass(frozen=True)
class Marks:
    """What the user said about one image: stars (None when unrated) and tags."""

    rating: int | None = None
    tags: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.rating is None and not self.tags


def sidecar_path(image: str | os.PathLike[str]) -> Path:
    path = Path(image)
    return path.with_name(path.name + SUFFIX)


def read_marks(image: str | os.PathLike[str]) -> Marks:
    """The image's sidecar marks; empty when it has none or it is not one we can read."""
    path = sidecar_path(image)
    try:
        if path.stat().st_size > MAX_SIDECAR:
            return Marks()
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Marks()
    if not isinstance(data, dict):
        return Marks()
    rating = data.get("rating")
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        rating = None
    tags = data.get("tags")
    clean = tuple(t.strip() for t in tags if isinstance(t, str) and t.strip()) \
        if isinstance(tags, list) else ()
    return Marks(rating, clean)


def write_marks(image: str | os.PathLike[str], marks: Marks) -> None:
    """Write (or, for empty marks, remove) the sidecar of *image*, atomically."""
    path = sidecar_path(image)
    if marks.empty:
        path.unlink(missing_ok=True)
        return
    text = json.dumps({"format": 1, "rating": marks.rating, "tags": list(marks.tags)},
                      ensure_ascii=False)
    atomic_write_text(path, text)


def encode_tags(tags: tuple[str, ...] | list[str]) -> str:
    """Tags as one column: each between unit separators, so a tag filter is an exact `instr`."""
    return "".join(f"\x1f{t}" for t in tags) + "\x1f" if tags else ""


def decode_tags(text: str | None) -> tuple[str, ...]:
    return tuple(t for t in (text or "").split("\x1f") if t)
