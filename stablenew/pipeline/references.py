"""Reference images kept by content hash, so a queued job still has them after a restart.

The card stores a picture here when the user adds it; the config (and so the queue item)
keeps its path and sha256; the stage reads it back and checks the hash before sending.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from stablenew.backends import types as bt
from stablenew.backends.errors import RequestRejected
from stablenew.pipeline.config import ReferenceSettings
from stablenew.storage.atomic import atomic_write_bytes


class ReferenceMissing(RequestRejected):
    """A reference image of a config is gone, changed or unreadable (plain words for the user)."""


def _extension(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    raise ReferenceMissing("A reference image must be a PNG, JPEG or WebP file.")


def store_reference(data: bytes, folder: Path) -> ReferenceSettings:
    """Keep *data* as `<folder>/<sha256>.<ext>` (once: the same picture is stored once) and
    return the settings that name it."""
    digest = hashlib.sha256(data).hexdigest()
    path = folder / f"{digest}{_extension(data)}"
    if not path.exists():
        atomic_write_bytes(path, data)
    else:
        # Taken up again now: the start-up clean of unused copies spares what was just used.
        with contextlib.suppress(OSError):
            os.utime(path)
    return ReferenceSettings(image=str(path), sha256=digest)


def read_reference(ref: ReferenceSettings) -> bytes:
    """The stored picture, checked against its hash."""
    try:
        data = Path(ref.image).read_bytes()
    except OSError as exc:
        raise ReferenceMissing(f"The reference image {ref.image} is gone; add it to the card again.") from exc
    if ref.sha256 and hashlib.sha256(data).hexdigest() != ref.sha256:
        raise ReferenceMissing(f"The reference image {ref.image} was changed after the job was queued; "
                               "add it to the card again.")
    return data


def reference_units(refs: list[ReferenceSettings]) -> tuple[bt.ReferenceUnit, ...]:
    return tuple(bt.ReferenceUnit(image=read_reference(r), kind=r.kind, model=r.model,
                                  strength=r.strength, start=r.start, end=r.end, preprocess=r.preprocess)
                 for r in refs)
