"""The start-up clean of the data folder's start_images and references (see
`cluster.start_images`): run once in the background as the funnel room opens, never on the Qt
thread; a failure is only logged (the pictures stay, and the next start tries again)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from stablenew.storage.paths import AppPaths

log = logging.getLogger("stablenew.controller.start_images")


async def clean_start_images(paths: AppPaths, cards_file: Path) -> int:
    """Remove the start pictures and reference images nothing refers to any more; how many
    went (those of a folder that could not be cleaned are not counted)."""
    from stablenew.cluster.funnel_store import FUNNEL_FILE
    from stablenew.cluster.start_images import REFERENCE_FOLDER, START_FOLDER, sweep_start_images

    references = [paths.data_dir / FUNNEL_FILE, cards_file, paths.presets_dir,
                  paths.profiles_dir]
    count = 0
    for name in (START_FOLDER, REFERENCE_FOLDER):
        try:
            removed = await asyncio.to_thread(sweep_start_images, paths.data_dir / name,
                                              database=paths.database_file,
                                              references=references)
        except Exception as exc:  # noqa: BLE001 - housekeeping: never in the user's way
            log.warning("%s: not cleaned this time (%s: %s)", name, type(exc).__name__, exc)
            continue
        count += len(removed)
    return count
