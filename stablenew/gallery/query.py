"""GalleryQuery: search, filters and sort over the index, answered a page at a time.

Prompt and file-name search uses SQLite FTS5 (word prefixes, so "cyber" finds "cyberpunk")
when this Python's SQLite has it, and LIKE otherwise. Ratings and tags are the index's copy of
the learning store's (see `GalleryIndex.sync_marks`): an indexed column, so a rating sort or
filter walks an index instead of looking up every image.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path

from stablenew.gallery.index import GalleryIndex
from stablenew.gallery.sidecar import decode_tags, encode_tags


class SortKey(enum.Enum):
    """What the gallery is ordered by."""

    date = "date"
    name = "name"
    size = "size"
    rating = "rating"


_ORDER = {SortKey.date: "g.mtime", SortKey.name: "g.name", SortKey.size: "g.size",
          SortKey.rating: "g.rating"}


MAX_PAGE = 10_000  # rows per page: a view shows far fewer; SQLite caps bound parameters


@dataclass(frozen=True)
class GalleryQuery:
    """A search: text, filters and order; empty fields do not filter."""

    text: str = ""
    min_rating: int | None = None
    tag: str = ""
    model: str = ""
    lora: str = ""
    run: str = ""
    pack: str = ""
    node: str = ""
    media: str = ""
    collection: str = ""
    since: float | None = None  # mtime range, seconds since the epoch
    until: float | None = None
    sort: SortKey = SortKey.date
    descending: bool = True


@dataclass(frozen=True)
class GalleryRow:
    """One image as a list shows it."""

    path: Path
    name: str
    mtime: float
    size: int
    width: int
    height: int
    media: str
    prompt: str
    model: str
    seed: int | None
    run: str
    pack: str
    node: str
    rating: int | None
    loras: tuple[str, ...] = field(default=())
    tags: tuple[str, ...] = field(default=())
    negative: str = ""
    sampler: str = ""
    steps: int | None = None
    cfg: float | None = None


def _fts_terms(text: str) -> str:
    """User words as an FTS5 query: every word must match as a prefix (quoted, so no syntax)."""
    words = re.findall(r"\w+", text.lower())
    return " ".join(f'"{w}"*' for w in words)


def _where(index: GalleryIndex, q: GalleryQuery) -> tuple[list[str], list[object]]:
    # "+g.id IN (...)" (and "+g.rating_key IN") keeps SQLite from driving the query by the
    # matching ids, which means reading every match's row to sort it (190 ms for 15,000
    # matches); instead it walks the sort column's index and stops at a page of matches.
    where: list[str] = []
    args: list[object] = []
    if q.text.strip():
        terms = _fts_terms(q.text)
        if index.fts and terms:
            where.append("+g.id IN (SELECT rowid FROM gallery_fts WHERE gallery_fts MATCH ?)")
            args.append(terms)
        else:
            for word in q.text.split():
                like = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                where.append("(g.prompt LIKE ? ESCAPE '\\' OR g.name LIKE ? ESCAPE '\\')")
                args += [like, like]
    for column, value in (("model", q.model), ("run", q.run), ("pack", q.pack),
                          ("node", q.node), ("media", q.media)):
        if value:
            where.append(f"g.{column} = ?")  # the columns compare without case
            args.append(value)
    if q.lora:
        where.append("+g.id IN (SELECT image_id FROM gallery_loras WHERE name = ?)")
        args.append(q.lora)
    if q.min_rating:
        where.append("g.rating >= ?")
        args.append(q.min_rating)
    if q.tag:
        where.append("instr(g.tags, ?) > 0")
        args.append(encode_tags([q.tag]))
    if q.collection:
        where.append("+g.id IN (SELECT i.image_id FROM gallery_collection_items i JOIN "
                      "gallery_collections c ON c.id = i.collection_id WHERE c.name = ?)")
        args.append(q.collection)
    if q.since is not None:
        where.append("g.mtime >= ?")
        args.append(q.since)
    if q.until is not None:
        where.append("g.mtime < ?")
        args.append(q.until)
    return where, args


def _order(query: GalleryQuery) -> str:
    direction = "DESC" if query.descending else "ASC"
    # Unrated images go last whichever way ratings are sorted. Descending, NULLs come last
    # by themselves (index gallery_images_rating walked backwards); ascending, the order is
    # that of the index gallery_images_rated_first.
    nulls = "g.rating IS NULL, " if query.sort is SortKey.rating and not query.descending else ""
    return f"{nulls}{_ORDER[query.sort]} {direction}, g.id {direction}"


def search_paths(index: GalleryIndex, query: GalleryQuery, limit: int | None = None) -> list[str]:
    """The paths of the images that match (all, or the first *limit*), in the query's order: a
    gallery lists them all at once and reads each row's details as it comes into view."""
    where, args = _where(index, query)
    return [r[0] for r in index.execute(
        f"SELECT g.path FROM gallery_images g {'WHERE ' + ' AND '.join(where) if where else ''} "
        f"ORDER BY {_order(query)} LIMIT ?", [*args, -1 if limit is None else limit])]


def search(index: GalleryIndex, query: GalleryQuery, *, offset: int = 0,
           limit: int = 100) -> list[GalleryRow]:
    """One page (at most MAX_PAGE) of the images that match, in the query's order (ties by id)."""
    limit = min(max(0, limit), MAX_PAGE)
    where, args = _where(index, query)
    # The page's ids first: the wide columns (prompts) are read for the page alone.
    ids = [r[0] for r in index.execute(
        f"SELECT g.id FROM gallery_images g "
        f"{'WHERE ' + ' AND '.join(where) if where else ''} "
        f"ORDER BY {_order(query)} LIMIT ? OFFSET ?",
        [*args, limit, max(0, offset)])]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    found = {r["id"]: r for r in index.execute(
        f"SELECT g.* FROM gallery_images g WHERE g.id IN ({marks})", ids)}
    rows = [found[i] for i in ids if i in found]
    loras: dict[int, list[str]] = {}
    for hit in index.execute(f"SELECT image_id, name FROM gallery_loras WHERE image_id IN "
                             f"({marks}) ORDER BY name", ids):
        loras.setdefault(hit[0], []).append(hit[1])
    return [GalleryRow(path=Path(r["path"]), name=r["name"], mtime=r["mtime"], size=r["size"],
                       width=r["width"], height=r["height"], media=r["media"],
                       prompt=r["prompt"], model=r["model"], seed=r["seed"], run=r["run"],
                       pack=r["pack"], node=r["node"], rating=r["rating"],
                       loras=tuple(loras.get(r["id"], ())), tags=decode_tags(r["tags"]),
                       negative=r["negative"], sampler=r["sampler"], steps=r["steps"],
                       cfg=r["cfg"])
            for r in rows]


def count(index: GalleryIndex, query: GalleryQuery) -> int:
    """How many images match (for "1,234 images" and a scroll bar of the right length)."""
    where, args = _where(index, query)
    sql = f"SELECT COUNT(*) FROM gallery_images g {'WHERE ' + ' AND '.join(where) if where else ''}"
    return int(index.execute(sql, args)[0][0])
