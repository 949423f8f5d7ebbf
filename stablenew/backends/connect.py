"""Turn a server address into the right `Backend`, detecting its kind when not stated."""

from __future__ import annotations

import json

from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.errors import ServerUnreachable
from stablenew.backends.http import SHORT_TIMEOUT, HttpClient, normalise_url, unreachable_message
from stablenew.backends.protocol import Backend
from stablenew.backends.types import BackendKind


async def connect(url: str, *, kind: BackendKind | str | None = None,
                  auth: tuple[str, str] | None = None, timeout: float = 600.0,
                  name: str | None = None, previews: bool = True) -> Backend:
    """A backend for the server at `url`; probes it (ComfyUI, SD.Next, Forge, A1111) when
    `kind` is None. With `previews`, its progress carries the server's live preview frames
    (the `live_previews` setting; its `previews` attribute may be changed later).
    Raises ServerUnreachable, AuthFailed or another BackendError."""
    url = normalise_url(url)
    if kind is not None:
        kind = BackendKind(kind)
        if kind == BackendKind.comfyui:
            return _comfyui(url, name=name, auth=auth, timeout=timeout, previews=previews)
        return A1111Backend(url, name=name, auth=auth, timeout=timeout, kind=kind, previews=previews)
    short = min(SHORT_TIMEOUT, timeout)
    http = HttpClient(url, auth=auth, node=name or url)
    try:
        reply = await http.request("GET", "/system_stats", timeout=short)
    except ServerUnreachable as exc:
        raise ServerUnreachable(unreachable_message(url), detail=exc.detail, node=exc.node) from exc
    finally:
        await http.aclose()
    if reply.status == 200 and _is_comfyui(reply.body):
        return _comfyui(url, name=name, auth=auth, timeout=timeout, previews=previews)
    backend = A1111Backend(url, name=name, auth=auth, timeout=timeout, previews=previews)
    try:
        await backend.resolve_kind()
    except BaseException:
        await backend.aclose()
        raise
    return backend


def _is_comfyui(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    system = data.get("system") if isinstance(data, dict) else None
    return isinstance(system, dict) and "comfyui_version" in system


def _comfyui(url: str, *, name: str | None, auth: tuple[str, str] | None, timeout: float,
             previews: bool) -> Backend:
    # Imported here: the ComfyUI client is larger and most nodes are A1111/Forge.
    from stablenew.backends.comfyui import ComfyUIBackend

    return ComfyUIBackend(url, name=name, auth=auth, timeout=timeout, previews=previews)
