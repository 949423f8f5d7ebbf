"""Start-up before any Qt: folders, the log file and the settings, read once and handed to the window.

Nothing here imports Qt, so `run_app` can do all of it before PySide6 loads (see `gui/app.py`).
"""

from __future__ import annotations

import logging
import logging.handlers
from dataclasses import dataclass
from pathlib import Path

from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, load_settings

log = logging.getLogger("stablenew")


def configure_logging(paths: AppPaths) -> Path | None:
    """Log to a rotating file in the data folder; a read-only disk only loses the log, not the app."""
    root = logging.getLogger("stablenew")
    if any(getattr(h, "_stablenew", False) for h in root.handlers):
        return None
    try:
        paths.log_dir.mkdir(parents=True, exist_ok=True)
        file = paths.log_dir / "stablenew.log"
        handler = logging.handlers.RotatingFileHandler(file, maxBytes=2_000_000, backupCount=3,
                                                       encoding="utf-8", delay=True)
    except OSError:
        return None
    handler._stablenew = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return file


@dataclass(frozen=True)
class Startup:
    """What start-up found before any window exists (no network, no Qt widgets)."""

    paths: AppPaths
    settings: AppSettings
    settings_message: str | None
    log_file: Path | None


def start_up(paths: AppPaths | None = None) -> Startup:
    paths = paths or AppPaths.default()
    log_file = configure_logging(paths)
    settings, message = load_settings(paths)
    if message:
        log.warning("%s", message)
    return Startup(paths, settings, message, log_file)


#: The Qt-free modules the window imports before its first paint. `run_app` imports them before
#: PySide6: PySide6 hooks every import made after it loads and reads that module's source (to
#: spot `from __feature__ import ...`), which made start-up tens of milliseconds slower.
#: tests/gui/test_startup.py fails when a module the window needs is missing here.
WINDOW_CORE = (
    "asyncio",
    "concurrent.futures",
    "json",
    "stablenew.backends",
    "stablenew.controller.errors",
    "stablenew.controller.fields",
    "stablenew.controller.format",
    "stablenew.controller.images",
    "stablenew.controller.job_follow",
    "stablenew.controller.run_progress",
    "stablenew.pipeline.events",
    "stablenew.resources",
    "stablenew.storage.resources",
)


def import_window_core() -> None:
    """Import WINDOW_CORE now (call it before the first PySide6 import)."""
    import importlib

    for name in WINDOW_CORE:
        importlib.import_module(name)
