"""IndexedOutputs: the gallery's list of outputs read from the gallery index, not a folder walk.

A seam for GalleryController: called with the output folder on a worker thread, it brings the
index up to date (an incremental scan: unchanged files are only stat'ed) and lists the images
newest first. The first time a folder is seen the index is built by a background worker and
the plain folder listing is used meanwhile, so a first start with 100,000 images is not a
blank gallery for minutes.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the index (and the metadata readers under it) load on first use, not at start
    from stablenew.gallery.index import GalleryIndex
    from stablenew.gallery.worker import IndexWorker

log = logging.getLogger("stablenew.controller.gallery")

INDEX_FILE = "gallery.db"  # in the data folder, beside stablenew.db

Listing = list[tuple[Path, float, Path | None]]


class IndexedOutputs:
    """Lists a folder's images from the gallery index and adds new outputs to it."""

    def __init__(self, index_path: Path, learning_db: Path | None) -> None:
        self.index_path = Path(index_path)
        self.learning_db = learning_db
        self._index: GalleryIndex | None = None
        self._lock = threading.Lock()
        # Two refreshes in a row would otherwise scan the same folder at once, twice the work.
        self._scan_lock = threading.Lock()
        self.worker: IndexWorker | None = None

    def _open(self) -> GalleryIndex:
        from stablenew.gallery.index import GalleryIndex

        with self._lock:
            if self._index is None:
                self._index = GalleryIndex(self.index_path, learning_db=self.learning_db)
            return self._index

    def __call__(self, root: Path) -> Listing | None:
        """The images under *root*, newest first (on a worker thread: it reads the disk);
        None while the index of *root* is being built: the caller walks the folder itself."""
        from stablenew.gallery.index import path_range
        from stablenew.gallery.worker import IndexWorker
        from stablenew.pipeline.outputs import thumbnail_path

        if not root.is_dir():
            return []
        folder = os.path.abspath(root)
        index = self._open()
        if self.worker is not None and not self.worker.join(0):
            return None  # the first build is still running
        if not index.execute("SELECT 1 FROM gallery_images WHERE path > ? AND path < ? LIMIT 1",
                             path_range(folder)) and folder not in index.roots():
            self.worker = IndexWorker(self.index_path, [folder],
                                      finished=lambda r: log.info("gallery index built: %s", r))
            self.worker.start()
            return None
        with self._scan_lock:
            result = index.scan(folder)
        if result.problems:
            log.info("gallery index: %d files could not be read", len(result.problems))
        rows = index.execute("SELECT path, mtime FROM gallery_images WHERE path > ? AND path < ? "
                             "ORDER BY mtime DESC, path DESC", path_range(folder))
        return [(Path(p), m, thumbnail_path(Path(p))) for p, m in rows]

    def add(self, path: str | os.PathLike[str]) -> None:
        """Index one new output (on a worker thread)."""
        self._open().index_file(path)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.join(10)
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None
