"""The one HTTP layer of both backend clients (A1111/Forge and ComfyUI), over httpx.

It turns every transport failure into a typed `BackendError` with a plain sentence, enforces a
whole-call deadline (httpx's timeouts are per read, so a server that drips one byte at a time
would otherwise never time out), and bounds memory: each answer is read as a stream against a
cap checked as the bytes arrive (never trusting Content-Length), the half-read buffer is released
before the error is raised, and the answers being read by the whole process at once (a cluster
of nodes) share one budget. Redirects are refused, never followed: credentials stay with the
address the user gave. Status codes are otherwise left to the caller.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import threading
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import httpx

from stablenew.backends.errors import (
    AnswerTooLarge,
    ProtocolError,
    Redirected,
    ServerTimeout,
    ServerUnreachable,
)

#: Listings, progress and health checks should answer quickly even on a busy node.
SHORT_TIMEOUT = 15.0
#: Generation answers carry images as base64: a batch of 8 hires PNGs is ~100 MB at most.
DEFAULT_MAX_BODY = 128 * 1024 * 1024
#: Model lists, progress, history, node classes: thousands of models fit in a few MB.
LISTING_MAX_BODY = 16 * 1024 * 1024
#: Every answer this process is reading at once (all nodes of a cluster) together.
TOTAL_IN_FLIGHT = 256 * 1024 * 1024


class _InFlight:
    """The bytes of answers being read right now in this process, against one budget."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()  # clients on more than one event loop thread share it

    def take(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.used -= size


IN_FLIGHT = _InFlight(TOTAL_IN_FLIGHT)


def printable(text: str, limit: int = 200) -> str:
    """*text* from a server made safe to print: control characters shown as escapes, cut."""
    clean = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[:limit])
    return clean + ("…" if len(text) > limit else "")


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def unreachable_message(url: str, *, node: bool = False) -> str:
    """The words for a server nobody answers at; *node*: one of the Nodes tab's, whose address
    is set there rather than in Settings."""
    where = "the node's address in the Nodes tab" if node else "the address in Settings"
    return (f"No Stable Diffusion server answers at {url}. Start A1111/Forge with --api "
            f"(or ComfyUI with --listen) and check {where}.")


class HttpReply(NamedTuple):
    """A complete answer: status, headers and the whole body."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str
    node: str = ""

    def json(self) -> Any:
        """The body parsed as JSON; a ProtocolError when it is not JSON."""
        return parse_json(self.body, self.url, self.node)


def parse_json(body: bytes, where: str, node: str = "") -> Any:
    try:
        return json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError) as exc:
        snippet = body[:120].decode("utf-8", "replace")
        raise ProtocolError(
            f"The server at {where} sent an answer that is not valid JSON. "
            "It may be a different program, or a proxy in between.",
            detail=f"{exc}; body starts with {snippet!r} ({len(body)} bytes)", node=node) from exc


def normalise_url(url: str) -> str:
    """`127.0.0.1:7860/` → `http://127.0.0.1:7860`: an SD server's address as users type it."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


def tls_context(base_url: str) -> ssl.SSLContext:
    """The TLS settings of a client of *base_url*, one shared by every client.

    httpx loads the CA bundle for each new client by default, about 0.1 s on the window's thread
    at every connect and health check; an https address now loads it once per process. An http
    address never does TLS (redirects are refused, never followed), so its context holds no CA
    at all: it would refuse any certificate, should it ever be asked to check one.
    """
    return verified_tls() if urlsplit(base_url).scheme == "https" else _NO_CA


@functools.cache
def verified_tls() -> ssl.SSLContext:
    """The system's CA bundle, loaded once per process (for clients that may meet https)."""
    return httpx.create_ssl_context(trust_env=False)


_NO_CA = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # checks host names and certificates, trusts none


