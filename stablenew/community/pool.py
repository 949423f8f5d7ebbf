"""The pool: trending images fetched, their LoRAs resolved (and looked up), then filtered.

One function the window and the command line share, so both show the same combos for the
same question. Resolving and filtering run in a worker thread (a catalog can hold thousands
of LoRAs); look-ups go only to LoRAs not found here, and at most `MAX_LOOKUPS` per fetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from stablenew.catalog.index import Catalog
from stablenew.community.client import ImageQuery
from stablenew.community.combos import Combo, ComboFilter, Filtered, VersionInfo, filter_combos, resolve
from stablenew.community.trending import TrendingResult, TrendingSource, lookup_key

#: Look-ups are one request each: enough for a page of combos, polite to the site.
MAX_LOOKUPS = 40


@dataclass
class Pool:
    """What one trending question gave: every combo, the ones kept, and what went wrong."""

    result: TrendingResult
    combos: list[Combo] = field(default_factory=list)
    filtered: Filtered = field(default_factory=Filtered)
    infos: dict[str, VersionInfo] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: Where the images came from (their pages are under it).
    base_url: str = ""

    def find(self, image_id: int) -> Combo | None:
        return next((c for c in self.combos if c.image.id == image_id), None)

    def summary(self) -> str:
        """'9 images fetched just now. 3 combos you can use; 6 left out.'"""
        kept, dropped = len(self.filtered.kept), len(self.filtered.dropped)
        text = (f"{self.result.status()} {kept} combo{'s' if kept != 1 else ''} you can use"
                f"{f'; {dropped} left out' if dropped else ''}.")
        return text


async def gather(source: TrendingSource, query: ImageQuery, count: int, catalog: Catalog,
                 rules: ComboFilter, *, node: str = "", refresh: bool = False, lookup: bool = False,
                 on_progress: Callable[[int], None] | None = None) -> Pool:
    """Fetch (through the cache), resolve against *catalog* for *node*, look up, filter."""
    result = await source.fetch(query, count, refresh=refresh, on_progress=on_progress)
    infos: dict[str, VersionInfo] = {}
    problems: list[str] = []
    if lookup:
        first = await asyncio.to_thread(resolve, result.images, catalog, node=node)
        wanted = {lookup_key(lora.ref): lora.ref for combo in first for lora in combo.loras
                  if lora.entry is None and lookup_key(lora.ref)}
        refs = list(wanted.values())[:MAX_LOOKUPS]
        infos, problems = await source.lookup(refs)
    return await asyncio.to_thread(_resolved, result, catalog, rules, node, infos, problems,
                                   source.base_url)


def regroup(pool: Pool, catalog: Catalog, rules: ComboFilter, *, node: str = "") -> Pool:
    """The same images resolved again (the catalog or node changed) and filtered anew; no network."""
    return _resolved(pool.result, catalog, rules, node, pool.infos, pool.problems, pool.base_url)


def _resolved(result: TrendingResult, catalog: Catalog, rules: ComboFilter, node: str,
              infos: dict[str, VersionInfo], problems: list[str], base_url: str) -> Pool:
    combos = resolve(result.images, catalog, node=node, infos=infos)
    return Pool(result, combos, filter_combos(combos, rules), infos, problems, base_url)
