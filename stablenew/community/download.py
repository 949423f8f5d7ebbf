"""Downloading a missing LoRA into the LoRA folder: only when asked, verified, atomic.

The bytes go to a hidden part file beside the target and are hashed as they arrive; only a
file whose sha256 is the one CivitAI lists is renamed into place. Anything else (a broken
connection, a wrong hash, a full disk) removes the part file, so the folder never holds a
half file and a retry starts clean. A dropped connection is retried once by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import httpx

from stablenew.community.client import CivitaiClient
from stablenew.community.combos import VersionInfo
from stablenew.community.errors import CivitaiUnreachable, DownloadFailed

log = logging.getLogger("stablenew.community.download")

#: Attempts after a dropped connection (each from the start, the part file removed).
ATTEMPTS = 2
_CHUNK = 1024 * 1024


def size_words(size: int) -> str:
    """'144 MB', '1.2 GB', '800 KB': a download's size for its confirmation."""
    if size >= 1024 ** 3:
        return f"{size / 1024 ** 3:.1f} GB"
    if size >= 1024 ** 2:
        return f"{size / 1024 ** 2:.0f} MB"
    return f"{max(1, round(size / 1024))} KB"


def safe_file_name(info: VersionInfo) -> str:
    """The file name to save as: CivitAI's, reduced to a plain `.safetensors` name."""
    name = info.file_name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name.startswith(".") or not name.lower().endswith(".safetensors"):
        raise DownloadFailed(f"{info.name} is not offered as a .safetensors file, so it is not "
                             "downloaded.", detail=f"file name {info.file_name!r}")
    return name


def confirmation_text(info: VersionInfo, folder: Path) -> str:
    """What the user confirms before a download starts."""
    size = f" ({size_words(info.size_bytes)})" if info.size_bytes else ""
    return (f"Download {info.name}{size} from CivitAI into {folder}? Its sha256 is checked "
            "before it is kept.")


async def download_lora(client: CivitaiClient, info: VersionInfo, folder: str | os.PathLike[str], *,
                        progress: Callable[[int, int], None] | None = None,
                        attempts: int = ATTEMPTS) -> Path:
    """Download *info*'s file into *folder*; the path of the verified file."""
    if not info.download_url:
        raise DownloadFailed(f"CivitAI offers no download of {info.name}.")
    if len(info.sha256) != 64:
        raise DownloadFailed(f"CivitAI lists no sha256 for {info.name}, so the download could not "
                             "be checked and is not done.")
    target = Path(folder) / safe_file_name(info)
    if await asyncio.to_thread(target.exists):
        raise DownloadFailed(f"{target.name} is already in {target.parent}; nothing was downloaded.")
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        try:
            return await _attempt(client, info, target, progress)
        except CivitaiUnreachable as exc:
            if attempt == attempts:
                raise DownloadFailed(f"The download of {info.name} broke off; nothing was kept. "
                                     "Try again later.", detail=exc.detail) from exc
            log.info("download: %s broke off (%s), starting again", target.name, exc.detail)
    raise AssertionError("unreachable")  # the loop returns or raises


async def _attempt(client: CivitaiClient, info: VersionInfo, target: Path,
                   progress: Callable[[int, int], None] | None) -> Path:
    part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    digest = hashlib.sha256()
    done = 0
    # File work runs in worker threads: the caller may be a window's event loop.
    handle = await asyncio.to_thread(open, part, "wb")
    try:
        try:
            async with client.stream(info.download_url) as response:
                total = int(response.headers.get("Content-Length") or info.size_bytes or 0)
                try:
                    async for chunk in response.aiter_bytes(_CHUNK):
                        await asyncio.to_thread(handle.write, chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                except httpx.HTTPError as exc:
                    raise CivitaiUnreachable("The download broke off.", detail=repr(exc)) from exc
            await asyncio.to_thread(_sync, handle)
        finally:
            await asyncio.to_thread(handle.close)
        got = digest.hexdigest()
        if got != info.sha256.lower():
            raise DownloadFailed(f"The downloaded {target.name} is not the file CivitAI lists (its "
                                 "checksum differs), so it was deleted.",
                                 detail=f"sha256 {got}, expected {info.sha256}")
        await asyncio.to_thread(_move, part, target)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    log.info("download: %s saved (%d bytes, sha256 verified)", target, done)
    return target


def _sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _move(part: Path, target: Path) -> None:
    if target.exists():
        raise DownloadFailed(f"{target.name} appeared in {target.parent} meanwhile; the download "
                             "was not kept.")
    os.replace(part, target)
