"""A JSON-lines log per run: one line per event, readable by people and by `jq`."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import IO, Any

from stablenew.pipeline.events import ProgressUpdate, RunEvent
from stablenew.pipeline.records import ImageRecord

log = logging.getLogger(__name__)

#: Progress lines are kept at most this often; every other event is always written.
PROGRESS_INTERVAL_S = 1.0


class RunLog:
    """Appends the events of one run to `<log_dir>/<run_id>.jsonl`; never raises on write.

    The file is opened and written in a thread of its own, in the order of the events: the
    run's events come on the event loop, which is the window's Qt thread, and a write that
    waits for the disk (a busy or network drive) would freeze the window meanwhile.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._last_progress = 0.0
        # One worker: the lines are written in the order they were handed over.
        self._writer: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="run-log")
        self._writer.submit(self._open)

    def write(self, event: RunEvent) -> None:
        if self._writer is None:
            return
        now = time.time()
        if isinstance(event, ProgressUpdate):
            if now - self._last_progress < PROGRESS_INTERVAL_S and event.stage_fraction < 1.0:
                return
            self._last_progress = now
        # Made plain here, as the event is now; serialised and written in the writer's thread.
        line = {"t": round(now, 3), "event": type(event).__name__, **_plain(event)}
        self._writer.submit(self._append, line)

    def close(self) -> None:
        """Write what is left and close the file; waits for the writer (call it off the Qt
        thread, e.g. with `asyncio.to_thread`)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.submit(self._close)
            writer.shutdown(wait=True)

    # --- in the writer's thread -------------------------------------------------------------

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        except OSError as exc:
            log.warning("run log %s cannot be written: %s", self.path, exc)

    def _append(self, line: dict[str, Any]) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        except (OSError, ValueError) as exc:
            log.warning("run log %s: %s", self.path, exc)
            self._close()

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                log.warning("run log %s: %s", self.path, exc)
            self._file = None


def _plain(obj: Any) -> Any:
    if isinstance(obj, ImageRecord):
        return {"run_id": obj.run_id, "image_index": obj.image_index, "seed": obj.seed,
                "stages": list(obj.stages), "node": obj.node, "path": str(obj.path),
                "timings": obj.timings, "warnings": list(obj.warnings)}
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)
                if f.name != "preview"}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, bytes):
        return f"<{len(obj)} bytes>"
    return obj
