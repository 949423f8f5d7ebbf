"""GalleryController: outputs newest first as a virtual list (every image listed at once, each page's
details read as it comes into view); thumbnails and large views decoded off the Qt thread;
ratings and tags, read from and written to the learning store."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from PySide6.QtCore import QObject, Signal

from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.gallery_pages import ListSource, read_items
from stablenew.controller.gallery_ratings import (
    RatingBook,
    RatingsUnavailable,
    StoredRatings,
    WriteOutcome,
    _settled,
    hand_over_file,
)
from stablenew.controller.gallery_reading import (
    LARGE_SIDE,
    THUMB_SIDE,
    GalleryItem,
    ImageDetail,
    read_detail,
    scan_outputs,
)
from stablenew.controller.gallery_rows import GalleryRows, fresh_first, numbered
from stablenew.controller.gallery_thumbs import GalleryThumbnails
from stablenew.controller.gc_pause import CollectorPause
from stablenew.controller.images import DecodedImage
from stablenew.controller.tasks import TaskOwner

if TYPE_CHECKING:
    from stablenew.controller.gallery_actions import GalleryActions
    from stablenew.controller.gallery_index import IndexedOutputs
    from stablenew.gallery.query import GalleryQuery
    from stablenew.learning.records import LearningRecord
    from stablenew.pipeline.records import ImageRecord

log = logging.getLogger("stablenew.controller.gallery")

# Images whose details are read at once, as their rows come into view: a read is Python a
# worker runs while the window paints (600 at once held the GIL ~25 ms as a scroll stopped).
PAGE_SIZE = 200
WANTED_PAGES = 4  # pages waiting to be read; a fast scroll's older asks are dropped
PRESET_TAGS = ("too noisy", "too smooth", "nailed it")


#: What a rating or tag change shows on an item: its stars (None: unrated) or its tags.
_Shown: TypeAlias = "int | tuple[str, ...] | None"


class GalleryController(QObject):
    """The list of outputs and everything done to one of them (view large, rate, tag, reuse)."""

    items_resetting = Signal()  # the list is about to be replaced (views keep their place)
    items_reset = Signal()
    item_added = Signal(object)  # GalleryItem, inserted first
    rows_read = Signal(int, int)  # first and last row whose items were read (a page came in)
    item_changed = Signal(object)  # GalleryItem (rating/tags)
    thumbnail_ready = Signal(str, object)  # key, DecodedImage
    detail_ready = Signal(object)  # ImageDetail
    error_changed = Signal(object)

    def __init__(self, output_dir: Callable[[], Path], ratings: RatingBook,
                 parent: QObject | None = None, *, outputs: IndexedOutputs | None = None) -> None:
        super().__init__(parent)
        self._output_dir = output_dir  # callable → Path
        self._ratings = ratings
        # Lists the folder newest first (a worker thread calls it); an IndexedOutputs reads the
        # gallery index and is told of new outputs. Default: walk the folder.
        self._outputs = outputs
        # Every listed image's key from the start; items read a page at a time as they show.
        self._rows = GalleryRows()
        self._source = ListSource(None, {})
        self._fresh: set[str] = set()  # saved by this session's runs: kept first on a refresh
        self._opened: str | None = None  # the image shown large: its item is kept read
        self._writes: dict[str, int] = {}  # key → number of its latest rating/tag change
        self._in_flight: dict[str, int] = {}  # key → its rating/tag writes not yet confirmed
        self._scans = 0  # a page read for an older list is dropped
        self._wanted: OrderedDict[int, None] = OrderedDict()  # pages asked for, newest last
        self._paging = False
        self._paused = False  # the view scrolls fast: pages and thumbnails wait
        self._collector = CollectorPause()
        self._closed = False
        self.page_size = PAGE_SIZE
        # A search, filter or order other than newest first: the list is the index's answer.
        self._query: GalleryQuery | None = None
        self._awaiting_index = False
        self.tasks = TaskOwner("Gallery", self)
        self.tasks.error_raised.connect(self.error_changed)
        self._thumbs = GalleryThumbnails(self.tasks, self._rows_item, self.thumbnail_ready.emit)
        from stablenew.controller.gallery_actions import GalleryActions

        self.actions: GalleryActions = GalleryActions(self, self._outputs)
        from stablenew.controller.gallery_watch import GalleryWatch

        self.watch = GalleryWatch(self, self._outputs)
        from stablenew.controller.gallery_inspector import GalleryInspector

        self.inspector = GalleryInspector(self)

    # --- list ---------------------------------------------------------------------------------

    @property
    def items(self) -> list[GalleryItem]:
        """The items read so far, in list order: every one for a list of a page or two (a long
        list reads its rows as they come into view: views use `row_count` and `item_at`)."""
        read = self._rows.read
        return [read[k] for k in self._rows.keys if k in read]

    @property
    def row_count(self) -> int:
        """How many images are listed (the whole list, read or not)."""
        return len(self._rows)

    def key_at(self, row: int) -> str | None:
        return self._rows.key_at(row)

    def row_of(self, key: str) -> int:
        """The row of the image *key*, -1 when it is not listed."""
        return self._rows.row_of(key)

    def item_at(self, row: int) -> GalleryItem | None:
        """The item of *row*, or None after asking for its page to be read in the background
        (`rows_read` says when it is there)."""
        key = self._rows.key_at(row)
        if key is None:
            return None
        item = self._rows.read.get(key)
        if item is None:
            self._want(row // self.page_size)
        return item

    def item(self, key: str) -> GalleryItem | None:
        """The item of *key* if it is listed and read."""
        return self._rows.read.get(key)

    def _rows_item(self, key: str) -> GalleryItem | None:
        return self._rows.read.get(key)

    def show_record(self, record: LearningRecord) -> None:
        """A learning record changed elsewhere (the learning grid rated it): its stars and tags
        show here too. Ignored while a change made here is on its way to the store."""
        item = self._rows.read.get(str(record.path))
        if item is None or self._in_flight.get(item.key):
            return
        rating, tags = record.rating, tuple(record.tags)
        if (item.rating, item.tags) != (rating, tags):
            item.rating, item.tags = rating, tags
            self.item_changed.emit(item)
            self.tasks.spawn(self._remember(item), name="remember-rating")

    def hand_over_rating_file(self, file: Path) -> None:
        """Ratings an earlier StableNew kept in a file of their own (ratings.json) go to the
        learning store once; the file keeps only what the store refused (learning Off, an image
        another tool made), to be offered again at the next start."""
        self.tasks.spawn(self._hand_over(file), name="hand-over-ratings")

    async def _hand_over(self, file: Path) -> None:
        if await hand_over_file(file, self._ratings):
            self.refresh()

    @property
    def total(self) -> int:
        """How many images are listed (all outputs, or those a search found)."""
        return len(self._rows)

    @property
    def query(self) -> GalleryQuery | None:
        """The search, filters and order the list shows; None for all outputs, newest first."""
        return self._query

    def set_query(self, query: GalleryQuery | Mapping[str, Any]) -> None:
        """List what *query* (or a query of these fields) finds in the gallery index (read off
        the Qt thread). Any: the filter panel's fields by name, of several types, which the
        view cannot name (GalleryQuery is below the controllers); GalleryQuery takes them."""
        from stablenew.gallery.query import GalleryQuery, SortKey

        if not isinstance(query, GalleryQuery):
            fields = dict(query)
            fields["sort"] = SortKey(fields.get("sort", "date"))
            query = GalleryQuery(**fields)
        wanted = None if query == GalleryQuery() else query
        if wanted is not None and not hasattr(self._outputs, "query"):
            self.report(error_from_exception(RatingsUnavailable(
                "Search needs the gallery index, which is not open."), "Gallery"))
            return
        self._query = wanted
        self.refresh(scan=False)  # the index is kept current: the first listing brought it up to date

    def _read_items(self, keys: list[str], source: ListSource) -> list[GalleryItem]:
        return read_items(keys, source, self._outputs, self._ratings)

    def refresh(self, *, scan: bool = True) -> None:
        """List the images again, read off the Qt thread: at once from the gallery index as it
        stands, then (with *scan*) the folders are brought up to date behind it and the list
        follows what that found (new images appear, deleted ones go), keeping the place."""
        self.tasks.spawn(self._list(scan), name="scan-outputs")

    async def _list(self, scan: bool) -> None:
        root = Path(self._output_dir())
        self._scans += 1
        scan_number = self._scans
        query, outputs = self._query, self._outputs
        # The images read last (those in view) are read with the list, so they show at once.
        again = self._rows.recent(2 * self.page_size)
        fresh = [] if query is not None else [k for k in self._rows.keys if k in self._fresh]
        size = self.page_size
        # A new list (the first, or another search) shows its first page and its length at
        # once and learns the other rows' keys a moment later; the same list listed again
        # reads them all first, so the place and the selection (maybe far down) are kept.
        limit = size if not self._rows.keys or query != self._source.query else None

        def read() -> tuple[GalleryRows, ListSource]:
            walked: dict[str, tuple[float, Path | None]] | None = None
            if query is not None and outputs is not None:  # a search is only set with the index
                keys, total = outputs.query_listing(query, limit)
            else:
                listed = outputs.listing(root, limit) if outputs is not None else None
                if listed is None:  # no index, or its first build runs: walk the folder
                    walked = {str(p): (m, t) for p, m, t in scan_outputs(root)}
                    listed = list(walked), len(walked)
                head, count = listed
                keys = fresh_first(fresh, head)
                total = count + len(keys) - len(head)
            rows, source = GalleryRows(keys, total), ListSource(query, walked)
            wanted = dict.fromkeys(k for k in rows.keys[:size] if k is not None)
            wanted.update((k, None) for k in again if rows.row_of(k) >= 0)
            rows.take(self._read_items(list(wanted), source))
            return rows, source

        rows, source = await asyncio.to_thread(read)
        self.watch.watch(root)
        walked = source.walked is not None
        if walked and hasattr(outputs, "wait_built") and not self._awaiting_index:
            self._awaiting_index = True  # the index was being built: facts come later
            self.tasks.spawn(self._when_built(), name="gallery-index-built")
        newest = scan_number == self._scans  # else a newer listing is on its way (not shown)
        if newest:
            self._show(rows, source, fresh)
        if newest and not rows.complete:
            self.tasks.spawn(self._complete(scan_number, root, fresh, scan), name="gallery-keys")
        elif scan and not walked and hasattr(outputs, "update"):  # newest or not: the next may not scan
            self.tasks.spawn(self._update(root), name="gallery-update")

    def _show(self, rows: GalleryRows, source: ListSource, fresh: list[str]) -> None:
        """Replace the list by *rows* (views keep their place and selection)."""
        # A rating or tag on its way to the store was read as it was before: show the new one.
        for key, item in rows.read.items():
            shown = self._rows.read.get(key)
            if shown is not None and self._in_flight.get(key):
                item.rating, item.tags = shown.rating, shown.tags
        for key in fresh:  # a new image keeps its prompt and model until the index has them
            shown = self._rows.read.get(key)
            if shown is not None and rows.row_of(key) >= 0:
                rows.read[key] = shown
        self.items_resetting.emit()
        self._rows, self._source = rows, source
        self._wanted.clear()
        self._paging = False  # a page of the previous list still loading is dropped on arrival
        self.items_reset.emit()

    async def _complete(self, scan_number: int, root: Path, fresh: list[str], scan: bool) -> None:
        """The keys of the rows past the first page (the whole list, read off the Qt thread);
        then, with *scan*, the folders are brought up to date."""
        query, outputs = self._source.query, self._outputs
        if outputs is None:
            return

        def read() -> tuple[list[str], dict[str, int]] | None:
            if query is not None:
                keys = outputs.query_listing(query)[0]
            else:
                listed = outputs.listing(root)
                if listed is None:
                    return None
                keys = fresh_first(fresh, listed[0])
            return keys, numbered(keys)  # numbered here: 100,000 keys hold a thread ~50 ms

        answer = await asyncio.to_thread(read)
        if answer is None or scan_number != self._scans:
            if answer is not None and scan and hasattr(outputs, "update"):
                await self._update(root)  # a newer listing may not scan: the disk is still read
            return
        keys, seq = answer
        if self._rows.fill(keys, seq):
            self.rows_read.emit(0, len(keys) - 1)  # their keys are known: painted again
        else:  # the list changed meanwhile (an image was saved): listed again whole
            rows = GalleryRows(keys, len(keys))
            rows.take(self._rows.read.values())
            self._show(rows, self._source, fresh)
        if scan and hasattr(outputs, "update"):
            await self._update(root)

    async def _update(self, root: Path) -> None:
        """Bring the index up to date with the disk; list again if that found anything."""
        if self._outputs is not None and await asyncio.to_thread(self._outputs.update, root):
            self.refresh(scan=False)

    async def _when_built(self) -> None:
        """The first build of the index ended: the listed images get their model and prompt
        (for the tooltips) in place; the list itself is not reset under the user's scrolling."""
        outputs = self._outputs
        try:
            while outputs is not None and not await asyncio.to_thread(outputs.wait_built, 0.5):
                pass
        finally:
            self._awaiting_index = False
        if outputs is None:
            return  # only an index is built
        items = [i for i in self._rows.read.values() if not i.model and not i.prompt]
        known = await asyncio.to_thread(outputs.facts, [i.key for i in items])
        for item in items:
            fact = known.get(item.key)
            if fact is not None:
                item.model, item.prompt = fact.model, fact.prompt

    def _want(self, page: int) -> None:
        """Read the items of *page* in the background (the newest asked for first; a fast
        scroll's pages left behind are dropped, and asked for again if they come back)."""
        self._wanted[page] = None
        self._wanted.move_to_end(page)
        while len(self._wanted) > WANTED_PAGES:
            self._wanted.popitem(last=False)
        self._start_reading()

    def _start_reading(self) -> None:
        if self._wanted and not self._paging and not self._paused and not self._closed:
            self._paging = True
            self.tasks.spawn(self._read_pages(self._scans), name="gallery-page")

    def pause_reading(self, paused: bool, in_view: tuple[int, int] | None = None) -> None:
        """While the view is scrolled fast, the pages and thumbnails it passes wait (the last
        asked for are kept): reading them would hold the Qt thread up (the workers' Python
        competes with it); they are read when the scrolling pauses. Then, given the first
        and last row *in_view*, only the pages shown are read, from the top of the view."""
        if self._closed:
            return
        self._paused = paused
        if not paused and in_view is not None:
            first, last = (max(0, row) // self.page_size for row in in_view)
            self._wanted = OrderedDict((page, None) for page in range(last, first - 1, -1))
        # No cycle collection while the user drags: a full one is a 20-40 ms hitch at 100,000.
        if paused:
            self._collector.hold()
        else:
            self._collector.release()
        self._thumbs.pause(paused)
        self._start_reading()

    async def _read_pages(self, scan_number: int) -> None:
        size = self.page_size
        try:
            while self._wanted and scan_number == self._scans and not self._paused:
                page, _ = self._wanted.popitem()
                read = self._rows.read
                keys = [k for k in self._rows.keys[page * size:(page + 1) * size]
                        if k is not None and k not in read]
                if not keys:
                    continue
                items = await asyncio.to_thread(self._read_items, keys, self._source)
                if scan_number != self._scans:
                    return
                span = self._rows.take(items, self._pinned)
                if span is not None:
                    self.rows_read.emit(*span)
        finally:
            if scan_number == self._scans:
                self._paging = False

    def _pinned(self, key: str) -> bool:
        """An item kept read: shown large, new this session, or with a change on its way."""
        return key == self._opened or key in self._fresh or bool(self._in_flight.get(key))

    def add_record(self, record: ImageRecord) -> None:
        """A run saved an image: it goes first (a new image has no rating yet)."""
        path = Path(record.path)
        add = getattr(self._outputs, "add", None)
        if add is not None:
            self.tasks.spawn(asyncio.to_thread(add, path), name="gallery-index-add")
        if self._query is not None:
            return  # a search lists what matched when it ran; new images show when it is cleared
        config = getattr(record, "config", None)  # an ImageRecord's: prompt and model as run
        txt2img = getattr(config, "txt2img", None)
        item = GalleryItem(path, getattr(record, "created_at", 0.0) or 0.0,
                           Path(record.thumbnail) if record.thumbnail else None, fresh=True,
                           prompt=str(getattr(txt2img, "prompt", "") or ""),
                           model=str(getattr(txt2img, "checkpoint", "") or ""))
        if self._rows.row_of(item.key) >= 0:  # saved again: from its old place to the front
            self._rows.remove({item.key})
        self._rows.put_first(item)
        self._fresh.add(item.key)
        self.item_added.emit(item)

    # --- thumbnails and large view ------------------------------------------------------------

    def thumbnail(self, key: str) -> DecodedImage | None:
        """The cached thumbnail, or None after asking for it to be loaded in the background."""
        return self._thumbs.get(key)

    def set_thumbnail_side(self, side: int) -> None:
        """Thumbnails are fitted to a *side* square (the view's tile) off the Qt thread."""
        self._thumbs.side = side

    def open(self, key: str) -> None:
        """Decode the image large and read its parameters, then emit detail_ready."""
        if self._rows.row_of(key) >= 0:
            self._opened = key
            self.tasks.spawn(self._open(Path(key)), name="open-image")

    async def _open(self, path: Path) -> None:
        detail = await asyncio.to_thread(read_detail, path)
        self.detail_ready.emit(detail)

    # --- ratings ------------------------------------------------------------------------------

    def rate(self, key: str, stars: int | None) -> None:
        """1–5 stars, or None/0 to clear; stored off the Qt thread.

        The stars change at once; if the rating book refuses or fails to keep the rating, they go
        back to the stored value and `error_changed` says why and what to do.
        """
        item = self._rows.read.get(key)
        if item is None:
            return
        stars = stars if stars else None
        if stars is not None and not 1 <= stars <= 5:
            raise ValueError("A rating is 1 to 5 stars (0 clears it).")
        self._change(item, rating=stars)

    def rate_many(self, keys: list[str], stars: int | None) -> None:
        """The same stars for every image in *keys* (a multi-selection)."""
        if stars and not 1 <= stars <= 5:
            raise ValueError("A rating is 1 to 5 stars (0 clears it).")
        self._each_item(keys, lambda item: self.rate(item.key, stars))

    def tag_many(self, keys: list[str], tag: str) -> None:
        """Add *tag* to every image in *keys* that lacks it (never removes it from the others)."""
        tag = tag.strip()
        if tag:
            self._each_item(keys, lambda item: None if tag in item.tags
                            else self._change(item, tags=(*item.tags, tag)))

    def _each_item(self, keys: list[str], act: Callable[[GalleryItem], None]) -> None:
        """*act* on the item of each listed key; a selection reaching rows not read yet (a
        shift-click far down) has those read first, off the Qt thread."""
        missing = []
        for key in keys:
            item = self._rows.read.get(key)
            if item is not None:
                act(item)
            elif self._rows.row_of(key) >= 0:
                missing.append(key)
        if missing:
            self.tasks.spawn(self._read_then(missing, act), name="gallery-read-selection")

    async def _read_then(self, keys: list[str], act: Callable[[GalleryItem], None]) -> None:
        items = await asyncio.to_thread(self._read_items, keys, self._source)
        span = self._rows.take(items, lambda key: key in keys or self._pinned(key))
        if span is not None:
            self.rows_read.emit(*span)
        for key in keys:
            item = self._rows.read.get(key)
            if item is not None:
                act(item)

    def forget(self, keys: list[str]) -> None:
        """Images gone from the disk (trashed or moved by the app): out of the list now."""
        gone = {k for k in keys if self._rows.row_of(k) >= 0}
        if not gone:
            return
        self.items_resetting.emit()
        self._rows.remove(gone)
        self._fresh -= gone
        self.items_reset.emit()

    def toggle_tag(self, key: str, tag: str) -> None:
        item = self._rows.read.get(key)
        tag = tag.strip()
        if item is None or not tag:
            return
        tags = tuple(t for t in item.tags if t != tag) if tag in item.tags else (*item.tags, tag)
        self._change(item, tags=tags)

    def _change(self, item: GalleryItem, **value: _Shown) -> None:
        """Show the new rating or tags now, hand them to the book, and undo them if not kept."""
        (field_name, wanted), = value.items()
        before = getattr(item, field_name)
        setattr(item, field_name, wanted)
        self.item_changed.emit(item)
        seq = self._writes[item.key] = self._writes.get(item.key, 0) + 1
        try:
            if isinstance(wanted, tuple):
                outcome = self._ratings.set_tags(item.key, wanted)
            else:
                outcome = self._ratings.rate(item.key, wanted)
        except Exception as exc:  # noqa: BLE001 - a refusal at once (e.g. learning is Off)
            self._not_kept(item, field_name, before, seq, exc)
            return
        # The write reports when it is done, or why it was not kept.
        self._in_flight[item.key] = self._in_flight.get(item.key, 0) + 1
        self.tasks.spawn(self._confirm(item, field_name, before, seq, outcome),
                         name="confirm-rating")

    async def _confirm(self, item: GalleryItem, field_name: str, before: _Shown, seq: int,
                       outcome: WriteOutcome) -> None:
        try:
            await _settled(outcome)
        except Exception as exc:  # noqa: BLE001 - whatever the write raised is shown on the image as not kept
            self._not_kept(item, field_name, before, seq, exc)
        else:
            if self._writes.get(item.key) == seq:
                await self._remember(item)
        finally:
            left = self._in_flight.pop(item.key, 1) - 1
            if left:
                self._in_flight[item.key] = left

    def _not_kept(self, item: GalleryItem, field_name: str, before: _Shown, seq: int,
                  exc: BaseException) -> None:
        from stablenew.learning.errors import RecordNotFound

        if isinstance(exc, RecordNotFound) and hasattr(self._outputs, "remember"):
            # Another tool made it: learning cannot use it, but the user's stars and tags are
            # kept beside the image (its sidecar) and in the index.
            self.tasks.spawn(self._keep_beside(item, field_name, before, seq, exc),
                             name="remember-foreign")
            return
        info = error_from_exception(exc, "Gallery")
        log.warning("%s of %s not kept: %s", field_name, item.key, info.message)
        self._put_back(item, field_name, before, seq, info)

    def _put_back(self, item: GalleryItem, field_name: str, before: _Shown, seq: int,
                  info: ErrorInfo) -> None:
        """Undo a change that was not kept (unless a newer one replaced it) and say why."""
        if self._writes.get(item.key) == seq:
            setattr(item, field_name, before)
            self.item_changed.emit(item)
            # What the book really holds wins over what the list showed before.
            self.tasks.spawn(self._reload(item, seq), name="reload-rating")
        self.error_changed.emit(info)

    async def _keep_beside(self, item: GalleryItem, field_name: str, before: Any, seq: int,
                           exc: BaseException) -> None:
        if not await asyncio.to_thread(item.path.is_file):
            self._put_back(item, field_name, before, seq, error_from_exception(exc, "Gallery"))
            return
        if self._writes.get(item.key) == seq:
            await self._remember(item)

    async def _reload(self, item: GalleryItem, seq: int) -> None:
        stars, tags = await asyncio.to_thread(self._ratings.rating, item.key)
        if self._writes.get(item.key) == seq and (stars, tags) != (item.rating, item.tags):
            item.rating, item.tags = stars, tags
            self.item_changed.emit(item)

    async def _remember(self, item: GalleryItem) -> None:
        """A kept change also goes to the index's copy and the image's sidecar."""
        remember = getattr(self._outputs, "remember", None)
        if remember is not None:
            await asyncio.to_thread(remember, item.key, item.rating, item.tags)

    def rating_of(self, key: str) -> tuple[int | None, tuple[str, ...]]:
        """What the rating store holds for an image (not the cached list item)."""
        return self._ratings.rating(key)

    def report(self, info: ErrorInfo) -> None:
        self.error_changed.emit(info)

    @property
    def output_dir(self) -> Path:
        return Path(self._output_dir())

    async def aclose(self) -> None:
        self._closed = True  # a late paint or scroll asks for nothing more
        self._collector.release()
        self._thumbs.pause(True)
        await self.inspector.aclose()
        await self.watch.aclose()
        await self.actions.aclose()
        await self.tasks.aclose()
        close_outputs = getattr(self._outputs, "close", None)
        if close_outputs is not None:
            await asyncio.to_thread(close_outputs)
        close = getattr(self._ratings, "close", None)
        if close is not None:
            close()


__all__ = ["GalleryController", "GalleryItem", "ImageDetail", "RatingBook", "RatingsUnavailable",
           "StoredRatings", "THUMB_SIDE", "LARGE_SIDE", "PAGE_SIZE", "PRESET_TAGS", "_settled"]
