"""Image decoding for views, done off the Qt thread with Pillow into raw RGBA the view wraps as is."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DecodedImage:
    """Pixels ready for a QImage (RGBA8888, tightly packed) plus the size of the original."""

    width: int
    height: int
    rgba: bytes
    original_width: int
    original_height: int


def decode_image(source: bytes | str | Path, max_side: int | None = None, *,
                 fit: bool = False) -> DecodedImage:
    """Decode (and shrink to *max_side*) an encoded image or file; call it in a worker thread.
    With *fit*, a smaller image is enlarged to *max_side* too (a gallery tile's size)."""
    from PIL import Image  # imported on first use: keeps start-up lean

    handle = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    with Image.open(handle) as image:
        original = image.size
        if max_side:
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced scale, much faster
            if max(image.size) > max_side:
                image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
        rgba = image.convert("RGBA")
        if max_side and fit and max(rgba.size) < max_side:
            scale = max_side / max(rgba.size)
            rgba = rgba.resize((max(1, round(rgba.width * scale)), max(1, round(rgba.height * scale))),
                               Image.Resampling.BILINEAR)
        return DecodedImage(rgba.width, rgba.height, rgba.tobytes(), original[0], original[1])
