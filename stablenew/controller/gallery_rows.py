"""GalleryRows: the gallery's list as a virtual list. Every listed image's key is known from the
start (the scroll bar has its full length at once); the items (stars, prompt, model) are read a
page at a time as their rows come into view, and only so many are kept."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stablenew.controller.gallery_reading import GalleryItem

#: Items kept read (about 10 MB at 100,000 images); those read longest ago are let go and read
#: again if their rows come back into view.
MAX_READ = 12_000


def numbered(keys: list[str]) -> dict[str, int]:
    """Each key's row: the lookup `GalleryRows.row_of` answers from."""
    return {k: n for n, k in enumerate(keys)}


def fresh_first(fresh: list[str], listed: list[str]) -> list[str]:
    """Images saved by this session's runs first, then the listing without them."""
    if not fresh:
        return listed
    kept = set(fresh)
    return fresh + [k for k in listed if k not in kept]


class GalleryRows:
    """Keys in list order with a constant-time row look-up (also after images are put first),
    and the items read so far. The keys past the first page may come a moment after the rows
    (None until then): a warm index gives a page and the count in milliseconds, the whole
    list of 100,000 in a few hundred."""

    def __init__(self, keys: Iterable[str] = (), total: int = 0) -> None:
        known = list(dict.fromkeys(keys))
        self.keys: list[str | None] = [*known, *[None] * (total - len(known))]
        # row = _seq[key] - _front: putting an image first costs one entry, not a renumbering.
        self._front = 0
        self._seq: dict[str, int] = {k: n for n, k in enumerate(known)}
        self.read: dict[str, GalleryItem] = {}
        self._batches: OrderedDict[int, list[str]] = OrderedDict()  # read together, oldest first
        self._batch_no = 0

    def __len__(self) -> int:
        return len(self.keys)

    def key_at(self, row: int) -> str | None:
        return self.keys[row] if 0 <= row < len(self.keys) else None

    @property
    def complete(self) -> bool:
        """Every row's key is known."""
        return len(self._seq) == len(self.keys)

    def fill(self, keys: list[str], seq: dict[str, int] | None = None) -> bool:
        """The whole list's keys: taken when they agree with the rows known (the same count,
        the same first keys); False when the list changed meanwhile. *seq* is `numbered(keys)`
        made beforehand off the Qt thread (for 100,000 keys it takes some 50 ms)."""
        known = len(self._seq)
        if len(keys) != len(self.keys) or keys[:known] != self.keys[:known]:
            return False
        self.keys = list(keys)
        self._front = 0
        self._seq = seq if seq is not None else numbered(keys)
        return True

    def row_of(self, key: str) -> int:
        """The row of *key*, -1 when it is not listed."""
        seq = self._seq.get(key)
        return -1 if seq is None else seq - self._front

    def item_at(self, row: int) -> GalleryItem | None:
        key = self.key_at(row)
        return None if key is None else self.read.get(key)

    def put_first(self, item: GalleryItem) -> None:
        """List *item* first (its key must not be listed yet) and keep it read."""
        self._front -= 1
        self._seq[item.key] = self._front
        self.keys.insert(0, item.key)
        self.read[item.key] = item

    def remove(self, keys: set[str]) -> None:
        """Take *keys* out of the list (renumbers every row: for the rare deletes and moves)."""
        self.keys = [k for k in self.keys if k is None or k not in keys]
        self._front = 0
        self._seq = {k: n for n, k in enumerate(self.keys) if k is not None}
        for key in keys:
            self.read.pop(key, None)

    def take(self, items: Iterable[GalleryItem], pinned: Callable[[str], bool] = lambda _k: False
             ) -> tuple[int, int] | None:
        """Keep the read *items* that are listed (not replacing one already read); let the
        oldest batches go beyond MAX_READ, except *pinned* keys. Returns the first and last row
        of those kept, or None."""
        kept: list[str] = []
        first, last = len(self.keys), -1
        for item in items:
            row = self.row_of(item.key)
            if row < 0 or item.key in self.read:
                continue
            self.read[item.key] = item
            kept.append(item.key)
            first, last = min(first, row), max(last, row)
        if not kept:
            return None
        self._batch_no += 1
        self._batches[self._batch_no] = kept
        while len(self.read) > MAX_READ and len(self._batches) > 1:
            _, old = self._batches.popitem(last=False)
            for key in old:
                if not pinned(key):
                    self.read.pop(key, None)
        return first, last

    def recent(self, limit: int) -> list[str]:
        """Keys of the items read most recently (about those in view), newest batch first."""
        out: list[str] = []
        for batch in reversed(self._batches.values()):
            out.extend(batch)
            if len(out) >= limit:
                break
        return out[:limit]
