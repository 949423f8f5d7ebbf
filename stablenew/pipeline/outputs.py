"""Where output images go and how they are written: run folders, safe file names, PNGs with
metadata written atomically, thumbnails.

Everything here is plain blocking code meant to run in a worker thread, off the event loop.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import struct
import time
import unicodedata
import uuid
import zlib
from pathlib import Path
from typing import NamedTuple

from stablenew.storage.atomic import atomic_write_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
THUMBNAIL_SIZE = 256
THUMBNAIL_DIR = ".thumbnails"
MAX_SLUG = 48

# Windows refuses these as file names whatever the extension (CON.png is still CON).
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
             *(f"LPT{i}" for i in range(10))}
_UNSAFE = re.compile(r"[^a-z0-9]+")
# Prompt syntax that says nothing about the picture: weights, LoRA tags, wildcards.
_NOISE = re.compile(r"<[^>]*>|:\s*-?\d+(\.\d+)?|__[^_]+__")


class OutputError(Exception):
    """An output could not be written; `message` is for users, `detail` for logs."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


def slugify(text: str, *, max_length: int = MAX_SLUG, fallback: str = "image") -> str:
    """A short, lower-case, ASCII-only name part, safe on every file system.

    Only [a-z0-9-] survive, so separators, traversal, NUL, control characters and emoji
    cannot reach the file system; reserved Windows names get a suffix.
    """
    text = _NOISE.sub(" ", text or "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = _UNSAFE.sub("-", text).strip("-")
    if len(slug) > max_length:
        cut = slug[:max_length]
        # Prefer ending on a whole word when one ends reasonably late.
        dash = cut.rfind("-")
        slug = cut[:dash] if dash >= max_length // 2 else cut
        slug = slug.strip("-")
    if not slug:
        slug = fallback
    if slug.upper() in _RESERVED:
        slug += "-x"
    return slug


def image_file_name(prompt: str, index: int, seed: int, *, prefix: str | None = None) -> str:
    """`<index>-<slug>-<seed>.png`, or `<prefix>-<index>-<slug>.png` for a queue item.

    With a prefix the name depends on nothing random (the prompt is fixed when the item is
    queued), so a restarted item overwrites its own earlier output instead of leaving a second
    copy; the prefix comes first, so its files are found by name, and the prompt keeps the
    name readable in a file browser.
    """
    if prefix is not None:
        return (f"{slugify(prefix, max_length=64, fallback='item')}-{index:04d}-"
                f"{slugify(prompt, max_length=32)}.png")
    return f"{index:04d}-{slugify(prompt)}-{seed}.png"


def plan_run_folder(output_root: Path, prompt: str, *, now: float | None = None) -> Path:
    """A name for a fresh run folder like `new_run_folder`'s, without making it: the run
    makes it with its first image, so a run that saves nothing leaves no empty folder."""
    stamp = time.strftime("%Y-%m-%d-%H%M%S", time.localtime(now))
    base = f"{stamp}-{slugify(prompt, max_length=24, fallback='run')}"
    for attempt in range(1000):
        folder = output_root / (base if attempt == 0 else f"{base}-{attempt + 1}")
        if not folder.exists():
            return folder
    return output_root / f"{base}-{uuid.uuid4().hex[:8]}"


def new_run_folder(output_root: Path, prompt: str, *, now: float | None = None) -> Path:
    """A fresh folder `<date>-<time>-<slug>` under *output_root* (a suffix if it exists)."""
    stamp = time.strftime("%Y-%m-%d-%H%M%S", time.localtime(now))
    base = f"{stamp}-{slugify(prompt, max_length=24, fallback='run')}"
    output_root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        name = base if attempt == 0 else f"{base}-{attempt + 1}"
        folder = output_root / name
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    folder = output_root / f"{base}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def folder_problem(folder: Path) -> str:
    """Why *folder* could not be made or written to ("" when it can), without making it:
    the nearest folder that exists must be a writable folder."""
    here = Path(folder)
    while not here.exists():
        if here.parent == here:
            return f"no existing parent of {folder}"
        here = here.parent
    if not here.is_dir():
        return f"{here} is a file, not a folder"
    if not os.access(here, os.W_OK | os.X_OK):
        return f"{here} is not writable"
    return ""


def thumbnail_path(image_path: Path | str) -> Path:
    """Where the thumbnail of *image_path* is kept: `.thumbnails/STEM.jpg` beside it. Built from
    the string (a path as pathlib would take it apart): the gallery asks for 200 at a time, and
    pathlib's steps were most of reading a page of its list."""
    folder, name = os.path.split(image_path)
    stem = name if name.endswith(".") else os.path.splitext(name)[0]  # as Path.stem
    return Path(folder, THUMBNAIL_DIR, stem + ".jpg")


# --- PNG with metadata --------------------------------------------------------------------


class EncodedImage(NamedTuple):
    """PNG bytes ready to write, with the image's size."""

    data: bytes
    width: int
    height: int


def png_with_metadata(image: bytes, text_chunks: dict[str, str]) -> EncodedImage:
    """The image as PNG carrying *text_chunks*, replacing any chunks of the same keys.

    A PNG from the server is kept byte for byte (pixels, colour profile) and the text chunks
    are spliced in after IHDR: re-encoding 512×512 pixels costs tens of milliseconds per
    image, which would show in throughput. Other formats are converted once with Pillow.
    """
    if image.startswith(PNG_SIGNATURE):
        try:
            return _splice_png(image, text_chunks)
        except (ValueError, struct.error):
            pass  # malformed chunk list: let Pillow decide whether the pixels are usable
    return _reencode_png(image, text_chunks)


def _text_chunk_bytes(text_chunks: dict[str, str]) -> bytes:
    from PIL.PngImagePlugin import PngInfo, putchunk

    info = PngInfo()
    for key, value in text_chunks.items():
        info.add_text(key, value)  # tEXt when Latin-1 is enough, iTXt (UTF-8) otherwise
    out = io.BytesIO()
    for chunk_id, data, _after_idat in info.chunks:
        putchunk(out, chunk_id, data)
    return out.getvalue()


def _splice_png(image: bytes, text_chunks: dict[str, str]) -> EncodedImage:
    view = memoryview(image)
    pos = len(PNG_SIGNATURE)
    parts: list[bytes | memoryview] = [PNG_SIGNATURE]
    width = height = 0
    seen_iend = False
    keys = {k.encode("latin-1", "replace") for k in text_chunks}
    while pos < len(image):
        length, chunk_id = struct.unpack(">I4s", view[pos:pos + 8])
        end = pos + 12 + length
        if end > len(image):
            raise ValueError("truncated PNG chunk")
        if chunk_id == b"IHDR":
            width, height = struct.unpack(">II", view[pos + 8:pos + 16])
            parts.append(view[pos:end])
            parts.append(_text_chunk_bytes(text_chunks))
        elif chunk_id in (b"tEXt", b"iTXt", b"zTXt") and \
                bytes(view[pos + 8:pos + 8 + min(length, 80)]).split(b"\0", 1)[0] in keys:
            pass  # the server's own copy of a chunk we write: ours replaces it
        else:
            parts.append(view[pos:end])
        pos = end
        if chunk_id == b"IEND":
            seen_iend = True
            break
    if not width or not seen_iend:
        raise ValueError("PNG without IHDR or IEND")
    return EncodedImage(b"".join(parts), width, height)


def _reencode_png(image: bytes, text_chunks: dict[str, str]) -> EncodedImage:
    from PIL import Image, UnidentifiedImageError
    from PIL.PngImagePlugin import PngInfo

    try:
        with Image.open(io.BytesIO(image)) as img:
            img.load()
            info = PngInfo()
            for key, value in text_chunks.items():
                info.add_text(key, value)
            out = io.BytesIO()
            img.save(out, format="PNG", pnginfo=info, compress_level=4)
            return EncodedImage(out.getvalue(), img.width, img.height)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise OutputError("The server sent an image that could not be decoded.",
                          detail=f"{len(image)} bytes, starts {image[:16]!r}: {exc!r}") from None


def image_size(image: bytes) -> tuple[int, int]:
    """Width and height of an encoded image, reading only its header."""
    if image.startswith(PNG_SIGNATURE) and len(image) >= 24 and image[12:16] == b"IHDR":
        return struct.unpack(">II", image[16:24])
    from PIL import Image

    with Image.open(io.BytesIO(image)) as img:
        return img.size


def png_crc_ok(data: bytes) -> bool:
    """Check every chunk's CRC (tests and `stablenew info` use it to prove files are whole)."""
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        length, chunk_id = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 4:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(body) & 0xFFFFFFFF != crc:
            return False
        pos += 12 + length
        if chunk_id == b"IEND":
            return True
    return False


def write_png(path: Path, image: bytes, text_chunks: dict[str, str]) -> EncodedImage:
    """Write the image with its metadata atomically (readers never see half a file)."""
    encoded = png_with_metadata(image, text_chunks)
    atomic_write_bytes(path, encoded.data)
    return encoded


#: What the gallery's thumbnails are made from; naming them spares Pillow probing every plugin.
_THUMB_SOURCES = ("PNG", "JPEG", "WEBP")
_TMP_COUNTER = itertools.count()


def write_thumbnail(image: bytes, path: Path, *, size: int = THUMBNAIL_SIZE) -> Path:
    """A JPEG of at most *size* pixels a side for the gallery, written atomically.

    The PNG decode is the one cost that cannot go; everything after it is kept small: a box
    reduce by a whole factor brings a 512-1024 px image to (nearly) its thumbnail size in one
    pass, and only a remainder is resampled. Runs in a writer thread (Pillow releases the GIL
    while it decodes, reduces and encodes).
    """
    from PIL import Image

    with Image.open(io.BytesIO(image), formats=_THUMB_SOURCES) as img:
        if img.format == "JPEG":
            img.draft("RGB", (size, size))  # JPEG decodes at a reduced scale (PNG cannot)
        # JPEG holds RGB or L; palette and 16-bit images cannot be reduced as they are.
        small = img if img.mode in ("RGB", "L") else img.convert("RGB")
        factor = max(small.width, small.height) // size
        if factor >= 2:  # loads the pixels; a whole factor keeps the longest side >= size
            small = small.reduce(factor)
        if max(small.size) > size:
            small.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=80)
    return _replace_without_fsync(path, out.getvalue())


def _replace_without_fsync(path: Path, data: bytes) -> Path:
    """Temp file + rename, without fsync: for caches (thumbnails) that can be made again.

    A reader still never sees half a file; after a power cut the thumbnail may be missing or
    empty, and the gallery simply makes it again. Skipping fsync saves ~10 ms per image. The
    folder is made only when the first write finds it missing (not one mkdir per image).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{next(_TMP_COUNTER)}.tmp")
    try:
        try:
            tmp.write_bytes(data)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
