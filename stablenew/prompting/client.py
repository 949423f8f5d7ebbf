"""One client for the local LLM servers users run: OpenAI-compatible chat (LM Studio, llama.cpp
server, vLLM) and Ollama's native API (the only route that honours `keep_alive`).

Like the SD clients (`stablenew.backends.http`), it never trusts the server: a whole-call
deadline plus a deadline for the first token and for each pause between tokens (a stalled
model fails instead of hanging a run), a cap on the answer checked as the bytes arrive, no
redirects, no system proxy, and every failure a typed `LLMError`. Answers are always streamed,
so the app can show them live and a stuck stream is noticed. The API key goes only into the
Authorization header: never into messages, logs or `repr`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import httpx

from stablenew.backends.http import printable, tls_context
from stablenew.pipeline.cancel import CancelToken
from stablenew.prompting.addresses import normalise_url
from stablenew.prompting.errors import (
    LLMAnswerTooLarge,
    LLMAuthFailed,
    LLMCancelled,
    LLMError,
    LLMModelMissing,
    LLMProtocolError,
    LLMRejected,
    LLMTimeout,
    LLMUnreachable,
)

log = logging.getLogger("stablenew.prompting.client")

T = TypeVar("T")

#: Where users' LLM servers listen by default: LM Studio, then Ollama.
LOCAL_DEFAULTS = ("http://127.0.0.1:1234", "http://127.0.0.1:11434")
#: A prompt is a few hundred characters; a reasoning model's <think> block a few tens of KB.
MAX_ANSWER_CHARS = 256 * 1024
#: Raw bytes of a stream (SSE/NDJSON wrap every token in ~150 bytes of JSON).
MAX_STREAM_BYTES = 16 * 1024 * 1024
#: Model lists, error bodies and other whole answers.
MAX_BODY_BYTES = 4 * 1024 * 1024
PROBE_TIMEOUT = 5.0

Message = dict[str, Any]
TokenCallback = Callable[[str], None]


class LLMKind(StrEnum):
    """Which API the server speaks."""

    openai = "openai"  # /v1/chat/completions: LM Studio, llama.cpp server, vLLM
    ollama = "ollama"  # /api/chat (Ollama also serves /v1, which ignores keep_alive)

    @property
    def label(self) -> str:
        return {"openai": "OpenAI-compatible", "ollama": "Ollama"}[self.value]


@dataclass(frozen=True)
class ChatAnswer:
    """The whole text of one answer, which model gave it and how long it took."""

    text: str
    model: str
    seconds: float


async def cancellable(work: Awaitable[T], cancel: CancelToken | None) -> T:
    """Await *work*, or raise LLMCancelled (and stop it) as soon as *cancel* trips."""
    task = asyncio.ensure_future(work)
    if cancel is None:
        return await task
    waiter = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiter.done():
            waiter.cancel()
        if not task.done():
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: BLE001 - its own error no longer matters: the user stopped it
                pass
    if task.cancelled():
        raise LLMCancelled("Stopped while the LLM was answering; the prompt was left as it was.",
                           detail="cancel token tripped")
    return task.result()


class _Stream:
    """Collects one streamed answer, token by token, against the character cap."""

    def __init__(self, on_token: TokenCallback | None, max_chars: int, where: str) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.done = False
        self.model = ""
        self.on_token = on_token
        self.max_chars = max_chars
        self.where = where

    def add(self, text: str) -> None:
        if not text:
            return
        self.size += len(text)
        if self.size > self.max_chars:
            self.parts.clear()
            raise LLMAnswerTooLarge(
                f"The LLM's answer grew past {self.max_chars // 1024} KB and was refused. "
                "Check the model: a prompt should be a few lines.",
                detail=f"{self.where}: more than {self.max_chars} characters")
        self.parts.append(text)
        if self.on_token is not None:
            self.on_token(text)


class LLMClient:
    """A local LLM server at one address: detect its kind, list models, chat, unload."""

    def __init__(self, url: str, *, api_key: str = "", kind: LLMKind | str | None = None,
                 timeout: float = 120.0, first_token_timeout: float = 60.0,
                 idle_timeout: float = 30.0, max_answer_chars: int = MAX_ANSWER_CHARS,
                 max_stream_bytes: int = MAX_STREAM_BYTES,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = normalise_url(url)
        self.kind = LLMKind(kind) if kind else None
        self.timeout = timeout
        self.first_token_timeout = first_token_timeout
        self.idle_timeout = idle_timeout
        self.max_answer_chars = max_answer_chars
        self.max_stream_bytes = max_stream_bytes
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers,
            timeout=httpx.Timeout(None, connect=5.0),  # the deadlines below are the real limits
            follow_redirects=False,  # the API key must never go to an address the user did not give
            trust_env=False,  # a system proxy must not capture calls to a LAN or localhost server
            verify=tls_context(self.base_url),  # the CA bundle once per process, not per client
            transport=transport)

    def __repr__(self) -> str:
        return f"LLMClient({self.base_url!r}, kind={self.kind})"

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- what answers -------------------------------------------------------------------

    async def detect(self) -> LLMKind:
        """Ask the server what it is (Ollama's `/api/tags` first, then `/v1/models`)."""
        if self.kind is not None:
            return self.kind
        status, data = await self._get_json("/api/tags")
        if status == 200 and isinstance(data, dict) and isinstance(data.get("models"), list):
            self.kind = LLMKind.ollama
            return self.kind
        status, data = await self._get_json("/v1/models")
        if status == 200 and isinstance(data, dict) and isinstance(data.get("data"), list):
            self.kind = LLMKind.openai
            return self.kind
        if status in (401, 403):
            raise _auth_error(status, self.base_url)
        raise LLMRejected(
            f"Something answers at {self.base_url}, but not like an LLM server StableNew knows "
            "(LM Studio, Ollama, llama.cpp server, vLLM). Check the LLM address in Settings.",
            status=status, detail=f"GET /v1/models: HTTP {status}, {printable(repr(data))}")

    async def models(self) -> list[str]:
        """The model names the server offers, as its own list gives them."""
        kind = await self.detect()
        path = "/api/tags" if kind is LLMKind.ollama else "/v1/models"
        status, data = await self._get_json(path)
        if status != 200 or not isinstance(data, dict):
            raise _status_error(status, printable(repr(data)), path, "")
        items = data.get("models" if kind is LLMKind.ollama else "data") or []
        key = "name" if kind is LLMKind.ollama else "id"
        return [str(item[key]) for item in items if isinstance(item, dict) and item.get(key)]

    async def loaded_models(self) -> list[str]:
        """The models Ollama holds in memory right now (`/api/ps`); empty for other servers."""
        if await self.detect() is not LLMKind.ollama:
            return []
        status, data = await self._get_json("/api/ps")
        if status != 200 or not isinstance(data, dict):
            return []
        return [str(m.get("name")) for m in data.get("models") or [] if isinstance(m, dict)]

    async def unload(self, model: str) -> bool:
        """Free the model's memory now (Ollama `keep_alive: 0`), so an SD server on the same GPU
        gets it back; False when the server has no way to be asked (OpenAI-compatible)."""
        if await self.detect() is not LLMKind.ollama:
            return False
        body = {"model": model, "messages": [], "keep_alive": 0, "stream": False}
        raw = await self._call("POST", "/api/chat", body, model=model, timeout=30.0)
        log.info("llm: asked %s to unload %s (%d bytes answered)", self.base_url, model, len(raw))
        return True

    # --- chat ---------------------------------------------------------------------------

    async def chat(self, messages: list[Message], *, model: str, temperature: float | None = None,
                   max_tokens: int | None = None, on_token: TokenCallback | None = None,
                   cancel: CancelToken | None = None, keep_alive: str | int | None = None,
                   timeout: float | None = None, seed: int | None = None) -> ChatAnswer:
        """Send *messages* (OpenAI format; images as `image_url` data URLs) and stream the
        answer, handing each piece to *on_token*; the whole text when it is complete. A *seed*
        asks servers that support one for the same answer to the same question."""
        return await cancellable(
            self._chat(messages, model=model, temperature=temperature, max_tokens=max_tokens,
                       on_token=on_token, keep_alive=keep_alive, timeout=timeout, seed=seed), cancel)

    async def _chat(self, messages: list[Message], *, model: str, temperature: float | None,
                    max_tokens: int | None, on_token: TokenCallback | None,
                    keep_alive: str | int | None, timeout: float | None,
                    seed: int | None) -> ChatAnswer:
        started = time.perf_counter()
        kind = await self.detect()
        if kind is LLMKind.ollama:
            path = "/api/chat"
            options: dict[str, Any] = {}
            if temperature is not None:
                options["temperature"] = temperature
            if max_tokens is not None:
                options["num_predict"] = max_tokens
            if seed is not None:
                options["seed"] = seed
            body: dict[str, Any] = {"model": model, "messages": ollama_messages(messages),
                                    "stream": True}
            if options:
                body["options"] = options
            if keep_alive is not None:
                body["keep_alive"] = keep_alive
        else:
            path = "/v1/chat/completions"
            body = {"model": model, "messages": messages, "stream": True}
            if temperature is not None:
                body["temperature"] = temperature
            if max_tokens is not None:
                body["max_tokens"] = max_tokens
            if seed is not None:
                body["seed"] = seed
        stream = _Stream(on_token, self.max_answer_chars, f"{self.base_url}{path}")
        parse = self._ollama_line if kind is LLMKind.ollama else self._sse_line
        log.debug("llm: POST %s%s model=%s (%d messages)", self.base_url, path, model, len(messages))
        await self._call("POST", path, body, model=model, timeout=timeout,
                         on_line=lambda line: parse(line, stream))
        if not stream.done:
            raise LLMProtocolError(
                f"The LLM at {self.base_url} stopped answering midway. It may have crashed or "
                "run out of memory; the prompt was left as it was.",
                detail=f"{path}: stream ended without its end marker after {stream.size} characters")
        return ChatAnswer("".join(stream.parts), stream.model or model, time.perf_counter() - started)

    @staticmethod
    def _sse_line(line: bytes, stream: _Stream) -> None:
        text = line.decode("utf-8", "replace").strip()
        if not text.startswith("data:"):
            return  # blank separators, `event:` and `:` comment lines
        payload = text[5:].strip()
        if payload == "[DONE]":
            stream.done = True
            return
        data = _json_or_fail(payload, stream.where)
        if isinstance(data, dict) and data.get("error"):
            raise _status_error(500, _error_text(data), stream.where, "")
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict):
            return
        stream.model = stream.model or str(data.get("model") or "")
        delta = choices[0].get("delta") or choices[0].get("message") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str):
            stream.add(content)

    @staticmethod
    def _ollama_line(line: bytes, stream: _Stream) -> None:
        text = line.decode("utf-8", "replace").strip()
        if not text:
            return
        data = _json_or_fail(text, stream.where)
        if not isinstance(data, dict):
            return
        if data.get("error"):
            raise _status_error(500, _error_text(data), stream.where, "")
        stream.model = stream.model or str(data.get("model") or "")
        message = data.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            stream.add(message["content"])
        if data.get("done"):
            stream.done = True

    # --- transport ----------------------------------------------------------------------

    async def _get_json(self, path: str) -> tuple[int, Any]:
        status_box: list[int] = []
        raw = await self._call("GET", path, None, timeout=PROBE_TIMEOUT, status_box=status_box)
        try:
            return status_box[0], json.loads(raw) if raw else None
        except ValueError:
            return status_box[0], raw[:200].decode("utf-8", "replace")

    async def _call(self, method: str, path: str, body: Any, *, model: str = "",
                    timeout: float | None = None, on_line: Callable[[bytes], None] | None = None,
                    status_box: list[int] | None = None) -> bytes:
        """One request within the deadlines; with *on_line* the answer is fed line by line,
        otherwise returned whole. A status >= 300 is raised as an error unless *status_box*
        asks for it."""
        where = f"{self.base_url}{path}"
        limit = timeout if timeout is not None else self.timeout
        idle: asyncio.Timeout | None = None
        try:
            async with asyncio.timeout(limit):
                async with asyncio.timeout(self.first_token_timeout) as idle:
                    return await self._send(method, path, body, model, on_line, status_box, idle)
        except TimeoutError as exc:
            if idle is not None and idle.expired():
                raise LLMTimeout(
                    f"The LLM at {self.base_url} stopped sending its answer (nothing for "
                    f"{self.idle_timeout:g} seconds). It may be overloaded; the prompt was left "
                    "as it was.", detail=f"{method} {where}: no bytes within the idle deadline") from exc
            raise LLMTimeout(
                f"The LLM at {self.base_url} did not finish within {limit:g} seconds; the prompt "
                "was left as it was. A smaller model answers faster.",
                detail=f"{method} {where}: timed out after {limit:g} s") from exc
        except httpx.ConnectError as exc:
            raise LLMUnreachable(
                f"No LLM server answers at {self.base_url}. Start LM Studio's server or Ollama, "
                "or check the LLM address in Settings.", detail=f"{method} {where}: {exc!r}") from exc
        except httpx.RemoteProtocolError as exc:
            raise LLMProtocolError(
                f"The LLM at {self.base_url} broke off its answer. It may have crashed or run out "
                "of memory; the prompt was left as it was.", detail=f"{method} {where}: {exc!r}") from exc
        except httpx.InvalidURL as exc:
            raise LLMUnreachable(f"{self.base_url} is not a usable LLM address. Enter it like "
                                 "http://127.0.0.1:1234 in Settings.", detail=repr(exc)) from exc
        except httpx.HTTPError as exc:
            raise LLMUnreachable(
                f"The connection to the LLM at {self.base_url} failed. Check that it is still "
                "running.", detail=f"{method} {where}: {exc!r}") from exc

    async def _send(self, method: str, path: str, body: Any, model: str,
                    on_line: Callable[[bytes], None] | None, status_box: list[int] | None,
                    idle: asyncio.Timeout) -> bytes:
        loop = asyncio.get_running_loop()
        request = self._http.build_request(method, path, json=body)
        response = await self._http.send(request, stream=True)
        try:
            if status_box is not None:
                status_box.append(response.status_code)
            if response.status_code >= 300 and status_box is None:
                raw = await self._read_whole(response, 64 * 1024, path, idle, loop)
                raise _status_error(response.status_code, _error_text(_loads(raw)), path, model)
            if on_line is None or response.status_code >= 300:
                return await self._read_whole(response, MAX_BODY_BYTES, path, idle, loop)
            pending = b""
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_stream_bytes:
                    raise LLMAnswerTooLarge(
                        f"The LLM's answer grew past {self.max_stream_bytes // 1_048_576} MB and "
                        "was refused.", detail=f"{path}: more than {self.max_stream_bytes} bytes")
                idle.reschedule(loop.time() + self.idle_timeout)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    on_line(line)
            if pending.strip():
                on_line(pending)
            return b""
        finally:
            await response.aclose()

    async def _read_whole(self, response: httpx.Response, cap: int, path: str,
                          idle: asyncio.Timeout, loop: asyncio.AbstractEventLoop) -> bytes:
        buffer = bytearray()
        async for chunk in response.aiter_bytes():
            if len(buffer) + len(chunk) > cap:
                raise LLMAnswerTooLarge(
                    f"The server at {self.base_url} sent a much larger answer than expected and "
                    "it was refused. Check the LLM address.",
                    detail=f"{path}: more than {cap} bytes")
            idle.reschedule(loop.time() + self.idle_timeout)
            buffer += chunk
        return bytes(buffer)


