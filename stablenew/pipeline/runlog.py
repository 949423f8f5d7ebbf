"""A JSON-lines log per run: one line per event, readable by people and by `jq`."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import IO, Any

from stablenew.pipeline.events import ProgressUpdate, RunEvent
from stablenew.pipeline.records import ImageRecord

log = logging.getLogger(__name__)

#: Progress lines are kept at most this often; every other event is always written.
PROGRESS_INTERVAL_S = 1.0
#: How often the writer writes the lines handed over (and at the close).
FLUSH_S = 0.5


class RunLog:
    """Appends the events of one run to `<log_dir>/<run_id>.jsonl`; never raises on write.

    The file is opened and written in a thread of its own, in the order of the events: the
    run's events come on the event loop, which is the window's Qt thread, and a write that
    waits for the disk (a busy or network drive) would freeze the window meanwhile. The lines
    are handed over without waking the writer, which writes them every FLUSH_S: a wake-up per
    event, each a hand-over of Python's lock, stalled the window on a busy machine.
    """

    def __init__(self, path: Path) -> None:
        """Starts the writer's thread: make it off the Qt thread (`asyncio.to_thread`)."""
        self.path = path
        self._last_progress = 0.0
        self._lines: list[dict[str, Any]] = []  # handed over, not yet written
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._writer = threading.Thread(target=self._write_all, name="run-log", daemon=True)
        self._writer.start()

    def write(self, event: RunEvent) -> None:
        if self._closing.is_set():
            return
        now = time.time()
        if isinstance(event, ProgressUpdate):
            if now - self._last_progress < PROGRESS_INTERVAL_S and event.stage_fraction < 1.0:
                return
            self._last_progress = now
        # Made plain here, as the event is now; serialised and written in the writer's thread.
        line = {"t": round(now, 3), "event": type(event).__name__, **_plain(event)}
        with self._lock:
            self._lines.append(line)

    def close_soon(self) -> None:
        """No more lines: the writer writes what is left and closes the file, in its time."""
        self._closing.set()

    def close(self) -> None:
        """Write what is left and close the file; waits for the writer (call it off the Qt
        thread, e.g. with `asyncio.to_thread`)."""
        self._closing.set()
        self._writer.join()

    # --- in the writer's thread -------------------------------------------------------------

    def _write_all(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            file: IO[str] | None = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        except OSError as exc:
            log.warning("run log %s cannot be written: %s", self.path, exc)
            file = None
        while True:
            closing = self._closing.wait(FLUSH_S)
            with self._lock:
                lines, self._lines = self._lines, []
            if file is not None and lines:
                try:
                    file.write("".join(json.dumps(line, ensure_ascii=False, default=str) + "\n"
                                       for line in lines))
                    file.flush()
                except (OSError, ValueError) as exc:
                    log.warning("run log %s: %s", self.path, exc)
                    _closed(file, self.path)
                    file = None
            if closing:
                break
        if file is not None:
            _closed(file, self.path)


def _closed(file: IO[str], path: Path) -> None:
    try:
        file.close()
    except OSError as exc:
        log.warning("run log %s: %s", path, exc)


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
