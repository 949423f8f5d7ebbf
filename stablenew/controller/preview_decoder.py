"""PreviewDecoder: the pictures a running job shows in the viewer (the server's live frames as
bytes, saved images as their file), decoded off the Qt thread one at a time. One handed in while
another is decoded waits, and only the newest does; a saved result waiting is never pushed aside
by a live frame. Used by a Run (pipeline_controller) and by the queue (queue_activity)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from stablenew.controller.images import DecodedImage, decode_image

log = logging.getLogger(__name__)

#: The longest side of a picture in the viewer.
PREVIEW_SIDE = 768

Tag = TypeVar("Tag")


class Spawn(Protocol):
    """How the decodes run: a TaskOwner's `spawn` (closed with its owner)."""

    def __call__(self, coro: Coroutine[object, object, None], *, name: str = ...
                 ) -> asyncio.Task[None]: ...


class PreviewDecoder(Generic[Tag]):
    """Decodes (source, tag) pairs and hands each picture with its tag to *shown*."""

    def __init__(self, spawn: Spawn, shown: Callable[[DecodedImage, Tag], None], *,
                 name: str = "preview") -> None:
        self._spawn, self._shown, self._name = spawn, shown, name
        self._next: tuple[bytes | Path, Tag] | None = None
        self._task: asyncio.Task[None] | None = None

    def show(self, source: bytes | Path, tag: Tag) -> None:
        waiting = self._next
        if not (waiting is not None and isinstance(waiting[0], Path) and isinstance(source, bytes)):
            self._next = (source, tag)
        if self._task is None:
            self._task = self._spawn(self._decode(), name=self._name)

    async def wait(self) -> None:
        """Until every picture handed in so far is decoded and shown."""
        if self._task is not None:
            await asyncio.wait((self._task,))

    async def _decode(self) -> None:
        try:
            while self._next is not None:
                (source, tag), self._next = self._next, None
                try:
                    image = await asyncio.to_thread(decode_image, source, PREVIEW_SIDE)
                except (OSError, ValueError) as exc:  # a broken frame is not worth an error banner
                    log.debug("preview not decodable: %s", exc)
                    continue
                self._shown(image, tag)
        finally:
            self._task = None
