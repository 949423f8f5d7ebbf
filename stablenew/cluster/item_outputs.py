"""The files one queue item's attempt leaves: found by the item's name prefix, removed before
the item runs again."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

#: Name endings of images the runner keeps as unfinished work (see pipeline/runner.py).
_LABELLED = re.compile(r"-(incomplete|[a-z0-9]+-only)\.(png|jpg)$")


def clean_item_outputs(folder: Path, prefix: str, *, keep_labelled: bool = False) -> list[Path]:
    """Delete files named for one item (`<prefix>-...`), its thumbnails and torn temp files;
    with *keep_labelled*, not the images kept and named as unfinished."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    starts = (f"{prefix}-", f".{prefix}-")
    for sub in (folder, folder / ".thumbnails"):
        if not sub.is_dir():
            continue
        for entry in sub.iterdir():
            if keep_labelled and entry.name.startswith(f"{prefix}-") and _LABELLED.search(entry.name):
                continue
            if entry.name.startswith(starts) and entry.is_file():
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
    return removed
