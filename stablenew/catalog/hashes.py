"""The hashes A1111 and CivitAI use, computed off the UI thread and cached.

For a LoRA, A1111 writes in `Lora hashes` the embedded `sshs_model_hash` if the header has
one, else the sha256 of the bytes after the header (its "addnet" hash); the first 12 hex
digits are CivitAI's AutoV3. The whole-file sha256 is what A1111 uses for checkpoints; its
first 10 hex digits are AutoV2.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stablenew.catalog.cache import CatalogCache
from stablenew.catalog.entry import ModelEntry, ModelKind

log = logging.getLogger(__name__)

_BLOCK = 1024 * 1024


def file_hashes(path: str | Path, *, after_header: bool, stop: threading.Event | None = None
                ) -> tuple[str | None, str]:
    """(sha256 of the bytes after the safetensors header or None, sha256 of the whole file).

    One read of the file serves both. Raises OSError if the file cannot be read and
    InterruptedError when *stop* is set part-way.
    """
    whole = hashlib.sha256()
    tail = hashlib.sha256() if after_header else None
    with open(path, "rb") as handle:
        head = handle.read(8)
        whole.update(head)
        skip = struct.unpack("<Q", head)[0] if after_header and len(head) == 8 else 0
        while skip > 0:  # the header: part of the whole-file hash only
            chunk = handle.read(min(_BLOCK, skip))
            if not chunk:
                break
            whole.update(chunk)
            skip -= len(chunk)
        while chunk := handle.read(_BLOCK):
            if stop is not None and stop.is_set():
                raise InterruptedError(str(path))
            whole.update(chunk)
            if tail is not None:
                tail.update(chunk)
    return (tail.hexdigest() if tail is not None else None), whole.hexdigest()


@dataclass(frozen=True)
class HashResult:
    """The hashes of one file, for the entry at `path`."""

    path: str
    lora_hash: str | None
    sha256: str


def hash_entries(entries: Sequence[ModelEntry], cache: CatalogCache | None, *,
                 on_result: Callable[[HashResult], None] | None = None,
                 stop: threading.Event | None = None) -> list[HashResult]:
    """Hash every readable entry still missing a hash; store each in *cache* as it finishes."""
    results = []
    for entry in entries:
        if stop is not None and stop.is_set():
            break
        if not entry.readable or entry.sha256 or entry.origin:
            continue
        lora = entry.kind is ModelKind.lora
        try:
            tail, whole = file_hashes(entry.path, after_header=lora and not entry.lora_hash, stop=stop)
        except InterruptedError:
            break
        except OSError as exc:
            log.warning("cannot hash %s: %r", entry.path, exc)
            continue
        result = HashResult(entry.path, (entry.lora_hash or tail) if lora else None, whole)
        entry.lora_hash, entry.sha256 = result.lora_hash, result.sha256
        if cache is not None:
            cache.store_hashes(entry.path, entry.size, entry.mtime_ns, result.lora_hash, result.sha256)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results


class HashWorker:
    """Hashes entries on one background thread (never the UI's); `stop()` ends it part-way."""

    def __init__(self, cache: CatalogCache | None,
                 on_result: Callable[[HashResult], None] | None = None) -> None:
        self._cache = cache
        self._on_result = on_result
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, entries: Sequence[ModelEntry]) -> None:
        self.stop()
        self._stop = threading.Event()
        todo = [e for e in entries if e.readable and not e.sha256 and not e.origin]
        self._thread = threading.Thread(target=hash_entries, args=(todo, self._cache),
                                        kwargs={"on_result": self._on_result, "stop": self._stop},
                                        name="catalog-hashes", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the worker has finished (or never started)."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def stop(self) -> None:
        self._stop.set()
        self.wait()
