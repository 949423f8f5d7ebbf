"""Reading a page of the gallery's list (worker thread): each image's stars and tags, and its
model and prompt from the gallery index."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.controller.gallery_reading import GalleryItem, items_with_ratings
from stablenew.pipeline.outputs import thumbnail_path

if TYPE_CHECKING:
    from stablenew.controller.gallery_index import IndexedFacts, IndexedOutputs
    from stablenew.controller.gallery_ratings import RatingBook
    from stablenew.gallery.query import GalleryQuery


@dataclass(frozen=True)
class ListSource:
    """Where a listing came from, for reading its pages: a search, or a folder walk (each
    image's time and thumbnail), or else the index's list of the output folders."""

    query: GalleryQuery | None
    walked: dict[str, tuple[float, Path | None]] | None


def read_items(keys: list[str], source: ListSource, outputs: IndexedOutputs | None,
               ratings: RatingBook) -> list[GalleryItem]:
    """The items of *keys* (worker thread): stars and tags from the learning store (from
    the index's copy for a search: what it sorted and filtered by), model and prompt from
    the index. A key nothing knows any more is read as a bare item (its thumbnail only)
    until the next listing drops it."""
    walked = source.walked
    if walked is not None or outputs is None:
        found = [(Path(k), *walked[k]) for k in keys if walked and k in walked]
        items = with_facts(items_with_ratings(found, ratings), outputs)
    else:
        facts = outputs.facts(keys)
        if source.query is not None:
            items = [GalleryItem(Path(k), f.mtime, thumbnail_path(k), rating=f.rating,
                                 tags=f.tags, model=f.model, prompt=f.prompt)
                     for k in keys if (f := facts.get(k)) is not None]
        else:
            found = [(Path(k), facts[k].mtime, thumbnail_path(k)) for k in keys if k in facts]
            items = with_facts(items_with_ratings(found, ratings), outputs, facts)
    got = {i.key for i in items}
    return items + [GalleryItem(Path(k), 0.0, thumbnail_path(k))
                    for k in keys if k not in got]


def with_facts(items: list[GalleryItem], outputs: IndexedOutputs | None,
               known: Mapping[str, IndexedFacts] | None = None) -> list[GalleryItem]:
    """Model and prompt from the index, for the tooltip (worker thread). An image the
    learning store does not know by this path (another tool made it, or it was moved)
    shows the marks the index keeps for it (from its sidecar, or followed by its hash)."""
    facts = getattr(outputs, "facts", None)
    if known is None and facts is not None and items:
        known = facts([i.key for i in items])
    if known is None:
        return items
    for item in items:
        fact = known.get(item.key)
        if fact is None:
            item.model = item.prompt = ""
            continue
        item.model, item.prompt = fact.model, fact.prompt
        if item.rating is None and not item.tags:
            item.rating, item.tags = fact.rating, fact.tags
    return items
