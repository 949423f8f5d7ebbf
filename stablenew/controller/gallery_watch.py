"""GalleryWatch: images added, removed or moved by other programs reach the gallery by themselves.

Qt's file watcher tells which folder changed (the output folder and its run folders are
watched); after a quiet moment only those folders are scanned into the index, off the Qt
thread, and the list is read again when the scan found anything the gallery does not list.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer

from stablenew.controller.tasks import TaskOwner

if TYPE_CHECKING:
    from stablenew.controller.gallery_controller import GalleryController
    from stablenew.controller.gallery_index import IndexedOutputs

QUIET_MS = 1500  # a run writing an image a second makes one scan, not one per file
MAX_FOLDERS = 2000  # watched run folders (the newest), far under the OS's watch limits
#: Folders given to the watcher at once: each costs the Qt thread ~0.13 ms here (an inotify
#: watch), so 2,000 at once held the window 270 ms; between two batches the loop turns.
WATCH_BATCH = 25


class GalleryWatch(QObject):
    """Watches the output folder tree and rescans the folders that changed."""

    def __init__(self, gallery: GalleryController, outputs: IndexedOutputs | None) -> None:
        super().__init__(gallery)
        self.gallery = gallery
        self._outputs = outputs
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self._changed)
        self._pending: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(QUIET_MS)
        self._timer.timeout.connect(self._rescan)
        self.scans = 0  # finished rescans (for tests and logs)
        self.tasks = TaskOwner("Gallery", self)
        self.tasks.error_raised.connect(gallery.error_changed)

    def watch(self, root: Path) -> None:
        """Watch *root* and its run folders (listed off the Qt thread)."""
        if self._outputs is not None and hasattr(self._outputs, "scan_folders"):
            self.tasks.spawn(self._watch(root), name="gallery-watch")

    async def _watch(self, root: Path) -> None:
        def folders() -> list[str]:
            if not root.is_dir():
                return []
            found = [str(root)]
            with os.scandir(root) as entries:
                subs = [e for e in entries if e.is_dir(follow_symlinks=False)
                        and not e.name.startswith(".")]
            subs.sort(key=lambda e: e.stat().st_mtime, reverse=True)
            return found + [e.path for e in subs[:MAX_FOLDERS]]

        wanted = await asyncio.to_thread(folders)
        watched = set(self._watcher.directories())
        new = [f for f in wanted if f not in watched]
        for start in range(0, len(new), WATCH_BATCH):
            if start:
                await asyncio.sleep(0)  # the window paints and answers between batches
            self._watcher.addPaths(new[start:start + WATCH_BATCH])

    def _changed(self, folder: str) -> None:
        self._pending.add(folder)
        self._timer.start()

    def _rescan(self) -> None:
        folders, self._pending = sorted(self._pending), set()
        self.tasks.spawn(self._scan(folders), name="gallery-watch-scan")

    async def _scan(self, folders: list[str]) -> None:
        outputs = self._outputs
        if outputs is None:
            return  # only an index is rescanned (nothing is watched without one)
        changed = await asyncio.to_thread(outputs.scan_folders, folders)
        self.scans += 1
        root = Path(self.gallery.output_dir)
        if any(Path(f) == root for f in folders):
            await self._watch(root)  # a new run folder: watch it too
        if changed:
            self.gallery.refresh(scan=False)  # those folders were just scanned

    async def aclose(self) -> None:
        self._timer.stop()
        await self.tasks.aclose()
