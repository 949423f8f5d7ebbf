"""The data folder's `start_images`: the copies of pictures that queued jobs, funnel stages and
the cards start from ("Use as init image", a funnel's picks), each kept under its content hash
so it outlives the original moving. Nothing else ever removes them, so `sweep_start_images`
removes those that nothing refers to any more.

A copy is kept when its name appears in the queue (any image not yet made — waiting, at a node,
failed or cancelled, all of which may still run), in `funnel.json` (the funnel under way and the
earlier ones), in the saved cards or in a preset or profile; and when it was written or taken up
again lately (it may be on its way into a card or a job). When any of those cannot be read the
sweep removes nothing. Blocking file and SQLite I/O: run it off the Qt thread.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger("stablenew.cluster.start_images")

#: The data folder's folder of pictures queued jobs start from.
START_FOLDER = "start_images"
#: The data folder's folder of reference images (ControlNet, IP-Adapter) the cards are given:
#: kept the same way (under their hash), named the same places, swept by the same rules.
REFERENCE_FOLDER = "references"

#: A copy written or taken up again within this time (seconds) is kept whatever refers to it:
#: it may have been taken up a moment ago, before the card or the job naming it was saved, and
#: an image made from it names it in its settings, so "Regenerate" on that image needs it
#: (the gallery's images are not searched: 100,000 of them are too many to read at start-up).
#: Two weeks keeps Regenerate working for what a user is still working on.
RECENT_S = 14 * 24 * 3600.0

#: The names `store_reference` gives: the picture's sha256 and its kind. Files named otherwise
#: are not ours and are never touched.
_STORED_NAME = re.compile(r"[0-9a-f]{64}\.(?:png|jpg|webp)")

#: The queue's texts that may name a picture: each unfinished item's own config, and the shared
#: config of each job with an unfinished item.
_QUEUE_TEXTS = (
    "SELECT config FROM queue_items WHERE state != 'done' AND config IS NOT NULL",
    "SELECT base_config FROM queue_jobs j WHERE base_config IS NOT NULL AND EXISTS "
    "(SELECT 1 FROM queue_items i WHERE i.job_id = j.id AND i.state != 'done')",
)

#: The kinds of file in a folder of references (presets, profiles) whose text is searched.
_TEXT_SUFFIXES = (".yaml", ".yml", ".json")


def sweep_start_images(folder: Path, *, database: Path, references: Iterable[Path],
                       now: float | None = None) -> list[Path]:
    """Remove the pictures in *folder* that no unfinished item of the queue in *database*, no
    file of *references* (files, or folders searched for YAML and JSON) and no recent use
    refers to; returns what was removed. Raises OSError or sqlite3.Error, having removed
    nothing, when a reference cannot be read."""
    try:
        stored = [p for p in folder.iterdir() if _STORED_NAME.fullmatch(p.name) and p.is_file()]
    except FileNotFoundError:
        return []
    if not stored:
        return []
    named = set(_names_in_queue(database))
    for text in _reference_texts(references):
        named.update(_STORED_NAME.findall(text))
    recent = (time.time() if now is None else now) - RECENT_S
    removed = []
    for path in stored:
        if path.name in named:
            continue
        try:
            if path.stat().st_mtime >= recent:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:  # one picture that cannot go does not stop the others
            log.warning("start images: could not remove %s: %s", path, exc)
            continue
        removed.append(path)
    log.info("%s: removed %d of %d pictures nothing refers to any more", folder.name,
             len(removed), len(stored))
    return removed


def _names_in_queue(database: Path) -> Iterator[str]:
    if not database.exists():
        return
    con = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        for query in _QUEUE_TEXTS:
            try:
                rows = con.execute(query)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return  # a database the queue never used: nothing is queued
                raise
            for (text,) in rows:
                yield from _STORED_NAME.findall(text)
    finally:
        con.close()


def _reference_texts(references: Iterable[Path]) -> Iterator[str]:
    for place in references:
        if place.is_dir():
            files = sorted(p for p in place.rglob("*") if p.suffix.lower() in _TEXT_SUFFIXES
                           and p.is_file())
        else:
            files = [place]
        for file in files:
            try:
                yield file.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
