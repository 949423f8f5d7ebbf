"""A fake local LLM server: a real aiohttp server on 127.0.0.1 speaking both APIs users run.

OpenAI-compatible (`GET /v1/models`, `POST /v1/chat/completions`, SSE streaming ending in
`data: [DONE]`, as LM Studio, llama.cpp server, vLLM and Ollama's /v1 serve them) and, with
`flavor="ollama"`, Ollama's native `GET /api/tags`, `GET /api/ps` and `POST /api/chat` (NDJSON
stream by default, `keep_alive`, `images`, and `messages: []` + `keep_alive: 0` to unload).

Answers come from `reply()` (a FIFO script, each with its own quirks) or, when the script is
empty, from `responder(model, messages)`. Quirks real servers show: JSON wrapped in code
fences, a `<think>` block before the answer, an unknown model answered with 404 (Ollama's
shapes), slow tokens (`token_ms`), a stream dropped midway (`drop_after`), a huge answer.
Every request is kept in `requests`; `llm_seconds` sums the time spent answering on purpose
(latency + token delays) and `served_seconds` the wall time spent in chat handlers, for
benchmarks. Standalone: `python -m tests.fakes.llm --port 11434`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from tests.fakes.serving import ServesItself

DEFAULT_MODELS = ("llama3.2:3b", "llava:7b")
#: Over 2 MB of words: what a runaway model may send.
HUGE_ANSWER = "masterpiece " * 180_000


@dataclass
class Reply:
    """One scripted answer and how to misbehave while giving it."""

    text: str
    think: str = ""  # sent first inside <think>…</think>
    fence: bool = False  # wrapped in ```json … ```
    drop_after: int | None = None  # characters sent before the connection is cut
    status: int = 200  # a non-200 answers with {"error": text}
    token_ms: float | None = None  # overrides the server's pace for this answer


def tokens(text: str) -> list[str]:
    """Pieces like a tokenizer's: words with their trailing space, punctuation apart."""
    return re.findall(r"\w+\s*|[^\w\s]+\s*|\s+", text) or [""]


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content or "")
    return ""


def default_responder(model: str, messages: list[dict[str, Any]]) -> str:
    """An enhancer that adds a few quality words to whatever prompt it is given."""
    text = _last_user_text(messages)
    prompt = text.rsplit("Prompt:", 1)[-1].strip() if "Prompt:" in text else text.strip()
    return f"{prompt}, highly detailed, dramatic lighting"


