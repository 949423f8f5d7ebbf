"""GalleryInspector: the inspector's actions on the image it shows (Regenerate, Use as init
image, More like this, Upscale), each read and built off the Qt thread and sent to the queue
(or the cards), with what happened said in plain words beside the buttons."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from stablenew.controller.gallery_actions import images
from stablenew.controller.tasks import TaskOwner

if TYPE_CHECKING:
    from stablenew.controller.gallery_controller import GalleryController
    from stablenew.pipeline.config import PipelineConfig

log = logging.getLogger("stablenew.controller.gallery")


class GalleryInspector(QObject):
    """Builds on one image; `message_changed(text, is_problem)` says what came of it."""

    message_changed = Signal(str, bool)

    def __init__(self, gallery: GalleryController) -> None:
        super().__init__(gallery)
        self.gallery = gallery
        #: Queues configs as one job named by the text (the session's queue); False: not open.
        self.enqueue_plan: Callable[[list[PipelineConfig], str], object] | None = None
        #: Shows a config in the cards (the pipeline controller's load_config).
        self.load_cards: Callable[[PipelineConfig], None] | None = None
        #: The config the cards show now (its upscaler is the one "Upscale" uses).
        self.current_config: Callable[[], PipelineConfig] | None = None
        #: Where pictures a job starts from are copied (the data folder's start_images).
        self.start_folder: Path | None = None
        self.tasks = TaskOwner("Gallery", self)
        self.tasks.error_raised.connect(gallery.error_changed)

    def _folder(self) -> Path:
        if self.start_folder is None:
            from stablenew.storage.paths import AppPaths

            self.start_folder = AppPaths.default().data_dir / "start_images"
        return self.start_folder

    def _act(self, key: str, work: Callable[[Path], Awaitable[None]], name: str) -> None:
        if key:
            self.tasks.spawn(self._guarded(work, Path(key)), name=name)

    async def _guarded(self, work: Callable[[Path], Awaitable[None]], path: Path) -> None:
        from stablenew.gallery.remake import NothingToRemake

        try:
            await work(path)
        except NothingToRemake as exc:
            log.info("gallery inspector: %s (%s)", exc.message, exc.detail)
            self.message_changed.emit(exc.message, True)

    async def _queue(self, configs: list[PipelineConfig], name: str) -> bool:
        if self.enqueue_plan is None:
            self.message_changed.emit("The queue is not open yet; try again in a moment.", True)
            return False
        added = self.enqueue_plan(configs, name)
        if inspect.isawaitable(added):  # the queue's write: said done once it is in the queue
            added = await added
        if added is False:  # closing, or the queue did not start
            self.message_changed.emit("The queue is not open, so nothing was queued. See the "
                                      "Queue tab for why.", True)
            return False
        return True

    # --- the actions -----------------------------------------------------------------------

    def regenerate(self, key: str) -> None:
        """Queue the image's own settings and seed once more (one image)."""
        self._act(key, self._regenerate, "gallery-regenerate")

    async def _regenerate(self, path: Path) -> None:
        from stablenew.gallery.remake import regenerate_config

        config = await asyncio.to_thread(regenerate_config, path)
        if await self._queue([config], f"Regenerate {path.name}"):
            self.message_changed.emit(f"Queued {path.name} again with its own settings and seed "
                                      f"({config.txt2img.seed}).", False)

    def use_as_init(self, key: str) -> None:
        """Fill the image-to-image card with this picture and its prompt (Text to image off)."""
        self._act(key, self._use_as_init, "gallery-use-as-init")

    async def _use_as_init(self, path: Path) -> None:
        from stablenew.gallery.remake import start_from, store_start_image

        if self.load_cards is None or self.current_config is None:
            self.message_changed.emit("The cards are not ready yet; try again in a moment.", True)
            return
        base = self.current_config()
        stored = await asyncio.to_thread(store_start_image, path, self._folder())
        config, had_prompt = await asyncio.to_thread(start_from, base, path, stored)
        self.load_cards(config)
        self.message_changed.emit(
            f"Image to image now starts from {path.name}"
            + (" with its prompt and seed." if had_prompt
               else "; it carries no prompt, so the cards' prompt stays.")
            + " Press Run to make it.", False)

    def more_like_this(self, key: str) -> None:
        """Queue the picture redrawn a little (denoise 0.3, 0.4, 0.5) with its prompt and seed."""
        self._act(key, self._more_like_this, "gallery-more-like-this")

    async def _more_like_this(self, path: Path) -> None:
        from stablenew.gallery.remake import more_like_this_configs, store_start_image

        # Read first: an image without settings is refused before anything is copied.
        await asyncio.to_thread(_needs_settings, path)
        stored = await asyncio.to_thread(store_start_image, path, self._folder())
        configs = await asyncio.to_thread(more_like_this_configs, path, stored)
        if await self._queue(configs, f"More like {path.name}"):
            self.message_changed.emit(f"Queued {images(len(configs))} like {path.name} "
                                      f"(seed {configs[0].txt2img.seed}).", False)

    def upscale(self, key: str) -> None:
        """Queue an upscale of the picture (the cluster sends it to a node with the upscaler)."""
        self._act(key, self._upscale, "gallery-upscale")

    async def _upscale(self, path: Path) -> None:
        from stablenew.gallery.remake import DEFAULT_UPSCALER, store_start_image, upscale_config

        upscaler, scale = DEFAULT_UPSCALER, 2.0
        if self.current_config is not None:
            card = self.current_config().upscale
            upscaler, scale = card.upscaler or DEFAULT_UPSCALER, card.scale
        stored = await asyncio.to_thread(store_start_image, path, self._folder())
        config = await asyncio.to_thread(upscale_config, path, stored, upscaler=upscaler,
                                         scale=scale)
        if await self._queue([config], f"Upscale {path.name}"):
            self.message_changed.emit(f"Queued an upscale of {path.name} ({scale:g}× with "
                                      f"{config.upscale.upscaler}).", False)

    async def aclose(self) -> None:
        await self.tasks.aclose()


def _needs_settings(path: Path) -> None:
    from stablenew.gallery.remake import MORE_LIKE_IT, image_settings

    image_settings(path, MORE_LIKE_IT)
