"""A hostile node: a real HTTP server on 127.0.0.1 that answers chosen paths badly and passes
every other request to a real fake (A1111/Forge or ComfyUI) behind it.

Bad answers, per path: a huge chunked body (no Content-Length, so only a cap enforced as bytes
arrive can stop it), an endless stream, a huge model list, a body of our choosing (control
characters, lies), a redirect. Use it with `async with HostileNode(upstream_url) as node`, in a
thread with `running_in_thread()`, or standalone for subprocess tests:
`python -m tests.fakes.hostile --upstream-step-ms 5 --huge /sdapi/v1/txt2img=1500000000`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.serving import ServesItself

MB = 1024 * 1024


@dataclass
class Rule:
    """How one path is answered: kind is huge, endless, list, body or redirect."""

    kind: str
    size: int = 0
    status: int = 200
    body: bytes = b""
    location: str = ""
    times: int | None = None  # None: every time


class HostileNode(ServesItself):
    """Passes requests to *upstream* except the paths given a `Rule`; counts what it sent."""

    def __init__(self, upstream: str | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.host = host
        self.port = port
        self.rules: dict[str, Rule] = {}
        self.url = ""
        #: Bytes written per path by the bad answers, and how many of them were cut off by the client.
        self.sent: dict[str, int] = {}
        self.hits: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # ----- test controls -----

    def huge(self, path: str, size: int, *, prefix: bytes = b'{"images": ["') -> None:
        """A chunked JSON-looking answer of *size* bytes (base64-like filler)."""
        self.rules[path] = Rule("huge", size=size, body=prefix)

    def endless(self, path: str) -> None:
        self.rules[path] = Rule("endless", body=b'{"images": ["')

    def huge_list(self, path: str, size: int) -> None:
        """A valid JSON list of model entries, *size* bytes in all, sent chunked."""
        self.rules[path] = Rule("list", size=size)

    def answer(self, path: str, body: bytes | Any, status: int = 200) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.rules[path] = Rule("body", status=status, body=raw)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.rules[path] = Rule("redirect", status=status, location=location)

    # ----- lifecycle -----

    async def start(self) -> str:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=512 * MB)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.port = port
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ----- answering -----

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        rule = self.rules.get(path)
        if rule is None or rule.times == 0:
            return await self._proxy(request)
        if rule.times is not None:
            rule.times -= 1
        self.hits[path] = self.hits.get(path, 0) + 1
        await request.read()
        if rule.kind == "redirect":
            return web.Response(status=rule.status, headers={"Location": rule.location})
        if rule.kind == "body":
            return web.Response(status=rule.status, body=rule.body, content_type="application/json")
        stream = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        stream.enable_chunked_encoding()
        await stream.prepare(request)
        try:
            for chunk in self._chunks(rule):
                await stream.write(chunk)
                self.sent[path] = self.sent.get(path, 0) + len(chunk)
            await stream.write_eof()
        except (ConnectionError, asyncio.CancelledError):  # the client hung up: what we want
            pass
        return stream

    def _chunks(self, rule: Rule):
        block = b"A" * MB
        if rule.kind == "list":
            entry = json.dumps({"title": "x" * 900 + ".safetensors", "model_name": "x" * 900,
                                "filename": "/models/" + "x" * 900}).encode() + b","
            yield b"["
            per = block[:0].join([entry] * (MB // len(entry)))
            sent = 1
            while sent < rule.size:
                yield per
                sent += len(per)
            yield entry[:-1] + b"]"
            return
        yield rule.body
        sent = len(rule.body)
        while rule.kind == "endless" or sent < rule.size:
            yield block
            sent += len(block)
        yield b'"]}'

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        if self.upstream is None or self._session is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=await request.read(), allow_redirects=False) as upstream:
            body = await upstream.read()
            keep = {k: v for k, v in upstream.headers.items()
                    if k.lower() in ("content-type", "content-encoding", "location", "www-authenticate")}
            return web.Response(status=upstream.status, body=body, headers=keep)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A hostile node in front of a fake A1111 WebUI.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream-step-ms", type=float, default=5.0)
    parser.add_argument("--huge", action="append", default=[], metavar="PATH=BYTES")
    args = parser.parse_args(argv)

    async def serve() -> None:
        from tests.fakes.sdwebui import FakeSDWebUI

        async with FakeSDWebUI(step_ms=args.upstream_step_ms) as fake:
            node = HostileNode(fake.url, port=args.port)
            for spec in args.huge:
                path, _, size = spec.partition("=")
                node.huge(path, int(size))
            url = await node.start()
            print(f"Hostile node listening at {url}", flush=True)
            try:
                await asyncio.Event().wait()
            finally:
                await node.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
