"""Walking the user's folders for images, and splitting the index's SQL scripts."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from stablenew.gallery.metadata import MEDIA_TYPES
from stablenew.pipeline.outputs import THUMBNAIL_DIR


@dataclass(frozen=True)
class Problem:
    """A file or folder the index could not read, and why (in words for the user)."""

    path: str
    reason: str


def path_range(root: str) -> tuple[str, str]:
    """Bounds of the paths inside *root* for a range scan of the path index."""
    prefix = root.rstrip(os.sep) + os.sep
    return prefix, prefix[:-1] + chr(ord(os.sep) + 1)


def statements(script: str, split_triggers: bool = False) -> list[str]:
    if not split_triggers:
        return [s.strip() for s in script.split(";") if s.strip()]
    # trigger bodies hold semicolons: split on the END that closes each one
    parts, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and (not text.upper().startswith("CREATE TRIGGER")
                                   or text.upper().endswith("END;")):
            parts.append(text[:-1])
            current = []
    return parts


def walk(root: str, problems: list[Problem], *, shallow: bool = False
         ) -> Iterator[tuple[str, os.stat_result] | Problem]:
    """Image files under *root* with their stat, depth first; folders that cannot be read,
    symlink loops and broken links go to *problems*. Thumbnail folders are not images."""
    visited: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            problems.append(Problem(folder, f"folder could not be read ({exc.strerror or exc})"))
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            problems.append(Problem(folder, "folder skipped: a link leads back to a folder "
                                            "already read (a link loop)"))
            continue
        visited.add(key)
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as exc:
            problems.append(Problem(folder, f"folder could not be read ({exc.strerror or exc})"))
            continue
        subfolders = []
        for entry in sorted(listed, key=lambda e: e.name):
            try:
                if entry.is_dir():
                    if entry.name != THUMBNAIL_DIR:
                        subfolders.append(entry.path)
                    continue
                if os.path.splitext(entry.name)[1].lower() not in MEDIA_TYPES:
                    continue
                info = entry.stat()
            except OSError as exc:
                problems.append(Problem(entry.path, f"could not be read ({exc.strerror or exc})"))
                continue
            if stat.S_ISREG(info.st_mode):
                yield entry.path, info
        if not shallow:
            stack.extend(reversed(subfolders))
