"""Reading the A1111/Forge WebUI's answers: HTTP errors as typed errors, images, `info`, lists.

Pure functions over what came back, no I/O: the client (`a1111.py`) sends the requests and
hands each answer here to be checked and decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from typing import Any

from stablenew.backends.errors import (
    AuthFailed,
    MissingResource,
    ProtocolError,
    RequestRejected,
    ServerError,
)
from stablenew.backends.http import HttpReply
from stablenew.backends.types import Capabilities, GeneratedImage

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"))


def image_format(data: bytes) -> str | None:
    """PNG/JPEG/WEBP from the magic bytes (the server's `samples_format` decides the format)."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decode_image(text: Any, where: str, url: str, node: str = "") -> tuple[bytes, tuple[int, int]]:
    """Base64 (or a data URL) to encoded bytes, checked to be a whole, readable image."""
    if not isinstance(text, str) or not text:
        raise ProtocolError(f"The server at {url} sent an empty or missing image.",
                            detail=f"{where}: image field is {type(text).__name__}", node=node)
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"The server at {url} sent an image that is not valid base64.",
                            detail=f"{where}: {exc}; starts with {text[:40]!r}", node=node) from exc
    fmt = image_format(data)
    if fmt is None:
        raise ProtocolError(f"The server at {url} sent data that is not a PNG, JPEG or WEBP image.",
                            detail=f"{where}: {len(data)} bytes starting with {data[:16]!r}", node=node)
    from PIL import Image, UnidentifiedImageError  # here: not imported before the first request

    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ProtocolError(f"The server at {url} sent a {fmt} image that does not decode.",
                            detail=f"{where}: {exc!r} ({len(data)} bytes)", node=node) from exc
    return data, size


def error_text(body: Any) -> str:
    """The message in a FastAPI/HTTPException (`detail`), A1111 (`errors`) or Forge (`message`) body."""
    if isinstance(body, dict):
        for key in ("detail", "errors", "message"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        if isinstance(body.get("error"), str):
            return body["error"]
    if isinstance(body, str) and body.strip():
        return body.strip()
    return ""


_MISSING = (
    (re.compile(r"could not find upscaler named (.+)", re.I), "upscaler"),
    (re.compile(r"model '(.+)' not found", re.I), "checkpoint"),
    (re.compile(r"could not find checkpoint with name (.+)", re.I), "checkpoint"),
    (re.compile(r"sampler not found: (.+)", re.I), "sampler"),
    (re.compile(r"always on script (.+) not found", re.I), "extension"),
)


def missing_resource(text: str) -> tuple[str, str] | None:
    """(what, name) when an error message says a named model/upscaler/sampler is not installed."""
    for pattern, what in _MISSING:
        found = pattern.search(text)
        if found:
            return what, found.group(1).strip().strip("'\"")
    return None


def short(text: str, limit: int = 300) -> str:
    """An error text fit for a sentence: one paragraph, no trailing period, not a wall of text."""
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rejected_fields(detail: Any) -> tuple[str, ...]:
    if not isinstance(detail, list):
        return ()
    fields: list[str] = []
    for entry in detail:
        loc = entry.get("loc") if isinstance(entry, dict) else None
        if isinstance(loc, list):
            parts = [str(p) for p in loc if p != "body"]
            if parts:
                fields.append(".".join(parts))
    return tuple(dict.fromkeys(fields))


def raise_for_status(reply: HttpReply, url: str, node: str, *, auth: bool,
                     capabilities: Capabilities | None) -> None:
    """Raise the typed error an HTTP status stands for (nothing for a 2xx); *url* is the
    server's base address, *auth* whether we sent a user and password."""
    status = reply.status
    if 200 <= status < 300:
        return
    path = reply.url[len(url):] or reply.url
    try:
        body: Any = reply.json()
    except ProtocolError:
        body = reply.body[:300].decode("utf-8", "replace")
    text = error_text(body)
    detail = f"HTTP {status} from {reply.url}: {str(body)[:2000]}"
    if status in (401, 403):
        if auth:
            raise AuthFailed(f"The server at {url} refused the user name and password (wrong "
                             "user or password). Check them in Settings (they must match its "
                             "--api-auth).",
                             detail=detail, node=node)
        raise AuthFailed(f"The server at {url} wants a user name and password (--api-auth). "
                         "Enter them in Settings.", detail=detail, node=node)
    missing = missing_resource(text)
    if missing is not None:
        what, name = missing
        installed: tuple[str, ...] = ()
        if capabilities is not None:
            installed = {"upscaler": capabilities.upscalers,
                         "checkpoint": capabilities.checkpoints,
                         "sampler": capabilities.samplers}.get(what, ())
        if what == "extension":
            message = (f"The server at {url} does not have the {name} extension. Install it "
                       "there, or run this step on another server.")
        else:
            message = (f"The server at {url} has no {what} named '{name}'. Pick one it has, "
                       "or install it there and press Refresh lists.")
        raise MissingResource(message, what=what, name=name, installed=installed, detail=detail,
                              node=node)
    if status == 422:
        raw = body.get("detail") if isinstance(body, dict) else None
        fields = rejected_fields(raw)
        what = f"invalid {', '.join(fields)}" if fields else short(text or "invalid request")
        raise RequestRejected(f"The server at {url} rejected the request ({what}). "
                              "Check these settings, or update StableNew if the server is newer.",
                              fields=fields, detail=detail, node=node)
    if status == 404 and text in ("", "Not Found"):
        raise RequestRejected(f"The server at {url} has no {path}. Start it with --api, and check "
                              "that the address points to an A1111/Forge WebUI.",
                              detail=detail, node=node)
    reason = short(text) or f"HTTP {status}"
    if status < 500:
        raise RequestRejected(f"The server at {url} refused the request: {reason}.",
                              detail=detail, node=node)
    hint = ""
    if "out of memory" in text.lower():
        hint = " Try a smaller size or batch, or close other programs using the GPU."
    raise ServerError(f"The server at {url} failed: {reason}.{hint}", detail=detail, node=node)


def items_of(data: Any) -> list[dict[str, Any]]:
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def strip_hash(title: str) -> str:
    head, sep, tail = title.rpartition(" [")
    return head if sep and tail.endswith("]") else title


def parse_info(raw: Any, url: str, endpoint: str, node: str) -> dict[str, Any]:
    """`info` is a JSON string inside the JSON answer; parse it a second time."""
    if isinstance(raw, dict):
        return raw
    if raw in (None, ""):
        return {}
    try:
        info = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"The server at {url} sent job details that are not valid JSON.",
                            detail=f"{endpoint} info: {exc}; {str(raw)[:200]!r}", node=node) from exc
    return info if isinstance(info, dict) else {}


