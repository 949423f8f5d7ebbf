"""TrendingSource: trending images fetched through the cache, look-ups and thumbnails likewise.

A fresh cached answer is used without asking the site; otherwise the site is asked and the
answer stored. When the site cannot be reached or stays busy, the stored answer is used
however old, and the result says how old it is. Only with nothing stored is that an error.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stablenew.community.cache import ANSWER_TTL_S, CommunityCache, age_words
from stablenew.community.client import DEFAULT_BASE_URL, CivitaiClient, ImageQuery
from stablenew.community.combos import VersionInfo
from stablenew.community.errors import CivitaiBusy, CivitaiError, CivitaiNotFound, CivitaiUnreachable
from stablenew.community.meta import CommunityImage, LoraRef, parse_items

log = logging.getLogger("stablenew.community.trending")

#: What a model version is does not change; a week keeps a look-up from repeating.
LOOKUP_TTL_S = 7 * 24 * 3600
THUMBNAIL_WIDTH = 320
#: A thumbnail is tens of KB; a server sending more is sending the original.
THUMBNAIL_MAX_BYTES = 8 * 1024 * 1024
_WIDTH_PART = re.compile(r"/(?:width=\d+|original=true)(?:,[^/]*)?/")


def thumbnail_url(url: str, width: int = THUMBNAIL_WIDTH) -> str:
    """CivitAI's image URL asked for a small copy (its `/width=N/` path part)."""
    return _WIDTH_PART.sub(f"/width={width}/", url, count=1)


@dataclass
class TrendingResult:
    """Images of one trending question, where they came from and how old they are."""

    images: list[CommunityImage] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    fetched_at: float = 0.0
    from_cache: bool = False
    #: Why a stored answer past its time to live was used (the site could not be asked).
    offline_reason: str = ""

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.fetched_at)

    def status(self, now: float | None = None) -> str:
        count = len(self.images)
        what = f"{count} image{'s' if count != 1 else ''}"
        when = age_words(self.age(now))
        if self.offline_reason:
            return f"{self.offline_reason} Showing the {what} fetched {when}."
        if self.from_cache:
            return f"{what.capitalize()} fetched {when} (kept for a few hours; Refresh asks again)."
        return f"{what.capitalize()} fetched {when}."


ClientFactory = Callable[[], CivitaiClient]


class TrendingSource:
    """Trending images, look-ups and thumbnails from CivitAI through one on-disk cache."""

    def __init__(self, cache: CommunityCache, base_url: str = DEFAULT_BASE_URL, api_key: str = "",
                 *, ttl: float = ANSWER_TTL_S, client: ClientFactory | None = None) -> None:
        self.cache = cache
        self.base_url = base_url.strip().rstrip("/") or DEFAULT_BASE_URL
        self.ttl = ttl
        self._api_key = api_key
        self._client = client or (lambda: CivitaiClient(self.base_url, api_key=self._api_key))

    def __repr__(self) -> str:
        return f"TrendingSource({self.base_url!r})"

    def client(self) -> CivitaiClient:
        return self._client()

    def _key(self, query: ImageQuery, count: int) -> str:
        return f"{self.base_url}|images|{query.key()}|count={count}"

    def cached(self, query: ImageQuery, count: int) -> TrendingResult | None:
        """The stored answer to this question, however old (no network; blocking file I/O)."""
        stored = self.cache.get(self._key(query, count))
        if stored is None:
            return None
        images, skipped = parse_items(stored.data)
        return TrendingResult(images, skipped, stored.fetched_at, True)

    async def fetch(self, query: ImageQuery, count: int = 100, *, refresh: bool = False,
                    on_progress: Callable[[int], None] | None = None) -> TrendingResult:
        """Up to *count* images: the cache while fresh (unless *refresh*), else the site, else
        the cache however old (saying so); raises CivitaiError only when nothing is stored.
        Files and parsing run in a worker thread: the caller may be a window's event loop."""
        key = self._key(query, count)
        stored = await asyncio.to_thread(self.cache.get, key)
        if stored is not None and not refresh and stored.fresh(self.ttl):
            return await asyncio.to_thread(_result, stored.data, stored.fetched_at, True)
        try:
            async with self.client() as client:
                items = await client.fetch_images(query, count, on_page=on_progress)
        except (CivitaiUnreachable, CivitaiBusy) as exc:
            if stored is None:
                raise
            log.info("trending: %s; using the answer of %s", exc.detail or exc, age_words(stored.age()))
            return await asyncio.to_thread(_result, stored.data, stored.fetched_at, True, exc.message)
        answer = await asyncio.to_thread(self.cache.put, key, items)
        return await asyncio.to_thread(_result, items, answer.fetched_at, False)

    async def lookup(self, refs: Iterable[LoraRef]) -> tuple[dict[str, VersionInfo], list[str]]:
        """CivitAI's word on each LoRA by hash (else version id), cached; keys "h:<hash>" and
        "v:<id>" as `resolve` takes them, plus what could not be looked up and why."""
        found: dict[str, VersionInfo] = {}
        problems: list[str] = []
        todo = []
        for ref in refs:
            key = lookup_key(ref)
            if key and key not in found and key not in todo:
                stored = await asyncio.to_thread(self.cache.get, f"{self.base_url}|version|{key}")
                if stored is not None and stored.fresh(LOOKUP_TTL_S):
                    if isinstance(stored.data, dict):
                        found[key] = VersionInfo.from_api(stored.data, self.base_url)
                    continue
                todo.append(key)
        if not todo:
            return found, problems
        async with self.client() as client:
            for key in todo:
                kind, _, value = key.partition(":")
                try:
                    data = await (client.version_by_hash(value) if kind == "h"
                                  else client.version_by_id(int(value)))
                except CivitaiNotFound:
                    await asyncio.to_thread(self.cache.put, f"{self.base_url}|version|{key}", None)
                    what = f"hash {value}" if kind == "h" else f"model version {value}"
                    problems.append(f"CivitAI does not know {what}.")
                    continue
                except CivitaiError as exc:
                    problems.append(exc.message)
                    if isinstance(exc, (CivitaiUnreachable, CivitaiBusy)):
                        break  # the rest would fail the same way
                    continue
                await asyncio.to_thread(self.cache.put, f"{self.base_url}|version|{key}", data)
                found[key] = VersionInfo.from_api(data, self.base_url)
        return found, problems

    async def thumbnail(self, url: str, client: CivitaiClient | None = None) -> Path | None:
        """The image's small copy on disk (fetched once); None when it cannot be had."""
        if not url:
            return None
        small = thumbnail_url(url)
        path = await asyncio.to_thread(self.cache.thumbnail, small)
        if path is not None:
            return path
        try:
            if client is not None:
                data = await client.get_bytes(small, max_bytes=THUMBNAIL_MAX_BYTES)
            else:
                async with self.client() as own:
                    data = await own.get_bytes(small, max_bytes=THUMBNAIL_MAX_BYTES)
        except CivitaiError as exc:
            log.info("trending: no thumbnail for %s: %s", small, exc.detail or exc)
            return None
        return await asyncio.to_thread(self.cache.put_thumbnail, small, data)


def lookup_key(ref: LoraRef) -> str:
    """How a look-up of *ref* is keyed ("h:<hash>", else "v:<version id>"; "" for neither)."""
    if ref.hash:
        return f"h:{ref.hash}"
    return f"v:{ref.version_id}" if ref.version_id is not None else ""


def _result(items: object, fetched_at: float, from_cache: bool, offline: str = "") -> TrendingResult:
    images, skipped = parse_items(items)
    return TrendingResult(images, skipped, fetched_at, from_cache, offline)
