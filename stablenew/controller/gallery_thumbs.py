"""GalleryThumbnails: thumbnails decoded off the Qt thread, the most recently asked first, and kept
up to a size in bytes."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.controller.gallery_reading import THUMB_SIDE, GalleryItem, decode_thumbnail
from stablenew.pipeline.outputs import thumbnail_path

if TYPE_CHECKING:
    from stablenew.controller.images import DecodedImage
    from stablenew.controller.tasks import TaskOwner

log = logging.getLogger("stablenew.controller.gallery")

#: Decoded thumbnails kept (fitted to the tile: 132 px RGBA, 70 kB each; some 120 of them,
#: besides the icons the view keeps).
CACHE_BYTES = 8 * 1024 * 1024
#: Thumbnails waiting to be decoded. A fast scroll asks for thousands in passing: those asked
#: longest ago are dropped (asked again if their tiles are painted again).
MAX_WAITING = 240
WORKERS = 2


class GalleryThumbnails:
    """Decodes the thumbnails the view asks for, newest request first; `ready(key, image)`."""

    def __init__(self, tasks: TaskOwner, item: Callable[[str], GalleryItem | None],
                 ready: Callable[[str, DecodedImage], None]) -> None:
        self._tasks = tasks
        self._item = item
        self._ready = ready
        self._cache: OrderedDict[str, DecodedImage] = OrderedDict()
        self._bytes = 0
        self._waiting: OrderedDict[str, None] = OrderedDict()
        self._decoding: set[str] = set()
        self._workers = 0
        #: The square thumbnails are fitted to (the view's tile), so the Qt thread only draws.
        self.side = THUMB_SIDE
        self._paused = False

    def get(self, key: str) -> DecodedImage | None:
        """The cached thumbnail, or None after asking for it to be decoded in the background."""
        image = self._cache.get(key)
        if image is not None:
            self._cache.move_to_end(key)
            return image
        if key in self._decoding:
            return None
        self._waiting[key] = None
        self._waiting.move_to_end(key)
        while len(self._waiting) > MAX_WAITING:
            self._waiting.popitem(last=False)
        self._start()
        return None

    def pause(self, paused: bool) -> None:
        """Hold the decoding back (asks are kept, the newest first) or let it go on."""
        self._paused = paused
        self._start()

    def _start(self) -> None:
        while not self._paused and self._waiting and self._workers < WORKERS:
            self._workers += 1
            self._tasks.spawn(self._work(), name="thumbnail")

    async def _work(self) -> None:
        try:
            while self._waiting and not self._paused:
                key, _ = self._waiting.popitem()  # the newest: the tiles in view now
                item = self._item(key) or GalleryItem(Path(key), 0.0, thumbnail_path(Path(key)))
                self._decoding.add(key)
                try:
                    image = await asyncio.to_thread(decode_thumbnail, item, self.side)
                except (OSError, ValueError) as exc:
                    log.info("no thumbnail for %s: %s", key, exc)
                    continue
                finally:
                    self._decoding.discard(key)
                self._keep(key, image)
                self._ready(key, image)
        finally:
            self._workers -= 1

    def _keep(self, key: str, image: DecodedImage) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._bytes -= len(old.rgba)
        self._cache[key] = image
        self._bytes += len(image.rgba)
        while self._bytes > CACHE_BYTES and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._bytes -= len(dropped.rgba)
