"""A small HTTP layer over httpx shared by the backend clients.

It turns every transport failure into a typed `BackendError` with a plain sentence, enforces a
whole-call deadline (httpx's timeouts are per read, so a server that drips one byte at a time
would otherwise never time out) and refuses bodies larger than a cap before buffering them.
Status codes are left to the caller: each server kind words its errors differently.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx

from stablenew.backends.errors import (
    ProtocolError,
    ServerTimeout,
    ServerUnreachable,
)

#: Listings, progress and health checks should answer quickly even on a busy node.
SHORT_TIMEOUT = 15.0
#: Generation answers carry images: a batch of big PNGs is tens of megabytes.
DEFAULT_MAX_BODY = 512 * 1024 * 1024
LISTING_MAX_BODY = 64 * 1024 * 1024


def unreachable_message(url: str) -> str:
    return (f"No Stable Diffusion server answers at {url}. Start A1111/Forge with --api "
            "(or ComfyUI with --listen) and check the address in Settings.")


@dataclass(frozen=True)
class HttpReply:
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


class HttpClient:
    """One base URL, optional basic auth, typed errors, deadlines and a body-size cap."""

    def __init__(self, base_url: str, *, auth: tuple[str, str] | None = None, node: str = "",
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.node = node or self.base_url
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            auth=httpx.BasicAuth(*auth) if auth else None,
            # The deadline below is the real limit; these only bound each socket operation.
            timeout=httpx.Timeout(None, connect=10.0),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            transport=transport,
            trust_env=False,  # a system proxy must not capture calls to a LAN or localhost node
        )

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: dict[str, Any] | None = None, timeout: float = SHORT_TIMEOUT,
                      max_body: int = LISTING_MAX_BODY) -> HttpReply:
        """Send one request and read the whole answer within `timeout` seconds."""
        where = f"{self.base_url}{path}"
        try:
            async with asyncio.timeout(timeout):
                return await self._send(method, path, json_body, params, max_body, where)
        except TimeoutError as exc:
            raise ServerTimeout(
                f"The server at {self.base_url} did not answer within {timeout:g} seconds. "
                "It may be busy with a long job or stuck; try again, or raise the timeout in Settings.",
                detail=f"{method} {where} timed out after {timeout:g} s", node=self.node) from exc

    async def _send(self, method: str, path: str, json_body: Any, params: dict[str, Any] | None,
                    max_body: int, where: str) -> HttpReply:
        try:
            request = self._client.build_request(method, path, json=json_body, params=params)
            response = await self._client.send(request, stream=True)
            try:
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_body:
                    raise _oversize(where, int(declared), max_body, self.node)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_body:
                        raise _oversize(where, size, max_body, self.node)
                    chunks.append(chunk)
            finally:
                await response.aclose()
            return HttpReply(response.status_code, response.headers, b"".join(chunks), where, self.node)
        except httpx.ConnectError as exc:
            raise ServerUnreachable(unreachable_message(self.base_url), detail=f"{method} {where}: {exc!r}",
                                    node=self.node) from exc
        except httpx.ConnectTimeout as exc:
            raise ServerUnreachable(unreachable_message(self.base_url),
                                    detail=f"{method} {where}: connect timed out ({exc!r})",
                                    node=self.node) from exc
        except httpx.RemoteProtocolError as exc:
            text = str(exc)
            if "without sending a response" in text or "Server disconnected" in text:
                raise ServerUnreachable(
                    f"The server at {self.base_url} closed the connection without answering. "
                    "It may have crashed or restarted; check its console window.",
                    detail=f"{method} {where}: {exc!r}", node=self.node) from exc
            raise ProtocolError(
                f"The answer from {self.base_url} was cut off before it was complete. "
                "The server may have crashed while sending it; try again.",
                detail=f"{method} {where}: {exc!r}", node=self.node) from exc
        except (httpx.ReadError, httpx.WriteError) as exc:
            raise ServerUnreachable(
                f"The connection to {self.base_url} broke while talking to the server. "
                "Check that it is still running and reachable.",
                detail=f"{method} {where}: {exc!r}", node=self.node) from exc
        except httpx.DecodingError as exc:
            raise ProtocolError(f"The answer from {self.base_url} could not be decoded.",
                                detail=f"{method} {where}: {exc!r}", node=self.node) from exc
        except httpx.InvalidURL as exc:
            raise ServerUnreachable(
                f"{self.base_url} is not a usable server address. Enter it like http://127.0.0.1:7860 "
                "in Settings.", detail=repr(exc), node=self.node) from exc
        except httpx.HTTPError as exc:  # anything else httpx may raise: still typed, still readable
            raise ServerUnreachable(unreachable_message(self.base_url), detail=f"{method} {where}: {exc!r}",
                                    node=self.node) from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def _oversize(where: str, size: int, cap: int, node: str) -> ProtocolError:
    return ProtocolError(
        f"The server sent a much larger answer than expected ({size // (1024 * 1024)} MB). "
        "StableNew refused it to protect memory; check the server address.",
        detail=f"{where}: body of {size} bytes exceeds the cap of {cap} bytes", node=node)