class HttpClient:
    """One base URL, optional basic auth, typed errors, deadlines and bounded answers."""

    def __init__(self, base_url: str, *, auth: tuple[str, str] | None = None, node: str = "",
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.node = node or self.base_url
        # How messages name the server: its address, and the node's name when it has one.
        self.label = self.base_url if self.node in self.base_url else f"{self.base_url} ({self.node})"
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            auth=httpx.BasicAuth(*auth) if auth else None,
            # The deadline below is the real limit; these only bound each socket operation.
            timeout=httpx.Timeout(None, connect=10.0),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            transport=transport,
            follow_redirects=False,  # credentials must never go to an address the user did not give
            trust_env=False,  # a system proxy must not capture calls to a LAN or localhost node
            verify=tls_context(self.base_url),
        )

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: dict[str, Any] | None = None, timeout: float = SHORT_TIMEOUT,
                      max_body: int = LISTING_MAX_BODY, files: dict[str, Any] | None = None,
                      data: dict[str, Any] | None = None) -> HttpReply:
        """Send one request and read the whole answer (at most *max_body* bytes) within
        *timeout* seconds; *files*/*data* make it a multipart form."""
        where = f"{self.base_url}{path}"
        try:
            async with asyncio.timeout(timeout):
                return await self._send(method, path, json_body, params, files, data, max_body, where)
        except TimeoutError as exc:
            raise ServerTimeout(
                f"The server at {self.label} did not answer within {timeout:g} seconds. "
                "It may be busy with a long job or stuck; try again, or raise the timeout in Settings.",
                detail=f"{method} {where} timed out after {timeout:g} s", node=self.node) from exc

    def _unreachable(self) -> str:
        return unreachable_message(self.label, node=self.label != self.base_url)

    async def _send(self, method: str, path: str, json_body: Any, params: dict[str, Any] | None,
                    files: dict[str, Any] | None, data: dict[str, Any] | None, max_body: int,
                    where: str) -> HttpReply:
        try:
            request = self._client.build_request(method, path, json=json_body, params=params,
                                                 files=files, data=data)
            response = await self._client.send(request, stream=True)
            try:
                if response.has_redirect_location:
                    raise _redirected(response, where, self.label, self.node)
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_body:
                    raise _oversize(where, int(declared), max_body, self.node, self.label)
                body = await self._read(response, max_body, where)
            finally:
                await response.aclose()
            return HttpReply(response.status_code, response.headers, body, where, self.node)
        except httpx.ConnectError as exc:
            raise ServerUnreachable(self._unreachable(), detail=f"{method} {where}: {exc!r}",
                                    node=self.node) from exc
        except httpx.ConnectTimeout as exc:
            raise ServerUnreachable(self._unreachable(),
                                    detail=f"{method} {where}: connect timed out ({exc!r})",
                                    node=self.node) from exc
        except httpx.RemoteProtocolError as exc:
            text = str(exc)
            if "without sending a response" in text or "Server disconnected" in text:
                raise ServerUnreachable(
                    f"The server at {self.label} closed the connection without answering. "
                    "It may have crashed or restarted; check its console window.",
                    detail=f"{method} {where}: {exc!r}", node=self.node) from exc
            raise ProtocolError(
                f"The answer from {self.label} was cut off before it was complete. "
                "The server may have crashed while sending it; try again.",
                detail=f"{method} {where}: {exc!r}", node=self.node) from exc
        except (httpx.ReadError, httpx.WriteError) as exc:
            raise ServerUnreachable(
                f"The connection to {self.label} broke while talking to the server. "
                "Check that it is still running and reachable.",
                detail=f"{method} {where}: {exc!r}", node=self.node) from exc
        except httpx.DecodingError as exc:
            raise ProtocolError(f"The answer from {self.label} could not be decoded.",
                                detail=f"{method} {where}: {exc!r}", node=self.node) from exc
        except httpx.InvalidURL as exc:
            raise ServerUnreachable(
                f"{self.base_url} is not a usable server address. Enter it like http://127.0.0.1:7860 "
                "in Settings.", detail=repr(exc), node=self.node) from exc
        except httpx.HTTPError as exc:  # anything else httpx may raise: still typed, still readable
            raise ServerUnreachable(self._unreachable(), detail=f"{method} {where}: {exc!r}",
                                    node=self.node) from exc

    async def _read(self, response: httpx.Response, max_body: int, where: str) -> bytes:
        """The body, counted against *max_body* and the process budget as each chunk arrives.

        Chunks are kept as they came and joined once at the end: one growing buffer would be
        copied as it grows, briefly doubling what a large answer costs. On any failure the
        chunks are dropped before the error leaves this frame: a raised error keeps its frames
        (and their locals) alive for as long as someone holds it."""
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                if size + len(chunk) > max_body:
                    chunks.clear()
                    raise _oversize(where, size + len(chunk), max_body, self.node, self.label,
                                    read=True)
                if not IN_FLIGHT.take(len(chunk)):
                    chunks.clear()
                    raise ProtocolError(
                        f"StableNew is already reading {IN_FLIGHT.used // 1_048_576} MB of answers from "
                        f"other nodes; the answer from {self.label} will be asked for again.",
                        detail=f"{where}: {size} bytes read when the in-flight budget of "
                               f"{IN_FLIGHT.limit} bytes was full", node=self.node)
                size += len(chunk)
                chunks.append(chunk)
            return b"".join(chunks)
        except BaseException:
            chunks.clear()
            raise
        finally:
            IN_FLIGHT.give(size)

    async def aclose(self) -> None:
        await self._client.aclose()


def _oversize(where: str, size: int, cap: int, node: str, label: str, *,
              read: bool = False) -> AnswerTooLarge:
    more = "more than " if read else ""
    return AnswerTooLarge(
        f"The server at {label} sent a much larger answer than expected "
        f"({more}{size // (1024 * 1024)} MB). "
        "StableNew refused it to protect memory; check the server address.",
        detail=f"{where}: body of {more}{size} bytes exceeds the cap of {cap} bytes", node=node)


def _redirected(response: httpx.Response, where: str, base_url: str, node: str) -> Redirected:
    location = printable(_without_credentials(str(response.next_request.url)
                                              if response.next_request is not None
                                              else response.headers.get("location", "")))
    return Redirected(
        f"The server at {base_url} answered with a redirect to {location} (HTTP "
        f"{response.status_code}). StableNew does not follow redirects, so your user name and "
        "password are never sent to another address. If that address is the right server, use it "
        "instead.", location=location,
        detail=f"{where}: HTTP {response.status_code} Location: {location}", node=node)
