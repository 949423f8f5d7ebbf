"""Cheap fingerprints of document folders: a change to any file shows as a different value."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

#: (path, modification time in ns, size) of each file, sorted by path
Signature = tuple[tuple[str, int, int], ...]


def files_signature(paths: Iterable[Path]) -> Signature:
    """Names, modification times and sizes of *paths*; a file that vanished meanwhile is left out."""
    sig: list[tuple[str, int, int]] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        sig.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(sorted(sig))
