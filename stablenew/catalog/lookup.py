"""`Lora hashes` from the catalog cache on disk, for commands without a window (`stablenew run`,
`stablenew queue run`): the window's Models room has its catalog in memory; a command reads the
cache the window and `stablenew lora scan` keep, and only when an image needs it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stablenew.catalog.index import Catalog

log = logging.getLogger(__name__)


class CachedLoraHashes:
    """A `Lora hashes` lookup over the cached catalog, read on the first call (an image whose
    server loaded LoRAs without hashing them, i.e. ComfyUI), never before; hashes not in the
    cache yet are left out, as A1111 leaves out what it has not hashed."""

    def __init__(self, cache_path: str | Path) -> None:
        self._path = Path(cache_path)
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    def __call__(self, files: Sequence[str]) -> str:
        from stablenew.catalog.prompt import lora_hashes_for_files

        return lora_hashes_for_files(files, self._loaded())

    def _loaded(self) -> Catalog:
        with self._lock:
            if self._catalog is None:
                self._catalog = self._read()
            return self._catalog

    def _read(self) -> Catalog:
        from stablenew.catalog.cache import CatalogCache, CatalogCacheError
        from stablenew.catalog.entry import ModelKind
        from stablenew.catalog.index import Catalog, scan

        if not self._path.is_file():
            return Catalog()  # nothing was ever scanned: no hashes to name
        try:
            cache = CatalogCache(self._path)
        except CatalogCacheError as exc:
            log.warning("catalog cache %s not read for Lora hashes: %s", self._path, exc)
            return Catalog()
        try:
            return scan([(root, ModelKind(kind)) for root, kind in cache.roots()], cache)
        finally:
            cache.close()
