"""The files one queue item's attempt leaves: found by the item's name prefix, removed before
the item runs again."""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.cluster.queue_db import QueueError

if TYPE_CHECKING:
    from stablenew.cluster.jobs import Job, WorkItem
    from stablenew.cluster.queue_reads import QueueReads

log = logging.getLogger(__name__)

#: Name endings of images the runner keeps as unfinished work (see pipeline/runner.py).
_LABELLED = re.compile(r"-(incomplete|[a-z0-9]+-only)\.(png|jpg)$")


def clean_item_outputs(folder: Path, prefix: str, *, keep_labelled: bool = False) -> list[Path]:
    """Delete files named for one item (`<prefix>-...`), its thumbnails and torn temp files;
    with *keep_labelled*, not the images kept and named as unfinished."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    starts = (f"{prefix}-", f".{prefix}-")
    for sub in (folder, folder / ".thumbnails"):
        if not sub.is_dir():
            continue
        for entry in sub.iterdir():
            if keep_labelled and entry.name.startswith(f"{prefix}-") and _LABELLED.search(entry.name):
                continue
            if entry.name.startswith(starts) and entry.is_file():
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
    return removed


def clean_attempt(reads: QueueReads, item: WorkItem, job: Job | None,
                  on_removed: Callable[[list[Path]], None] | None, *,
                  keep_labelled: bool = False) -> None:
    """Remove whatever an unfinished attempt of *item* left (image, thumbnail, temp), and tell
    *on_removed* of the images (the learning store forgets them); with *keep_labelled*, not
    an image the runner kept as unfinished (and its thumbnail). Without *job*, it is read."""
    if job is None:
        try:
            job = reads.get_job(item.job_id)
        except QueueError:
            return  # cleared meanwhile: its outputs went with it
        except sqlite3.Error as exc:  # nothing is deleted when unsure whose files they are
            log.warning("queue: outputs of %s not cleaned: %r", item.label, exc)
            return
    removed = clean_item_outputs(Path(job.output_dir), item.name_prefix,
                                 keep_labelled=keep_labelled)
    images = [p for p in removed if p.suffix.lower() == ".png" and p.parent.name != ".thumbnails"]
    if images and on_removed is not None:
        try:
            on_removed(images)
        except Exception:
            log.exception("queue: forgetting removed outputs of %s failed", item.label)
