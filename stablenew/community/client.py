"""CivitaiClient: CivitAI's public REST API v1 (or a mirror), over httpx, never trusted.

Only what trending combos need: `/api/v1/images` paged by cursor (`page` × `limit` past
1000 is refused by the site, so `page` is never sent), the model-version look-ups by hash
and by id, and plain GETs for thumbnails and downloads. A busy answer (429/503) is retried
after its `Retry-After` when that is short; a longer wait becomes `CivitaiBusy` with the
wait in words. Bodies are capped as they arrive. The API key goes only into the
`Authorization` header: never into URLs, cache keys, logs or `repr`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from stablenew.backends.http import verified_tls
from stablenew.community.errors import (
    CivitaiBusy,
    CivitaiError,
    CivitaiNotFound,
    CivitaiRejected,
    CivitaiUnreachable,
)

log = logging.getLogger("stablenew.community.client")

DEFAULT_BASE_URL = "https://civitai.com"
#: The most images one `/api/v1/images` answer may hold.
MAX_LIMIT = 200
#: A page of 200 images with long prompts is a few MB; past this it is not an image list.
MAX_BODY_BYTES = 32 * 1024 * 1024
#: The longest `Retry-After` we sit through before saying the site is busy.
MAX_WAIT_S = 60.0
TIMEOUT_S = 30.0
#: Busy answers retried before giving up (each after its Retry-After).
BUSY_RETRIES = 3


class Sort(StrEnum):
    """How `/api/v1/images` orders images (the site's own words)."""

    most_reactions = "Most Reactions"
    most_comments = "Most Comments"
    most_collected = "Most Collected"
    newest = "Newest"


class Period(StrEnum):
    """The time window the sort counts reactions over."""

    day = "Day"
    week = "Week"
    month = "Month"
    year = "Year"
    all_time = "AllTime"


#: CivitAI's browsing-level bits: PG, PG-13, R, X, XXX.
PG, PG13, R, X, XXX = 1, 2, 4, 8, 16
SAFE_LEVEL = PG
ALL_LEVELS = PG | PG13 | R | X | XXX


def nsfw_word(browsing_level: int) -> str:
    """The older `nsfw` parameter that says the same as *browsing_level* (mirrors still read it)."""
    if browsing_level <= PG:
        return "None"
    if browsing_level < R:
        return "Soft"
    if browsing_level < X:
        return "Mature"
    return "X"


@dataclass(frozen=True)
class ImageQuery:
    """One trending question: sort, period, browsing level, base models, page size."""

    sort: Sort = Sort.most_reactions
    period: Period = Period.week
    #: Bitmask of allowed browsing levels; PG only unless the user asks for more.
    browsing_level: int = SAFE_LEVEL
    base_models: tuple[str, ...] = ()
    limit: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"Ask for 1 to {MAX_LIMIT} images a page (got {self.limit}).")
        if not 1 <= self.browsing_level <= ALL_LEVELS:
            raise ValueError(f"The browsing level is a mask from 1 to {ALL_LEVELS} "
                             f"(got {self.browsing_level}).")

    def params(self, cursor: str | None = None) -> list[tuple[str, str]]:
        """The query string: `limit` always (the site's default is not ours), `withMeta=true`
        (anything else and `meta` comes back null), a cursor for every page after the first."""
        out = [("limit", str(self.limit)), ("sort", self.sort.value), ("period", self.period.value),
               ("browsingLevel", str(self.browsing_level)), ("nsfw", nsfw_word(self.browsing_level)),
               ("withMeta", "true")]
        if self.base_models:
            out.append(("baseModels", ",".join(self.base_models)))
        if cursor:
            out.append(("cursor", cursor))
        return out

    def key(self) -> str:
        """What identifies the answer in the cache (no key, no cursor)."""
        return "&".join(f"{k}={v}" for k, v in self.params())


@dataclass(frozen=True)
class ImagePage:
    """One answer of `/api/v1/images`: its raw items and the cursor of the next page."""

    items: list[Any] = field(default_factory=list)
    next_cursor: str | None = None


Sleep = Callable[[float], Awaitable[None]]


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def wait_words(seconds: float) -> str:
    """'about 2 minutes', '1 second': how long a busy site asked us to wait."""
    if seconds >= 90:
        minutes = round(seconds / 60)
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    whole = max(1, round(seconds))
    return f"{whole} second{'s' if whole != 1 else ''}"


