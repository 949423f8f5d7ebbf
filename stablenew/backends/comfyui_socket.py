"""The ComfyUI node's event socket: one WebSocket per backend, reconnected with the same
clientId, its messages routed to the prompt each one belongs to.

A dropped socket makes every waiting job check /history and /queue over HTTP (`_resync`), so
a finished prompt is never waited for and a dead node is reported at once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass, field

from stablenew.backends.comfyui_messages import parse_binary_frame
from stablenew.backends.errors import AuthFailed, BackendError, ProtocolError, ServerUnreachable
from stablenew.backends.http import LISTING_MAX_BODY

log = logging.getLogger("stablenew.backends.comfyui")


@dataclass
class _Watch:
    """Events of one prompt, routed here by the socket reader."""

    prompt_id: str
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancel_requested: bool = False
    last_error: dict | None = None


class ComfyUIEvents:
    """The socket half of `ComfyUIBackend` (a mixin: the backend owns the state declared here)."""

    name: str
    reconnects: int
    _auth: tuple[str, str] | None
    _closed: bool
    _ws_url: str
    _ws_task: asyncio.Task | None
    _ws_ready: asyncio.Event
    _ws_failure: BaseException | None
    _watches: dict[str, _Watch]
    _running_prompt: str | None

    def _ws_headers(self) -> dict[str, str]:
        if isinstance(self._auth, tuple):
            token = base64.b64encode(f"{self._auth[0]}:{self._auth[1]}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}

    async def _ensure_ws(self) -> None:
        if self._closed:
            raise ServerUnreachable(f"The connection to node '{self.name}' was closed.", node=self.name)
        if self._ws_task is None or self._ws_task.done():
            self._ws_failure = None
            self._ws_ready.clear()
            self._ws_task = asyncio.create_task(self._ws_loop(), name=f"comfyui-ws-{self.name}")
        ready = asyncio.ensure_future(self._ws_ready.wait())
        try:
            await asyncio.wait({ready, self._ws_task}, timeout=10.0, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if self._ws_ready.is_set():
            return
        failure = self._ws_failure
        if isinstance(failure, BackendError):
            raise failure
        raise ServerUnreachable(f"Cannot open the event connection to node '{self.name}'.", node=self.name,
                                detail=repr(failure))

    async def _ws_loop(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus, WebSocketException

        delay = 0.05
        first = True
        while not self._closed:
            try:
                async with connect(self._ws_url, max_size=LISTING_MAX_BODY, open_timeout=10,
                                   additional_headers=self._ws_headers(), ping_interval=20,
                                   ping_timeout=20) as ws:
                    await ws.send(json.dumps({"type": "feature_flags",
                                              "data": {"supports_preview_metadata": True}}))
                    if not first:
                        self.reconnects += 1
                        for watch in list(self._watches.values()):
                            watch.events.put_nowait(("_resync", {}))  # events may have been lost
                    first = False
                    delay = 0.05
                    self._ws_ready.set()
                    async for message in ws:
                        self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    self._ws_failure = AuthFailed(
                        f"Node '{self.name}' refused the event connection ({status}); check its credentials.",
                        node=self.name, detail=repr(exc))
                else:
                    self._ws_failure = ProtocolError(
                        f"Node '{self.name}' has no ComfyUI event socket (HTTP {status}).", node=self.name,
                        detail=repr(exc))
                if not self._watches:
                    return
            except (OSError, WebSocketException, TimeoutError) as exc:
                self._ws_failure = exc
                if not self._watches:  # nobody waits: reconnect when the next job needs it
                    return
            if self._ws_ready.is_set():
                # An established socket dropped: let every job check over HTTP now, so a dead
                # node is reported at once and a finished prompt is not waited for.
                for watch in list(self._watches.values()):
                    watch.events.put_nowait(("_resync", {}))
            self._ws_ready.clear()
            if self._closed:
                return
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    def _dispatch(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            frame = parse_binary_frame(message)
            if frame is None:
                return
            watch = self._watches.get(frame.prompt_id or self._running_prompt or "")
            if watch is not None:
                watch.events.put_nowait(("preview", frame.image))
            return
        try:
            msg = json.loads(message)
        except ValueError:
            log.debug("unreadable event from %s: %.200s", self.name, message)
            return
        kind = msg.get("type")
        data = msg.get("data") or {}
        if not isinstance(data, dict):
            return
        pid = data.get("prompt_id")
        if kind == "execution_start" and pid in self._watches:
            self._running_prompt = pid
        if pid is None and kind == "executing":
            pid = self._running_prompt  # a reconnect of the owner gets the running node without id
        watch = self._watches.get(pid or "")
        if watch is None:
            return
        if kind in ("execution_success", "execution_error", "execution_interrupted") or (
                kind == "executing" and data.get("node") is None):
            if self._running_prompt == pid and kind == "executing":
                self._running_prompt = None
        watch.events.put_nowait((kind, data))
