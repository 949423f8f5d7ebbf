"""Reading a safetensors header: 8-byte little-endian length, then that many bytes of JSON.

Only the header is read; the tensor bytes are never loaded. Every way a file can be bad
(too short, a length over the cap, a header that is not JSON) becomes a `HeaderError` with a
sentence a user can act on, so one broken file never stops a scan.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from stablenew.errors import StableNewError

#: Real headers are kilobytes, a few megabytes with a big tag list. Anything larger is refused
#: before reading it, so a corrupt length cannot make us allocate gigabytes.
MAX_HEADER_BYTES = 16 * 1024 * 1024


class HeaderError(StableNewError):
    """A safetensors file whose header cannot be used; `message` says why in plain words."""


@dataclass(frozen=True)
class SafetensorsHeader:
    """What a header says: the `__metadata__` strings and the tensor names, plus sizes."""

    length: int
    metadata: dict[str, str]
    tensor_names: tuple[str, ...]
    #: Where the tensor bytes end according to the header (8 + length + largest data offset).
    data_end: int


def read_header(path: str | Path, *, max_bytes: int = MAX_HEADER_BYTES) -> SafetensorsHeader:
    """The header of the safetensors file at *path*; a HeaderError if it is unusable."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise HeaderError(f"The file is too short to be a safetensors file ({len(head)} bytes).",
                                  detail=f"{path}: {len(head)} bytes, no 8-byte header length")
            (length,) = struct.unpack("<Q", head)
            if length > max_bytes:
                raise HeaderError(
                    f"The file says its header is {_size(length)}, more than the {_size(max_bytes)} "
                    "StableNew reads. The file is probably damaged; download it again.",
                    detail=f"{path}: header length {length} > cap {max_bytes}")
            raw = handle.read(length)
    except OSError as exc:
        raise HeaderError(f"The file cannot be read ({exc.strerror or exc}).",
                          detail=f"{path}: {exc!r}") from exc
    if len(raw) < length:
        raise HeaderError(
            f"The file is cut off: its header should be {length} bytes but only {len(raw)} follow. "
            "Download it again.", detail=f"{path}: header {length} bytes, {len(raw)} present")
    return parse_header(raw, path=path, file_size=path.stat().st_size)


def parse_header(raw: bytes, *, path: Path | str = "", file_size: int | None = None) -> SafetensorsHeader:
    """Parse the JSON header bytes; checks the tensor offsets against *file_size* when given."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HeaderError("The file's header is not valid JSON, so it is not a usable safetensors file.",
                          detail=f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise HeaderError("The file's header is not a JSON object, so it is not a usable safetensors file.",
                          detail=f"{path}: header is {type(data).__name__}")
    meta_raw = data.get("__metadata__")
    metadata: dict[str, str] = {}
    if isinstance(meta_raw, dict):
        # The format says strings; some tools write numbers. Keep them, as text.
        metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta_raw.items()}
    names: list[str] = []
    end = 0
    for name, info in data.items():
        if name == "__metadata__":
            continue
        names.append(name)
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets):
            end = max(end, offsets[1])
    data_end = 8 + len(raw) + end
    if file_size is not None and data_end > file_size:
        raise HeaderError(
            f"The file is cut off: it should be {_size(data_end)} but is {_size(file_size)}. "
            "The download probably stopped early; download it again.",
            detail=f"{path}: tensors end at byte {data_end}, file has {file_size}")
    return SafetensorsHeader(len(raw), metadata, tuple(names), data_end)


def _size(n: int) -> str:
    if n >= 1024 ** 3:
        return f"{n / 1024 ** 3:.1f} GB" if n < 1024 ** 6 else f"{n:,} bytes"
    if n >= 1024 ** 2:
        return f"{n / 1024 ** 2:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return "1 byte" if n == 1 else f"{n} bytes"