class CivitaiClient:
    """Talks to CivitAI's API at *base_url*; one client per fetch, closed with `aclose()`."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, api_key: str = "",
                 timeout: float = TIMEOUT_S, max_wait: float = MAX_WAIT_S,
                 retries: int = BUSY_RETRIES, max_body: int = MAX_BODY_BYTES,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.base_url = base_url.strip().rstrip("/") or DEFAULT_BASE_URL
        self._max_wait = max_wait
        self._retries = retries
        self._max_body = max_body
        self._sleep = sleep
        headers = {"Accept": "application/json", "User-Agent": "StableNew"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # httpx drops Authorization when a redirect leaves the host (downloads end on a CDN).
        # One CA bundle for the process: loading it per client took ~0.1 s on the Qt thread.
        self._http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout),
                                       follow_redirects=True, verify=verified_tls())

    def __repr__(self) -> str:
        return f"CivitaiClient({self.base_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> CivitaiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the API ---------------------------------------------------------------------------

    async def images(self, query: ImageQuery, cursor: str | None = None) -> ImagePage:
        """One page of `/api/v1/images`."""
        data = await self.get_json("/api/v1/images", query.params(cursor))
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise CivitaiError("CivitAI answered with something that is not an image list.",
                               detail=f"/api/v1/images returned {_shape(data)}")
        meta = data.get("metadata")
        cursor_value = meta.get("nextCursor") if isinstance(meta, dict) else None
        return ImagePage(data["items"], str(cursor_value) if cursor_value not in (None, "") else None)

    async def fetch_images(self, query: ImageQuery, count: int,
                           on_page: Callable[[int], None] | None = None) -> list[Any]:
        """Up to *count* images, page after page by cursor; *on_page* hears the running total."""
        items: list[Any] = []
        cursor: str | None = None
        seen: set[str] = set()
        while len(items) < count:
            page = await self.images(query, cursor)
            items.extend(page.items[: count - len(items)])
            if on_page is not None:
                on_page(len(items))
            if not page.items or page.next_cursor is None or page.next_cursor in seen:
                break  # the last page (a cursor seen before would loop for ever)
            seen.add(page.next_cursor)
            cursor = page.next_cursor
        return items

    async def version_by_hash(self, file_hash: str) -> dict[str, Any]:
        """`/api/v1/model-versions/by-hash/{hash}` (AutoV2/V3, SHA256, …)."""
        return await self._version(f"/api/v1/model-versions/by-hash/{file_hash.strip()}")

    async def version_by_id(self, version_id: int) -> dict[str, Any]:
        return await self._version(f"/api/v1/model-versions/{int(version_id)}")

    async def _version(self, path: str) -> dict[str, Any]:
        data = await self.get_json(path)
        if not isinstance(data, dict):
            raise CivitaiError("CivitAI answered with something that is not a model version.",
                               detail=f"{path} returned {_shape(data)}")
        return data

    # --- plumbing --------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    async def get_json(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        body = await self.get_bytes(path, params)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise CivitaiError("CivitAI answered with something that is not JSON.",
                               detail=f"{path}: {body[:200]!r}") from exc

    async def get_bytes(self, path: str, params: list[tuple[str, str]] | None = None, *,
                        max_bytes: int | None = None) -> bytes:
        """The whole body of a GET that answered 200, busy answers retried."""
        async with self.stream(path, params) as response:
            limit = self._max_body if max_bytes is None else max_bytes
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise CivitaiError("CivitAI's answer is far larger than expected, so it was refused.",
                                   detail=f"{path}: Content-Length {declared} > {limit}")
            chunks = []
            size = 0
            try:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise CivitaiError("CivitAI's answer is far larger than expected, so it "
                                           "was refused.", detail=f"{path}: more than {limit} bytes")
                    chunks.append(chunk)
            except httpx.HTTPError as exc:
                raise _unreachable(self.url(path), exc) from exc
            return b"".join(chunks)

    @asynccontextmanager
    async def stream(self, path: str, params: list[tuple[str, str]] | None = None
                     ) -> AsyncIterator[httpx.Response]:
        """A GET that answered 200, its body not read yet; busy answers are waited out."""
        url = self.url(path)
        attempt = 0
        while True:
            try:
                request = self._http.build_request(
                    "GET", url, params=tuple(params) if params else None)
                response = await self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise _unreachable(url, exc) from exc
            try:
                if response.status_code in (429, 503):
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                    attempt += 1
                    if wait is None:
                        wait = min(2.0 ** attempt, self._max_wait)
                    if attempt > self._retries or wait > self._max_wait:
                        raise CivitaiBusy(
                            f"CivitAI is busy and asks to wait {wait_words(wait)}. Try again then; "
                            "what was fetched before is still shown.", retry_after=wait,
                            detail=f"GET {response.url.copy_with(query=None)}: HTTP "
                                   f"{response.status_code}, Retry-After {wait:.0f}s, "
                                   f"attempt {attempt}")
                    log.info("civitai: HTTP %s, waiting %.1fs (attempt %d)",
                             response.status_code, wait, attempt)
                    await response.aclose()
                    await self._sleep(wait)
                    continue
                if response.status_code != 200:
                    body = await _head(response)
                    raise _rejected(response.status_code, str(response.url.copy_with(query=None)), body)
                yield response
                return
            finally:
                await response.aclose()


async def _head(response: httpx.Response, limit: int = 500) -> bytes:
    try:
        out = b""
        async for chunk in response.aiter_bytes():
            out += chunk
            if len(out) >= limit:
                break
        return out[:limit]
    except httpx.HTTPError:
        return b""


def _unreachable(url: str, exc: httpx.HTTPError) -> CivitaiUnreachable:
    where = httpx.URL(url).copy_with(query=None)
    if isinstance(exc, httpx.TimeoutException):
        return CivitaiUnreachable(f"{where.host} took too long to answer. Check your connection "
                                  "and try again.", detail=f"GET {where}: {exc!r}")
    return CivitaiUnreachable(f"{where.host} cannot be reached. Check your connection or the "
                              "CivitAI address in Settings.", detail=f"GET {where}: {exc!r}")


def _rejected(status: int, url: str, body: bytes) -> CivitaiRejected:
    detail = f"GET {url}: HTTP {status} {body[:300]!r}"
    if status in (401, 403):
        return CivitaiRejected("CivitAI refused the API key. Check it in Settings, or leave it "
                               "empty for public images.", status=status, detail=detail)
    if status == 404:
        return CivitaiNotFound("CivitAI does not know it (it may have been removed).",
                               status=status, detail=detail)
    return CivitaiRejected(f"CivitAI refused the request (HTTP {status}).", status=status,
                           detail=detail)


def _shape(data: Any) -> str:
    if isinstance(data, dict):
        return "an object with " + ", ".join(sorted(map(str, data))[:8])
    return type(data).__name__