def input_size(data: bytes, what: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise RequestRejected(f"The image given to {what} could not be read as PNG, JPEG or WEBP.",
                              fields=("image",), detail=repr(exc)) from exc


def infotext_of(data: bytes) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            text = img.info.get("parameters")
    except (UnidentifiedImageError, OSError, ValueError):
        return ""
    return text if isinstance(text, str) else ""


def read_answer(reply: HttpReply, endpoint: str, url: str, node: str) -> tuple[
        dict[str, Any], list[GeneratedImage], list[tuple[int, int]], list[str]]:
    """A job's answer: its info and its checked images, their sizes and infotexts (blocking:
    parsing and decoding a large answer belongs in a worker thread)."""
    data = reply.json()
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ProtocolError(f"The server at {url} answered without an image list.",
                            detail=f"{endpoint}: {str(data)[:300]}", node=node)
    info = parse_info(data.get("info"), url, endpoint, node)
    return (info, *answer_images(data["images"], info, endpoint, url, node))


def answer_images(raw: list[Any], info: dict[str, Any], endpoint: str, url: str, node: str
                  ) -> tuple[list[GeneratedImage], list[tuple[int, int]], list[str]]:
    """Decode and check the images that belong to the job (not a grid, masks or extras)."""
    first = info.get("index_of_first_image", 0)
    first = first if isinstance(first, int) and 0 <= first <= len(raw) else 0
    infotexts = info.get("infotexts")
    seeds = info.get("all_seeds")
    end = len(infotexts) if isinstance(infotexts, list) and infotexts else len(raw)
    images, sizes, texts = [], [], []
    for index in range(first, min(end, len(raw))):
        encoded, size = decode_image(raw[index], f"{endpoint} image {index}", url, node)
        text = infotexts[index] if isinstance(infotexts, list) and index < len(infotexts) else ""
        n = index - first
        seed = seeds[n] if isinstance(seeds, list) and n < len(seeds) and isinstance(seeds[n], int) \
            else int_or(info.get("seed"), 0) + n
        images.append(GeneratedImage(encoded, seed, str(text or "")))
        sizes.append(size)
        texts.append(str(text or ""))
    return images, sizes, texts


def float_or(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def int_or(value: Any, default: Any) -> Any:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default
