"""A JSON-lines log per run: one line per event, readable by people and by `jq`."""

from __future__ import annotations

import json
import logging
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


class RunLog:
    """Appends the events of one run to `<log_dir>/<run_id>.jsonl`; never raises on write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._last_progress = 0.0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        except OSError as exc:
            log.warning("run log %s cannot be written: %s", path, exc)

    def write(self, event: RunEvent) -> None:
        if self._file is None:
            return
        now = time.time()
        if isinstance(event, ProgressUpdate):
            if now - self._last_progress < PROGRESS_INTERVAL_S and event.stage_fraction < 1.0:
                return
            self._last_progress = now
        line = {"t": round(now, 3), "event": type(event).__name__, **_plain(event)}
        try:
            self._file.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        except (OSError, ValueError) as exc:
            log.warning("run log %s: %s", self.path, exc)
            self.close()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
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
