"""IndexWorker: scans folders into the gallery index on its own thread, reporting progress.

The window must never wait on a scan of 100,000 files: the worker opens its own connection
(SQLite in WAL lets the window read pages while it writes) and hands progress to a callback,
which a controller turns into a Qt signal.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from stablenew.gallery.index import GalleryIndex, Problem, ScanProgress


class IndexWorker:
    """One background scan of some folders; `cancel()` stops it between files."""

    def __init__(self, index_path: str | os.PathLike[str], folders: Sequence[str | os.PathLike[str]],
                 *, progress: Callable[[str, ScanProgress], None] | None = None,
                 finished: Callable[[list[ScanProgress]], None] | None = None) -> None:
        self.index_path = Path(index_path)
        self.folders = [str(f) for f in folders]
        self._progress = progress
        self._finished = finished
        self._cancel = threading.Event()
        self.results: list[ScanProgress] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gallery-index", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the scan; True when it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            with GalleryIndex(self.index_path) as index:
                for folder in self.folders:
                    if self._cancel.is_set():
                        break
                    report = partial(self._progress, folder) if self._progress is not None else None
                    self.results.append(index.scan(folder, progress=report, cancel=self._cancel))
        except Exception as exc:  # noqa: BLE001 - the database itself failed: say so instead of dying quietly
            self.error = exc
            failed = ScanProgress(done=True, problems=[Problem(str(self.index_path),
                                                               f"the gallery index failed ({exc})")])
            self.results.append(failed)
        if self._finished is not None:
            self._finished(self.results)