class FakeLLM(ServesItself):
    """LM Studio / llama.cpp / vLLM (`flavor="openai"`) or Ollama (`flavor="ollama"`)."""

    def __init__(self, *, flavor: str = "openai", models: tuple[str, ...] = DEFAULT_MODELS,
                 vision_models: tuple[str, ...] = ("llava:7b",), token_ms: float = 0.0,
                 latency_ms: float = 0.0, api_key: str | None = None,
                 responder: Callable[[str, list[dict[str, Any]]], str] = default_responder,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if flavor not in ("openai", "ollama"):
            raise ValueError(f"unknown flavor {flavor!r}")
        self.flavor = flavor
        self.models = list(models)
        self.vision_models = set(vision_models)
        self.token_ms = token_ms
        self.latency_ms = latency_ms
        self.api_key = api_key
        self.responder = responder
        self.host = host
        self.port = port
        self.url = ""
        self.script: deque[Reply] = deque()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.loaded: dict[str, Any] = {}  # Ollama: model → keep_alive it was loaded with
        self.llm_seconds = 0.0
        self.served_seconds = 0.0  # wall time inside the chat handlers, first byte in to last out
        self._runner: web.AppRunner | None = None

    def reply(self, text: str, **quirks: Any) -> None:
        """Queue the next answer (quirks: think, fence, drop_after, status, token_ms)."""
        self.script.append(Reply(text, **quirks))

    # ----- lifecycle -----

    async def start(self) -> str:
        app = web.Application(middlewares=[self._timed, self._auth])
        app.router.add_get("/v1/models", self._v1_models)
        app.router.add_post("/v1/chat/completions", self._v1_chat)
        if self.flavor == "ollama":
            app.router.add_get("/api/tags", self._tags)
            app.router.add_get("/api/ps", self._ps)
            app.router.add_post("/api/chat", self._api_chat)
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

    @web.middleware
    async def _timed(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            if request.path.endswith("/chat") or request.path.endswith("/completions"):
                self.served_seconds += time.perf_counter() - started

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            error = {"message": "Invalid API key", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=401)
        return await handler(request)

    # ----- listings -----

    async def _v1_models(self, request: web.Request) -> web.Response:
        owner = "library" if self.flavor == "ollama" else "organization_owner"
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 1733400000, "owned_by": owner} for m in self.models]})

    async def _tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [
            {"name": m, "model": m, "modified_at": "2026-11-30T10:00:00Z", "size": 2019393189,
             "digest": f"{abs(hash(m)):064x}"[:64],
             "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B",
                         "quantization_level": "Q4_K_M"}} for m in self.models]})

    async def _ps(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [
            {"name": m, "model": m, "size": 3338801152, "expires_at": "2026-12-06T12:05:00Z",
             "size_vram": 3338801152} for m in self.loaded]})

    # ----- chat -----

    def _next(self, model: str, messages: list[dict[str, Any]]) -> Reply:
        return self.script.popleft() if self.script else Reply(self.responder(model, messages))

    def _known(self, model: str) -> bool:
        return model in self.models

    async def _v1_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.path, body))
        model = str(body.get("model", ""))
        if not self._known(model):
            if self.flavor == "ollama":
                message = f'model "{model}" not found, try pulling it first'
            else:
                message = f"Model '{model}' not found. Load it in LM Studio first."
            return web.json_response({"error": {"message": message, "type": "api_error",
                                                "param": None, "code": None}}, status=404)
        messages = body.get("messages") or []
        if self._has_images(messages) and model not in self.vision_models:
            return web.json_response({"error": {"message": "image input is not supported - hint: "
                                                "if this is unexpected, you may need to provide the "
                                                "mmproj", "type": "server_error"}}, status=500)
        reply = self._next(model, messages)
        if reply.status != 200:
            return web.json_response({"error": {"message": reply.text}}, status=reply.status)
        text = self._shape(reply)
        await self._wait(self.latency_ms)
        if not body.get("stream"):
            await self._wait(len(tokens(text)) * self._pace(reply))
            return web.json_response({
                "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(tokens(text)), "total_tokens": 0}})
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                             "Cache-Control": "no-cache"})
        await stream.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(data)}\n\n".encode()

        await stream.write(chunk({"role": "assistant", "content": ""}))
        if not await self._stream_tokens(request, stream, reply, text,
                                         lambda piece: chunk({"content": piece})):
            return stream
        await stream.write(chunk({}, "stop"))
        await stream.write(b"data: [DONE]\n\n")
        await stream.write_eof()
        return stream

    async def _api_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.path, body))
        model = str(body.get("model", ""))
        if not self._known(model):
            return web.json_response({"error": f"model '{model}' not found"}, status=404)
        messages = body.get("messages") or []
        keep_alive = body.get("keep_alive", "5m")
        created = "2026-12-06T12:00:00.000000Z"
        if not messages:
            if keep_alive in (0, "0", "0s"):
                self.loaded.pop(model, None)
                return web.json_response({"model": model, "created_at": created, "message":
                                          {"role": "assistant", "content": ""},
                                          "done_reason": "unload", "done": True})
            self.loaded[model] = keep_alive
            return web.json_response({"model": model, "created_at": created, "message":
                                      {"role": "assistant", "content": ""},
                                      "done_reason": "load", "done": True})
        self.loaded[model] = keep_alive
        reply = self._next(model, messages)
        if reply.status != 200:
            return web.json_response({"error": reply.text}, status=reply.status)
        text = self._shape(reply)
        await self._wait(self.latency_ms)
        final = {"model": model, "created_at": created, "message": {"role": "assistant", "content": ""},
                 "done": True, "done_reason": "stop", "total_duration": 1, "eval_count": len(tokens(text))}
        try:
            if body.get("stream", True) is False:
                await self._wait(len(tokens(text)) * self._pace(reply))
                return web.json_response({**final, "message": {"role": "assistant", "content": text}})
            stream = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
            await stream.prepare(request)

            def line(piece: str) -> bytes:
                return (json.dumps({"model": model, "created_at": created, "done": False,
                                    "message": {"role": "assistant", "content": piece}}) + "\n").encode()

            if not await self._stream_tokens(request, stream, reply, text, line):
                return stream
            await stream.write((json.dumps(final) + "\n").encode())
            await stream.write_eof()
            return stream
        finally:
            if keep_alive in (0, "0", "0s"):
                self.loaded.pop(model, None)

    # ----- helpers -----

    @staticmethod
    def _has_images(messages: list[dict[str, Any]]) -> bool:
        return any(isinstance(m.get("content"), list)
                   and any(p.get("type") == "image_url" for p in m["content"]) for m in messages)

    @staticmethod
    def _shape(reply: Reply) -> str:
        text = f"```json\n{reply.text}\n```" if reply.fence else reply.text
        if reply.think:
            text = f"<think>\n{reply.think}\n</think>\n\n{text}"
        return text

    def _pace(self, reply: Reply) -> float:
        return self.token_ms if reply.token_ms is None else reply.token_ms

    async def _wait(self, ms: float) -> None:
        if ms > 0:
            self.llm_seconds += ms / 1000
            await asyncio.sleep(ms / 1000)

    async def _stream_tokens(self, request: web.Request, stream: web.StreamResponse, reply: Reply,
                             text: str, frame: Callable[[str], bytes]) -> bool:
        """Send *text* token by token; False when the reply drops the connection midway."""
        sent = 0
        pieces = tokens(text)
        # A huge answer goes out in big frames: the point is its size, not its token count.
        if len(text) > 100_000:
            pieces = [text[i:i + 8192] for i in range(0, len(text), 8192)]
        for piece in pieces:
            if reply.drop_after is not None and sent >= reply.drop_after:
                if request.transport is not None:
                    request.transport.abort()
                return False
            await self._wait(self._pace(reply))
            try:
                await stream.write(frame(piece))
            except (ConnectionResetError, ConnectionError):
                return False  # the client stopped listening (cancelled or over its cap)
            sent += len(piece)
        return True


# ----- pytest fixtures (import them into a conftest.py) -----

@pytest_asyncio.fixture
async def fake_llm(request):
    """A started fake on the test's event loop; parametrize indirectly with constructor kwargs."""
    kwargs = getattr(request, "param", None) or {}
    async with FakeLLM(**kwargs) as fake:
        yield fake


@pytest.fixture
def fake_llm_thread(request):
    """A fake serving from its own thread (CLI tests in-process, benchmarks)."""
    kwargs = getattr(request, "param", None) or {}
    with FakeLLM(**kwargs).running_in_thread() as fake:
        yield fake


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake local LLM (OpenAI API, or Ollama).")
    parser.add_argument("--port", type=int, default=1234)
    parser.add_argument("--flavor", choices=("openai", "ollama"), default="openai")
    parser.add_argument("--token-ms", type=float, default=20.0)
    args = parser.parse_args()

    async def serve() -> None:
        async with FakeLLM(flavor=args.flavor, port=args.port, token_ms=args.token_ms) as fake:
            print(f"fake {args.flavor} LLM at {fake.url}", flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
