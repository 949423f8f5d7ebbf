"""The community cache: CivitAI answers and thumbnails on disk, with a time to live.

An answer is one JSON file per question (named by a hash of the question, never holding the
API key), written atomically with the time it was fetched, so a fresh one saves a request and
a stale one still serves when the site cannot be reached ("from 3 hours ago"). Thumbnails are
files named by a hash of their URL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stablenew.storage.atomic import atomic_write_bytes, atomic_write_text

log = logging.getLogger("stablenew.community.cache")

#: How long a trending list is fresh: reactions move, but not by the minute.
ANSWER_TTL_S = 6 * 3600
#: Thumbnails never change under their URL; this only bounds the folder's growth.
THUMBNAIL_TTL_S = 30 * 24 * 3600
CACHE_VERSION = 1


@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer and when it was fetched."""

    data: Any
    fetched_at: float

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.fetched_at)

    def fresh(self, ttl: float, now: float | None = None) -> bool:
        return self.age(now) < ttl


def age_words(seconds: float) -> str:
    """'just now', '5 minutes ago', '1 hour ago', '3 days ago'."""
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class CommunityCache:
    """Answers and thumbnails under one folder (the data folder's `community/`)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    @property
    def answers_dir(self) -> Path:
        return self.folder / "answers"

    @property
    def thumbnails_dir(self) -> Path:
        return self.folder / "thumbnails"

    def _answer_file(self, key: str) -> Path:
        return self.answers_dir / f"{_digest(key)}.json"

    def get(self, key: str) -> CachedAnswer | None:
        """The stored answer to *key*, however old; None when there is none or it is unreadable."""
        file = self._answer_file(key)
        try:
            stored = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("community cache: %s unreadable, ignored: %r", file, exc)
            return None
        if (not isinstance(stored, dict) or stored.get("version") != CACHE_VERSION
                or stored.get("key") != key or not isinstance(stored.get("fetched_at"), (int, float))):
            return None
        return CachedAnswer(stored.get("data"), float(stored["fetched_at"]))

    def put(self, key: str, data: Any, *, now: float | None = None) -> CachedAnswer:
        fetched_at = time.time() if now is None else now
        text = json.dumps({"version": CACHE_VERSION, "key": key, "fetched_at": fetched_at,
                           "data": data}, ensure_ascii=False)
        atomic_write_text(self._answer_file(key), text)
        return CachedAnswer(data, fetched_at)

    # --- thumbnails --------------------------------------------------------------------------

    def thumbnail_path(self, url: str) -> Path:
        suffix = Path(url.split("?", 1)[0]).suffix.lower()
        if suffix not in (".jpg", ".jpeg", ".png", ".webp", ".gif"):
            suffix = ".img"
        return self.thumbnails_dir / f"{_digest(url)}{suffix}"

    def thumbnail(self, url: str, *, ttl: float = THUMBNAIL_TTL_S, now: float | None = None) -> Path | None:
        """The stored thumbnail of *url* while it is younger than *ttl*, else None."""
        path = self.thumbnail_path(url)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        return path if (time.time() if now is None else now) - mtime < ttl else None

    def put_thumbnail(self, url: str, data: bytes) -> Path:
        return atomic_write_bytes(self.thumbnail_path(url), data)
