"""Session: builds the controllers the window binds to, and closes them in order at exit."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject

from stablenew.controller.app_controller import AppController, Startup, start_up
from stablenew.controller.server_controller import ServerController

log = logging.getLogger("stablenew.controller")


class Session(QObject):
    """Every controller of one window; the GUI receives this and nothing from lower rooms."""

    def __init__(self, startup: Startup | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.app = AppController(startup or start_up(), self)
        self.server = ServerController(self.app.settings, self)
        self.app.settings_changed.connect(self.server.set_settings)

    def start(self) -> None:
        """Work that may touch the network: only after the window has been painted once."""
        self.server.reconnect()

    async def aclose(self) -> None:
        self.app.sync_ui_state()
        await self.server.aclose()
        await self.app.tasks.wait_idle(timeout=5)
