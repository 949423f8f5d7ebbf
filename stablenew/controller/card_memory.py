"""CardMemory: the stage cards as the user left them, kept in the data folder so the window opens
with them again after a close, and after a crash too."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer

from stablenew.controller.tasks import TaskOwner
from stablenew.errors import StableNewError

if TYPE_CHECKING:
    from stablenew.pipeline.config import PipelineConfig

log = logging.getLogger("stablenew.controller.cards")

CARDS_FILE = "last-cards.yaml"
#: A pause in typing this long saves the cards: a crash loses at most the last moment's keys.
SAVE_DELAY_MS = 400


class CardsNotRestored(StableNewError):
    """The cards of the last session could not be read back (the file is set aside)."""


class CardMemory(QObject):
    """Saves the cards' config (only what differs from the defaults, as the YAML a config file
    holds) a moment after each change and at close, atomically and off the Qt thread; `restore`
    reads it back when the window opens."""

    def __init__(self, file: Path, current_config: Callable[[], PipelineConfig],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.file = file
        self._current = current_config
        self._written: str | None = None  # the text the file holds (None: not known)
        self._latest: str | None = None  # the newest text asked to be written
        self._write_lock: asyncio.Lock | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SAVE_DELAY_MS)
        self._timer.timeout.connect(self.save_now)
        self.tasks = TaskOwner("Cards", self)

    def restore(self) -> PipelineConfig | None:
        """The config the cards held when StableNew last closed or stopped, or None (first
        start). Raises CardsNotRestored, after setting the file aside, when it cannot be read:
        the cards then start from the defaults and nothing the user wrote is overwritten."""
        from stablenew.pipeline.config import PipelineConfig

        try:
            text = self.file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise self._set_aside(exc) from None
        try:
            config = PipelineConfig.from_yaml(text, path=str(self.file))
        except Exception as exc:  # noqa: BLE001 - a damaged file, or one a newer StableNew wrote
            raise self._set_aside(exc) from None
        self._written = self._latest = text
        return config

    def _set_aside(self, exc: BaseException) -> CardsNotRestored:
        aside = self.file.with_name(f"{self.file.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            self.file.replace(aside)
            kept = f" It is kept as {aside.name}."
        except OSError:
            kept = ""
        log.warning("cards of the last session not restored from %s: %s", self.file, exc)
        return CardsNotRestored(
            f"The settings your cards held last time could not be read back, so they start from "
            f"the defaults.{kept}", detail=f"{self.file}: {exc}")

    def schedule(self, *_args: object) -> None:
        """The cards changed: save them once the user pauses."""
        self._timer.start()

    def save_now(self) -> None:
        """Write the cards' config now (off the Qt thread), if it changed since the last write."""
        self._timer.stop()
        text = self._current().to_yaml(only_changes=True)
        if text == (self._latest if self._latest is not None else self._written):
            return
        self._latest = text
        self.tasks.spawn(self._write(), name="save-cards")

    async def _write(self) -> None:
        from stablenew.storage.atomic import atomic_write_text

        # One write at a time, always of the newest text: an older one never lands last.
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock:
            text = self._latest
            if text is None or text == self._written:
                return
            await asyncio.to_thread(atomic_write_text, self.file, text)
            self._written = text

    async def aclose(self) -> None:
        """Save what is not saved yet, then stop."""
        if self._timer.isActive():
            self.save_now()
        await self.tasks.wait_idle(timeout=5)
        await self.tasks.aclose()
