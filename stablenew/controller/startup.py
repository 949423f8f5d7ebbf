"""Start-up without Qt: folders and the log file before the window paints, the settings after.

Nothing here imports Qt. `run_app` (gui/app.py) finds the folders and opens the log before
PySide6 loads, paints the window from what needs neither settings nor pydantic, then calls
`start_up` to read the settings for the controllers.
"""

from __future__ import annotations

import logging
import logging.handlers
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.storage.paths import AppPaths

if TYPE_CHECKING:
    from stablenew.storage.settings import AppSettings

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
    handler._stablenew = True  # type: ignore[attr-defined]  # our mark, to find our own handler again
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


def before_paint(paths: AppPaths | None = None) -> AppPaths:
    """What start-up does before the window paints: find the folders and open the log file."""
    paths = paths or AppPaths.default()
    configure_logging(paths)
    return paths


def start_up(paths: AppPaths | None = None) -> Startup:
    """Folders, log file and settings (a bad settings file is set aside, with a message)."""
    from stablenew.storage.settings import load_settings  # pydantic and PyYAML: after the paint

    paths = paths or AppPaths.default()
    log_file = configure_logging(paths)
    settings, message = load_settings(paths)
    if message:
        log.warning("%s", message)
    return Startup(paths, settings, message, log_file)


#: The Qt-free modules the window imports before its first paint. `run_app` imports them before
#: PySide6: PySide6 hooks every import made after it loads and reads that module's source (to
#: spot `from __feature__ import ...`), which made start-up tens of milliseconds slower.
#: The first paint needs no settings, models, pydantic or PyYAML (they load right after it).
#: tests/gui/test_startup.py fails when a module the window needs is missing here, or when
#: pydantic or PyYAML load before the first paint.
WINDOW_CORE = (
    "asyncio",
    "concurrent.futures",
    "stablenew.controller.cards",
    "stablenew.controller.field_spec",
    "stablenew.controller.format",
    "stablenew.resources",
    "stablenew.storage.resources",
)


def import_window_core() -> None:
    """Import WINDOW_CORE now (call it before the first PySide6 import)."""
    import importlib

    for name in WINDOW_CORE:
        importlib.import_module(name)
