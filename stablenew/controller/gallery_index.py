"""IndexedOutputs: the gallery's list of outputs read from the gallery index, not a folder walk.

A seam for GalleryController, called on worker threads: `listing` lists the images newest first
as the index knows them (no disk scan, so a warm gallery opens at once), and `update` then
brings the index up to date with the disk (an incremental scan: unchanged files are only
stat'ed) so the gallery can follow what it found. The first time a folder is seen the index
is built by a background worker and the plain folder listing is used meanwhile, so a first
start with 100,000 images is not a blank gallery for minutes.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the index (and the metadata readers under it) load on first use, not at start
    from stablenew.gallery.files import FileOutcome
    from stablenew.gallery.index import GalleryIndex, ScanProgress
    from stablenew.gallery.query import GalleryQuery, GalleryRow
    from stablenew.gallery.worker import IndexWorker

log = logging.getLogger("stablenew.controller.gallery")

INDEX_FILE = "gallery.db"  # in the data folder, beside stablenew.db

Listing = list[tuple[Path, float, Path | None]]


@dataclass(frozen=True)
class IndexedFacts:
    """What the index knows of a listed image: for its tooltip, badge and (when the learning
    store does not know it by this path) its stars and tags."""

    model: str
    prompt: str
    rating: int | None
    tags: tuple[str, ...]
    mtime: float = 0.0


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
        """The images under *root*, newest first, after bringing the index up to date (worker
        thread); None while the index of *root* is being built: the caller walks the folder."""
        from stablenew.pipeline.outputs import thumbnail_path

        if self._listed(root) is None:
            return None
        self.update(root)
        rows = self._listed(root)
        return None if rows is None else [(Path(p), m, thumbnail_path(Path(p))) for p, m in rows]

    def listing(self, root: Path, limit: int | None = None) -> tuple[list[str], int] | None:
        """The images under *root* and the folders the user added, newest first, as the index
        knows them now (no disk scan: `update` brings the index up to date afterwards), and
        how many there are. With *limit*, only the first *limit* of them: the index answers
        that in milliseconds (the whole list of 100,000 takes a few hundred). None while the
        index of *root* is first built: the caller walks the folder meanwhile (worker thread)."""
        from stablenew.gallery.index import path_range

        if self._listed(root, 1) is None:
            return None
        index = self._open()
        folders = self._folders(index, os.path.abspath(root)) if root.is_dir() else []
        if not folders:
            return [], 0
        ranges = [bound for f in folders for bound in path_range(f)]
        where = " OR ".join(["(path > ? AND path < ?)"] * len(folders))
        if limit is None:
            keys = [r[0] for r in index.execute(
                f"SELECT path FROM gallery_images WHERE {where} ORDER BY mtime DESC, path DESC",
                ranges)]
            return keys, len(keys)
        # The date index walked from the newest (SQLite would take the path index for the
        # folders' ranges and sort every image to keep a page).
        keys = [r[0] for r in index.execute(
            f"SELECT path FROM gallery_images INDEXED BY gallery_images_mtime WHERE {where} "
            "ORDER BY mtime DESC, path DESC LIMIT ?", [*ranges, limit])]
        total = index.execute(f"SELECT COUNT(*) FROM gallery_images WHERE {where}", ranges)[0][0]
        return keys, int(total)

    def _listed(self, root: Path, limit: int = -1) -> list[tuple[str, float]] | None:
        from stablenew.gallery.index import path_range
        from stablenew.gallery.worker import IndexWorker

        if not root.is_dir():
            return []
        index = self._open()
        if self.worker is not None and not self.worker.join(0):
            return None  # the first build is still running
        folder = os.path.abspath(root)
        if not index.execute("SELECT 1 FROM gallery_images WHERE path > ? AND path < ? LIMIT 1",
                             path_range(folder)) and folder not in index.roots():
            self.worker = IndexWorker(self.index_path, [folder],
                                      finished=lambda r: log.info("gallery index built: %s", r))
            self.worker.start()
            return None
        folders = self._folders(index, folder)
        ranges = [bound for f in folders for bound in path_range(f)]
        where = " OR ".join(["(path > ? AND path < ?)"] * len(folders))
        return [(p, m) for p, m in index.execute(
            f"SELECT path, mtime FROM gallery_images WHERE {where} "
            "ORDER BY mtime DESC, path DESC LIMIT ?", [*ranges, limit])]

    @staticmethod
    def _folders(index: GalleryIndex, folder: str) -> list[str]:
        # The output folder and the folders the user added (each once: not one inside another);
        # an earlier output folder is not listed, nor is a folder only the command line indexed.
        return _outermost([folder, *(f for f in index.shown_folders() if os.path.isdir(f))])

    def update(self, root: Path) -> bool:
        """Bring the index of *root* and the folders the user added up to date with the disk
        (unchanged files are only stat'ed); True when an image was added, changed or removed
        (worker thread). Nothing while the first build runs: it is reading them."""
        if not root.is_dir() or self.building:
            return False
        index = self._open()
        changed, problems = False, 0
        with self._scan_lock:
            for folder in self._folders(index, os.path.abspath(root)):
                result = index.scan(folder)
                problems += len(result.problems)
                changed |= bool(result.read or result.removed or result.moved)
        if problems:
            log.info("gallery index: %d files could not be read", problems)
        return changed

    def add_folder(self, folder: str) -> ScanProgress:
        """Index a folder of the user's (another tool's outputs, say) and list it from now on
        (worker thread); what the scan found and could not read."""
        index = self._open()
        with self._scan_lock:
            return index.scan(index.show_folder(folder))

    @property
    def building(self) -> bool:
        """The first build of the index runs (listings walk the folder meanwhile)."""
        return self.worker is not None and not self.worker.join(0)

    def wait_built(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for the first build; True once it has ended (worker thread)."""
        return self.worker is None or self.worker.join(timeout)

    def query(self, root: Path, query: GalleryQuery, offset: int, limit: int
              ) -> tuple[list[GalleryRow], int]:
        """A page of the images that match *query*, and how many match (worker thread)."""
        from stablenew.gallery.query import count, search

        index = self._open()
        return search(index, query, offset=offset, limit=limit), count(index, query)

    def query_listing(self, query: GalleryQuery, limit: int | None = None
                      ) -> tuple[list[str], int]:
        """The images that match *query*, in its order (the first *limit* of them), and how
        many match (worker thread)."""
        from stablenew.gallery.query import count, search_paths

        index = self._open()
        keys = search_paths(index, query, limit)
        return keys, len(keys) if limit is None else count(index, query)

    def scan_folders(self, folders: list[str]) -> bool:
        """Bring the given folders (each alone, not what is under it) up to date; True when
        an image was added, changed or removed (worker thread)."""
        index = self._open()
        changed = False
        with self._scan_lock:
            for folder in folders:
                if os.path.isdir(folder):
                    result = index.scan(folder, shallow=True)
                    changed |= bool(result.read or result.removed or result.moved)
        return changed

    def facts(self, paths: list[str]) -> dict[str, IndexedFacts]:
        """Model, prompt and marks of each indexed image among *paths* (worker thread)."""
        from stablenew.gallery.sidecar import decode_tags

        found: dict[str, IndexedFacts] = {}
        index = self._open()
        for start in range(0, len(paths), 500):
            chunk = paths[start:start + 500]
            for path, model, prompt, rating, tags, mtime in index.execute(
                    f"SELECT path, model, prompt, rating, tags, mtime FROM gallery_images "
                    f"WHERE path IN ({','.join('?' * len(chunk))})", chunk):
                found[path] = IndexedFacts(model, prompt, rating, decode_tags(tags), mtime)
        return found

    def choices(self) -> dict[str, list[str]]:
        """What the filters can offer: the models, LoRAs, runs, packs, nodes and tags indexed."""
        from stablenew.gallery.sidecar import decode_tags

        index = self._open()
        out = {column: [r[0] for r in index.execute(
            f"SELECT DISTINCT {column} FROM gallery_images WHERE {column} != '' ORDER BY 1")]
            for column in ("model", "run", "pack", "node")}
        out["lora"] = [r[0] for r in index.execute(
            "SELECT DISTINCT name FROM gallery_loras ORDER BY 1")]
        tags: set[str] = set()
        for (text,) in index.execute("SELECT DISTINCT tags FROM gallery_images WHERE tags != ''"):
            tags.update(decode_tags(text))
        out["tag"] = sorted(tags, key=str.lower)
        return out

    def remember(self, key: str, rating: int | None, tags: tuple[str, ...]) -> None:
        """A rating or tag change the learning store kept: into the index's copy (for sorting
        and filtering) and the image's sidecar (so a lost database loses neither)."""
        from stablenew.gallery.sidecar import Marks, write_marks

        marks = Marks(rating, tags)
        self._open().set_marks(key, marks)
        try:
            write_marks(key, marks)
        except OSError as exc:  # a read-only folder: the learning store still has them
            log.info("sidecar of %s not written: %s", key, exc)

    def trash(self, paths: list[str]) -> FileOutcome:
        from stablenew.gallery.files import trash

        with self._scan_lock:  # see transfer
            outcome = trash(paths)
            self._open().remove(outcome.done)
        return outcome

    def transfer(self, paths: list[str], folder: str, *, copy: bool) -> FileOutcome:
        from stablenew.gallery.files import transfer

        index = self._open()
        # No scan between a file's move and its row's: one would find the file gone and drop
        # its row (to be found again only by a scan of the folder it went to).
        with self._scan_lock:
            outcome = transfer(paths, folder, copy=copy)
            if outcome.done and not copy:
                index.show_folder(folder)  # moved images stay in the gallery, wherever they went
            for old, new in outcome.done.items():
                if copy:
                    index.index_file(new)
                else:
                    index.moved(old, new)
        return outcome

    def export(self, paths: list[str], dest: str) -> FileOutcome:
        from stablenew.gallery.files import export_zip
        from stablenew.gallery.sidecar import decode_tags

        index = self._open()
        rows = {r["path"]: r for r in index.execute(
            f"SELECT * FROM gallery_images WHERE path IN ({','.join('?' * len(paths))})", paths)}
        images = []
        for path in paths:
            row = rows.get(path)
            facts: dict[str, object] = {}
            if row is not None:
                facts = {k: row[k] for k in ("prompt", "negative", "model", "seed", "sampler",
                                             "steps", "cfg", "width", "height", "pack", "node",
                                             "rating")}
                facts["tags"] = list(decode_tags(row["tags"]))
            images.append((path, facts))
        return export_zip(images, dest)

    def collections(self) -> list[tuple[str, int]]:
        return self._open().collections()

    def add_to_collection(self, name: str, paths: list[str]) -> int:
        return self._open().add_to_collection(name, paths)

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


def _outermost(folders: list[str]) -> list[str]:
    """*folders* without those inside another of them, in their order (the first kept first)."""
    kept: list[str] = []
    for folder in dict.fromkeys(folders):
        if not any(folder == k or folder.startswith(k.rstrip(os.sep) + os.sep) for k in kept):
            kept = [k for k in kept if not k.startswith(folder.rstrip(os.sep) + os.sep)]
            kept.append(folder)
    return kept
