"""Session: builds the controllers the window binds to, and closes them in order at exit."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject

from stablenew.controller.app_controller import AppController, Startup, start_up
from stablenew.controller.gallery_controller import GalleryController, LocalRatingBook
from stablenew.controller.pipeline_controller import PipelineController
from stablenew.controller.server_controller import ServerController

log = logging.getLogger("stablenew.controller")


class Session(QObject):
    """Every controller of one window; the GUI receives this and nothing from lower rooms."""

    def __init__(self, startup: Startup | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.app = AppController(startup or start_up(), self)
        self.server = ServerController(self.app.settings, self)
        self.app.settings_changed.connect(self.server.set_settings)
        self.pipeline = PipelineController(self.server, lambda: self.app.output_dir,
                                           log_dir=self.app.paths.log_dir, parent=self)
        ratings = LocalRatingBook(self.app.paths.data_dir / "ratings.json")
        self.gallery = GalleryController(lambda: self.app.output_dir, ratings, self)
        self.pipeline.image_saved.connect(self.gallery.add_record)
        # Panels other rooms provide; None until their controller is in the tree.
        self.library: Any = None
        self.randomizer: Any = None
        self.learning: Any = None
        self.queue: Any = None

    def start(self) -> None:
        """Work that may touch the network or the disk: only after the window's first paint."""
        self.server.reconnect()
        self.gallery.refresh()

    async def aclose(self) -> None:
        self.app.sync_ui_state()
        await self.pipeline.aclose()
        await self.gallery.aclose()
        await self.server.aclose()
        await self.app.tasks.wait_idle(timeout=5)
