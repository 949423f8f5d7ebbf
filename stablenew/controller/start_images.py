"""The start-up clean of the data folder's start_images (see `cluster.start_images`): run once in
the background as the funnel room opens, never on the Qt thread; a failure is only logged (the
pictures stay, and the next start tries again)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from stablenew.storage.paths import AppPaths

log = logging.getLogger("stablenew.controller.start_images")


async def clean_start_images(paths: AppPaths, cards_file: Path) -> int:
    """Remove the start pictures nothing refers to any more; how many went (0 on failure)."""
    from stablenew.cluster.funnel_store import FUNNEL_FILE
    from stablenew.cluster.start_images import START_FOLDER, sweep_start_images

    references = [paths.data_dir / FUNNEL_FILE, cards_file, paths.presets_dir,
                  paths.profiles_dir]
    try:
        removed = await asyncio.to_thread(sweep_start_images, paths.data_dir / START_FOLDER,
                                          database=paths.database_file, references=references)
    except Exception as exc:  # noqa: BLE001 - housekeeping: never in the user's way
        log.warning("start images: not cleaned this time (%s: %s)", type(exc).__name__, exc)
        return 0
    return len(removed)