def ollama_messages(messages: list[Message]) -> list[Message]:
    """OpenAI-format messages as Ollama's `/api/chat` wants them: text in `content`, images as
    bare base64 in `images` (no `data:` prefix)."""
    out = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            out.append({"role": message["role"], "content": content or ""})
            continue
        texts, images = [], []
        for part in content:
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                url = str((part.get("image_url") or {}).get("url", ""))
                images.append(url.split(",", 1)[1] if url.startswith("data:") else url)
        item: Message = {"role": message["role"], "content": "\n".join(texts)}
        if images:
            item["images"] = images
        out.append(item)
    return out


def image_message(text: str, png: bytes, mime: str = "image/png") -> Message:
    """A user message holding *text* and an image, in the OpenAI vision format."""
    data = base64.b64encode(png).decode("ascii")
    return {"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}},
    ]}


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw[:300].decode("utf-8", "replace")


def _json_or_fail(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise LLMProtocolError("The LLM sent a garbled answer; the prompt was left as it was.",
                               detail=f"{where}: {exc}; line starts {text[:80]!r}") from exc


def _error_text(data: Any) -> str:
    """The server's own words from `{"error": "…"}`, `{"error": {"message": "…"}}` or text."""
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message") or json.dumps(error)
        if error is not None:
            return printable(str(error), 300)
    return printable(str(data or ""), 300)


def _auth_error(status: int, where: str) -> LLMAuthFailed:
    return LLMAuthFailed(
        f"The LLM server at {where} wants an API key, or refused the one given. Enter the key "
        "in Settings.", status=status, detail=f"HTTP {status}")


def _status_error(status: int, text: str, where: str, model: str) -> LLMError:
    low = text.lower()
    if status in (401, 403):
        return _auth_error(status, where)
    if status in (400, 404) and "model" in low and any(
            words in low for words in ("not found", "does not exist", "not loaded", "no model")):
        return LLMModelMissing(
            f"The LLM server has no model called '{model}'. Pick one from its list in Settings, "
            "or download it first (for Ollama: ollama pull).", model=model,
            detail=f"{where}: HTTP {status}: {text}")
    if "mmproj" in low or "image input is not supported" in low:
        return LLMRejected(
            f"The model '{model}' cannot look at images. Pick a vision model (for llama.cpp: "
            "start it with its --mmproj projector).", status=status, detail=f"{where}: {text}")
    return LLMRejected(f"The LLM server refused the request (HTTP {status}): {text}",
                       status=status, detail=f"{where}: HTTP {status}: {text}")


async def find_local_server(candidates: tuple[str, ...] = LOCAL_DEFAULTS,
                            api_key: str = "") -> LLMClient:
    """The first of the usual local addresses where an LLM server answers (LM Studio,
    then Ollama); LLMUnreachable naming them all when none does."""
    for url in candidates:
        client = LLMClient(url, api_key=api_key)
        try:
            await client.detect()
            return client
        except LLMError:
            await client.aclose()
    raise LLMUnreachable(
        "No LLM server answers on this computer (tried " + ", ".join(candidates) + "). Start LM "
        "Studio's server or Ollama, or give the address with --url.", detail="no candidate answered")
