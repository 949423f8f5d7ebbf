"""The configured SD server: connect and probe off the Qt thread, health, capabilities for the pickers."""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from PySide6.QtCore import QObject, QTimer, Signal

from stablenew.backends.errors import BackendError
from stablenew.backends.types import Capabilities
from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.tasks import TaskOwner
from stablenew.storage.settings import AppSettings

if TYPE_CHECKING:
    from stablenew.backends.protocol import Backend

log = logging.getLogger("stablenew.controller.server")

HEALTH_INTERVAL_MS = 15_000


class ServerState(StrEnum):
    idle = "idle"
    connecting = "connecting"
    connected = "connected"
    unreachable = "unreachable"  # nothing answers, or it answers wrongly


def no_server_message(url: str) -> str:
    return (f"No Stable Diffusion server answers at {url}. Start AUTOMATIC1111 or Forge with --api "
            "(or ComfyUI with --listen), or change the address in Settings.")


@runtime_checkable
class _Previewing(Protocol):
    """A backend whose live previews can be switched while connected (A1111/Forge and ComfyUI;
    not part of Backend, which the cluster's per-item wrappers also implement)."""

    previews: bool


class ServerController(QObject):
    """Holds the connection to the server in Settings; views read its state, never the backend."""

    state_changed = Signal(str)
    capabilities_changed = Signal(object)  # Capabilities | None
    error_changed = Signal(object)  # ErrorInfo | None
    refreshing_changed = Signal(bool)  # the server's lists are being read again

    def __init__(self, settings: AppSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self._state = ServerState.idle
        self._backend: Backend | None = None
        self._capabilities: Capabilities | None = None
        self._error: ErrorInfo | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._failure: BackendError | None = None  # why the last connect failed, typed
        self._refreshing: asyncio.Task[None] | None = None
        self.tasks = TaskOwner("Server", self)
        self.tasks.error_raised.connect(self._set_error)
        self._health = QTimer(self)
        self._health.setInterval(HEALTH_INTERVAL_MS)
        self._health.timeout.connect(self.check_health)

    # --- state ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._settings.server_url

    @property
    def auth(self) -> tuple[str, str] | None:
        """The API's user and password (A1111's --api-auth), None when it has none."""
        s = self._settings
        return (s.username, s.password) if s.username else None

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def capabilities(self) -> Capabilities | None:
        return self._capabilities

    @property
    def error(self) -> ErrorInfo | None:
        return self._error

    @property
    def node_name(self) -> str:
        backend = self._backend
        if backend is not None and backend.name:
            return str(backend.name)
        return self.url.split("://", 1)[-1]

    def describe(self) -> str:
        """One line for the status bar: node name and health."""
        caps = self._capabilities
        if self._state is ServerState.connected and caps is not None:
            kind = {"a1111": "A1111", "forge": "Forge", "sdnext": "SD.Next", "comfyui": "ComfyUI"}.get(
                str(caps.kind), str(caps.kind))
            vram = ""
            if caps.vram_total:
                vram = f" · {caps.vram_free / 2**30:.1f}/{caps.vram_total / 2**30:.0f} GB free" \
                    if caps.vram_free is not None else f" · {caps.vram_total / 2**30:.0f} GB"
            return f"{self.node_name} — {kind}, ready{vram}"
        if self._state is ServerState.connecting:
            return f"{self.node_name} — connecting…"
        if self._state is ServerState.unreachable:
            return f"{self.node_name} — not reachable"
        return f"{self.node_name} — not connected"

    def _set_state(self, state: ServerState) -> None:
        if state != self._state:
            self._state = state
            self.state_changed.emit(str(state))

    def _set_error(self, info: ErrorInfo | None) -> None:
        self._error = info
        self.error_changed.emit(info)
        if info is not None and self._state is not ServerState.connected:
            self._set_state(ServerState.unreachable)

    # --- actions ----------------------------------------------------------------------------

    def set_settings(self, settings: AppSettings) -> None:
        """Adopt new settings; reconnects only when the address, kind or login changed."""
        old = self._settings
        self._settings = settings
        keys = ("server_url", "server_kind", "username", "password", "request_timeout_s")
        if any(getattr(old, k) != getattr(settings, k) for k in keys):
            self.reconnect()
        elif isinstance(self._backend, _Previewing):
            self._backend.previews = settings.live_previews  # takes effect at the next step

    def reconnect(self) -> None:
        """Connect (again) to the configured server in the background."""
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        self._set_state(ServerState.connecting)
        self._connecting = self.tasks.spawn(self._connect(), name="connect")

    def refresh_lists(self) -> None:
        """Read the server's models, LoRAs and extensions again, so files copied into its folders
        or an extension installed while StableNew runs show in the cards (an A1111-family
        server rescans its folders first, after the image it is making). Not connected: connect."""
        if self._backend is None:
            if self._connecting is None or self._connecting.done():
                self.reconnect()  # a connect under way reads the lists anyway: not restarted
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = self.tasks.spawn(self._refresh_lists(self._backend), name="refresh-lists")

    async def _refresh_lists(self, backend: Backend) -> None:
        from stablenew.backends.protocol import RescansFolders

        self.refreshing_changed.emit(True)
        try:
            if isinstance(backend, RescansFolders):
                await backend.refresh_lists()
            caps = await backend.probe()
        except BackendError as exc:
            log.info("server %s: refreshing its lists failed: %s (%s)", self.url, exc.message, exc.detail)
            self._set_error(ErrorInfo(f"The server's lists could not be read again: {exc.message}",
                                      exc.detail, "Server"))
            return
        finally:
            self.refreshing_changed.emit(False)
        if backend is not self._backend:
            return  # connected again meanwhile: that connect read them
        self._capabilities = caps
        self.capabilities_changed.emit(caps)
        self.state_changed.emit(str(self._state))  # the status line: its kind and free memory anew

    def check_health(self) -> None:
        if self._backend is None:
            if self._state is ServerState.unreachable:
                self.reconnect()
            return
        if self._connecting is None or self._connecting.done():
            self.tasks.spawn(self._ping(), name="ping")

    async def ensure_backend(self) -> Backend:
        """The connected backend, connecting first when needed; raises the typed BackendError
        of the failed connect otherwise (AuthFailed for a wrong password, not "no server").

        Every caller waits for the same connect task: two callers never open two backends."""
        if self._backend is None and (self._connecting is None or self._connecting.done()):
            self._set_state(ServerState.connecting)
            self._connecting = self.tasks.spawn(self._connect(), name="connect")
        if self._connecting is not None and not self._connecting.done():
            # asyncio.wait, not await: a caller giving up must not cancel the connect others share.
            await asyncio.wait({self._connecting})
        if self._backend is None:
            if self._failure is not None:
                raise self._failure
            raise BackendError(no_server_message(self.url))
        return self._backend

    def mark_failed(self, exc: BaseException) -> None:
        """The run path saw the node fail hard: show it and let the health check reconnect."""
        self._set_state(ServerState.unreachable)
        self._set_error(error_from_exception(exc, "Server"))

    async def _connect(self) -> None:
        from stablenew.backends.connect import connect

        settings = self._settings
        await self._drop_backend()
        self._set_state(ServerState.connecting)
        auth = (settings.username, settings.password) if settings.username else None
        kind = None if str(settings.server_kind) == "auto" else str(settings.server_kind)
        try:
            backend = await connect(settings.server_url, kind=kind, auth=auth,
                                    timeout=settings.request_timeout_s,
                                    previews=settings.live_previews)
            caps = await backend.probe()
        except BackendError as exc:
            log.info("server %s: %s (%s)", settings.server_url, exc.message, exc.detail)
            self._failure = exc
            self._capabilities = None
            self.capabilities_changed.emit(None)
            self._set_state(ServerState.unreachable)
            self._set_error(ErrorInfo(exc.message, exc.detail, "Server"))
            self._health.start()
            return
        self._backend = backend
        self._failure = None
        self._capabilities = caps
        self._set_error(None)
        self._set_state(ServerState.connected)
        self.capabilities_changed.emit(caps)
        self._health.start()

    async def _ping(self) -> None:
        backend = self._backend
        if backend is None:
            return
        try:
            await backend.ping()
        except BackendError as exc:
            self._set_state(ServerState.unreachable)
            self._set_error(ErrorInfo(exc.message, exc.detail, "Server"))
            return
        if self._state is not ServerState.connected:
            self._set_error(None)
            self._set_state(ServerState.connected)

    async def _drop_backend(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            try:
                await backend.aclose()
            except Exception as exc:  # noqa: BLE001 - closing a dead connection must never stop a reconnect
                log.debug("closing backend failed: %s", exc)

    async def aclose(self) -> None:
        self._health.stop()
        await self.tasks.aclose()
        await self._drop_backend()
