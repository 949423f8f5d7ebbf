"""GalleryController: outputs newest first, a page at a time; thumbnails and large views decoded off the
Qt thread; ratings and tags, read from and written to the learning store."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from PySide6.QtCore import QObject, Signal

from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.gallery_ratings import (
    RatingBook,
    RatingsUnavailable,
    StoredRatings,
    WriteOutcome,
)
from stablenew.controller.gallery_reading import (
    LARGE_SIDE,
    THUMB_SIDE,
    GalleryItem,
    ImageDetail,
    decode_thumbnail,
    items_with_ratings,
    read_detail,
    scan_outputs,
)
from stablenew.controller.images import DecodedImage
from stablenew.controller.tasks import TaskOwner
from stablenew.pipeline.outputs import thumbnail_path

if TYPE_CHECKING:
    from stablenew.controller.gallery_actions import GalleryActions
    from stablenew.controller.gallery_index import IndexedOutputs
    from stablenew.gallery.query import GalleryQuery, GalleryRow
    from stablenew.learning.records import LearningRecord
    from stablenew.pipeline.records import ImageRecord

log = logging.getLogger("stablenew.controller.gallery")

PAGE_SIZE = 600  # images listed per page; the next page loads when the view nears the end
PRESET_TAGS = ("too noisy", "too smooth", "nailed it")


#: What a rating or tag change shows on an item: its stars (None: unrated) or its tags.
_Shown: TypeAlias = "int | tuple[str, ...] | None"


class GalleryController(QObject):
    """The list of outputs and everything done to one of them (view large, rate, tag, reuse)."""

    items_resetting = Signal()  # the list is about to be replaced (views keep their place)
    items_reset = Signal()
    item_added = Signal(object)  # GalleryItem, inserted first
    items_appended = Signal(int)  # how many older items were added at the end (a further page)
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
        self._items: list[GalleryItem] = []
        self._by_key: dict[str, GalleryItem] = {}
        self._thumbs: OrderedDict[str, DecodedImage] = OrderedDict()
        self._thumb_requests: set[str] = set()
        self._thumb_sem: asyncio.Semaphore | None = None
        self._writes: dict[str, int] = {}  # key → number of its latest rating/tag change
        self._in_flight: dict[str, int] = {}  # key → its rating/tag writes not yet confirmed
        # Older outputs the last scan found, newest first, not listed yet (read a page at a time).
        self._later: list[tuple[Path, float, Path | None]] = []
        self._later_keys: set[str] = set()
        self._scans = 0  # a page from an older scan is dropped
        self._paging = False
        self.page_size = PAGE_SIZE
        # A search, filter or order other than newest first: the list is the index's answer,
        # a page at a time, and `_query_total` how many match.
        self._query: GalleryQuery | None = None
        self._query_total = 0
        self._awaiting_index = False
        self.tasks = TaskOwner("Gallery", self)
        self.tasks.error_raised.connect(self.error_changed)
        from stablenew.controller.gallery_actions import GalleryActions

        self.actions: GalleryActions = GalleryActions(self, self._outputs)
        from stablenew.controller.gallery_watch import GalleryWatch

        self.watch = GalleryWatch(self, self._outputs)
        from stablenew.controller.gallery_inspector import GalleryInspector

        self.inspector = GalleryInspector(self)

    # --- list ---------------------------------------------------------------------------------

    @property
    def items(self) -> list[GalleryItem]:
        return self._items

    def item(self, key: str) -> GalleryItem | None:
        return self._by_key.get(key)

    def show_record(self, record: LearningRecord) -> None:
        """A learning record changed elsewhere (the learning grid rated it): its stars and tags
        show here too. Ignored while a change made here is on its way to the store."""
        item = self._by_key.get(str(record.path))
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
        try:
            data = json.loads(await asyncio.to_thread(file.read_text, encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("old ratings file %s unreadable (%s); left as it is", file, exc)
            return
        refused: dict[str, dict[str, object]] = {}  # JSON, as the old file held it
        for path, entry in data.items() if isinstance(data, dict) else ():
            for field_name, value in (("stars", entry.get("stars")), ("tags", entry.get("tags"))):
                if not value:
                    continue
                try:
                    if field_name == "stars":
                        await _settled(self._ratings.rate(path, value))
                    else:
                        await _settled(self._ratings.set_tags(path, tuple(value)))
                except Exception as exc:  # noqa: BLE001 - an old rating the store refuses is kept in the file, logged
                    log.info("old rating %s of %s not taken: %s", field_name, path, exc)
                    refused.setdefault(path, {})[field_name] = value
        from stablenew.storage.atomic import atomic_write_text

        if refused:
            text = json.dumps(refused, indent=1, ensure_ascii=False)
            await asyncio.to_thread(atomic_write_text, file, text)
        else:
            await asyncio.to_thread(file.unlink, missing_ok=True)
        log.info("old ratings file handed to the learning store (%d left in it)", len(refused))
        self.refresh()

    @property
    def has_more(self) -> bool:
        """The last scan found older outputs than those listed (or more matches of a search)."""
        if self._query is not None:
            return len(self._items) < self._query_total
        return bool(self._later)

    @property
    def total(self) -> int:
        """Outputs listed plus those found but not listed yet."""
        if self._query is not None:
            return self._query_total
        return len(self._items) + len(self._later)

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
        self.refresh()

    def _listed(self, rows: list[GalleryRow]) -> list[GalleryItem]:
        return [GalleryItem(r.path, r.mtime, thumbnail_path(r.path), rating=r.rating,
                            tags=r.tags, model=r.model, prompt=r.prompt) for r in rows]

    def _with_facts(self, items: list[GalleryItem]) -> list[GalleryItem]:
        """Model and prompt from the index, for the tooltip (worker thread). An image the
        learning store does not know by this path (another tool made it, or it was moved)
        shows the marks the index keeps for it (from its sidecar, or followed by its hash)."""
        facts = getattr(self._outputs, "facts", None)
        if facts is not None and items:
            known = facts([i.key for i in items])
            for item in items:
                fact = known.get(item.key)
                if fact is None:
                    item.model = item.prompt = ""
                    continue
                item.model, item.prompt = fact.model, fact.prompt
                if item.rating is None and not item.tags:
                    item.rating, item.tags = fact.rating, fact.tags
        return items

    def refresh(self) -> None:
        """Re-read the output folder in a worker thread and list its newest page."""
        self.tasks.spawn(self._scan(), name="scan-outputs")

    async def _scan(self) -> None:
        root = Path(self._output_dir())
        ratings = self._ratings
        # As many as are listed now, so the place the user scrolled to is still listed.
        size = max(self.page_size, len(self._items))
        self._scans += 1
        scan_number = self._scans
        query, outputs = self._query, self._outputs
        if query is not None and outputs is not None:  # a search is only set with the index
            rows, total = await asyncio.to_thread(outputs.query, root, query, 0, size)
            if scan_number != self._scans:
                return
            self.items_resetting.emit()
            self._items = self._listed(rows)
            self._by_key = {i.key: i for i in self._items}
            self._later, self._later_keys = [], set()
            self._query_total = total
            self._paging = False
            self.items_reset.emit()
            return

        def scan() -> tuple[list[tuple[Path, float, Path | None]], list[GalleryItem], bool]:
            found = self._outputs(root) if self._outputs is not None else None
            walked = found is None and hasattr(self._outputs, "wait_built")
            if found is None:
                found = scan_outputs(root)
            return (found[size:], self._with_facts(items_with_ratings(found[:size], ratings)),
                    walked)

        later, items, walked = await asyncio.to_thread(scan)
        self.watch.watch(root)
        if walked and not self._awaiting_index:  # the index was being built: facts come later
            self._awaiting_index = True
            self.tasks.spawn(self._when_built(), name="gallery-index-built")
        if scan_number != self._scans:
            return  # a newer scan is on its way
        # A rating or tag on its way to the store was read as it was before: show the new one.
        for item in items:
            shown = self._by_key.get(item.key)
            if shown is not None and self._in_flight.get(item.key):
                item.rating, item.tags = shown.rating, shown.tags
        # Images saved while scanning stay in front.
        fresh = [i for i in self._items if i.fresh]
        keys = {i.key for i in fresh}
        self.items_resetting.emit()
        self._items = fresh + [i for i in items if i.key not in keys]
        self._by_key = {i.key: i for i in self._items}
        self._later = [f for f in later if str(f[0]) not in self._by_key]
        self._later_keys = {str(f[0]) for f in self._later}
        self._paging = False  # a page of the previous scan still loading is dropped on arrival
        self.items_reset.emit()

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
        items = [i for i in self._items if not i.model and not i.prompt]
        known = await asyncio.to_thread(outputs.facts, [i.key for i in items])
        for item in items:
            fact = known.get(item.key)
            if fact is not None:
                item.model, item.prompt = fact.model, fact.prompt

    def load_more(self) -> None:
        """List the next (older) page of the last scan, read off the Qt thread; no-op while one
        is loading or when everything is listed."""
        if self._paging or not self.has_more:
            return
        self._paging = True
        self.tasks.spawn(self._load_page(self._scans), name="gallery-page")

    async def _read_page(self) -> tuple[list[GalleryItem], int]:
        """The next page's items, and how many entries of `_later` they came from."""
        query, outputs = self._query, self._outputs
        if query is not None and outputs is not None:  # a search is only set with the index
            rows, self._query_total = await asyncio.to_thread(
                outputs.query, Path(self._output_dir()), query, len(self._items),
                self.page_size)
            return self._listed(rows), 0
        page = self._later[:self.page_size]
        items = await asyncio.to_thread(
            lambda: self._with_facts(items_with_ratings(page, self._ratings)))
        return items, len(page)

    async def _load_page(self, scan_number: int) -> None:
        try:
            items, used = await self._read_page()
        finally:
            if scan_number == self._scans:
                self._paging = False
        if scan_number != self._scans:
            return
        self._later_keys.difference_update(str(f[0]) for f in self._later[:used])
        del self._later[:used]
        added = [i for i in items if i.key not in self._by_key]
        self._items.extend(added)
        self._by_key.update((i.key, i) for i in added)
        self.items_appended.emit(len(added))

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
        if item.key in self._by_key:
            self._items = [i for i in self._items if i.key != item.key]
        if item.key in self._later_keys:  # an older page would list it a second time
            self._later_keys.discard(item.key)
            self._later = [f for f in self._later if str(f[0]) != item.key]
        self._items.insert(0, item)
        self._by_key[item.key] = item
        self.item_added.emit(item)

    # --- thumbnails and large view ------------------------------------------------------------

    def thumbnail(self, key: str) -> DecodedImage | None:
        """The cached thumbnail, or None after asking for it to be loaded in the background."""
        image = self._thumbs.get(key)
        if image is not None:
            self._thumbs.move_to_end(key)
            return image
        if key not in self._thumb_requests and key in self._by_key:
            self._thumb_requests.add(key)
            self.tasks.spawn(self._load_thumb(self._by_key[key]), name="thumbnail")
        return None

    async def _load_thumb(self, item: GalleryItem) -> None:
        if self._thumb_sem is None:
            self._thumb_sem = asyncio.Semaphore(2)
        try:
            async with self._thumb_sem:
                image = await asyncio.to_thread(decode_thumbnail, item)
        except (OSError, ValueError) as exc:
            log.info("no thumbnail for %s: %s", item.path, exc)
            return
        finally:
            self._thumb_requests.discard(item.key)
        self._thumbs[item.key] = image
        while len(self._thumbs) > 800:
            self._thumbs.popitem(last=False)
        self.thumbnail_ready.emit(item.key, image)

    def open(self, key: str) -> None:
        """Decode the image large and read its parameters, then emit detail_ready."""
        item = self._by_key.get(key)
        if item is not None:
            self.tasks.spawn(self._open(item), name="open-image")

    async def _open(self, item: GalleryItem) -> None:
        detail = await asyncio.to_thread(read_detail, item.path)
        self.detail_ready.emit(detail)

    # --- ratings ------------------------------------------------------------------------------

    def rate(self, key: str, stars: int | None) -> None:
        """1–5 stars, or None/0 to clear; stored off the Qt thread.

        The stars change at once; if the rating book refuses or fails to keep the rating, they go
        back to the stored value and `error_changed` says why and what to do.
        """
        item = self._by_key.get(key)
        if item is None:
            return
        stars = stars if stars else None
        if stars is not None and not 1 <= stars <= 5:
            raise ValueError("A rating is 1 to 5 stars (0 clears it).")
        self._change(item, rating=stars)

    def rate_many(self, keys: list[str], stars: int | None) -> None:
        """The same stars for every image in *keys* (a multi-selection)."""
        for key in keys:
            self.rate(key, stars)

    def tag_many(self, keys: list[str], tag: str) -> None:
        """Add *tag* to every image in *keys* that lacks it (never removes it from the others)."""
        tag = tag.strip()
        for key in keys:
            item = self._by_key.get(key)
            if item is not None and tag and tag not in item.tags:
                self._change(item, tags=(*item.tags, tag))

    def forget(self, keys: list[str]) -> None:
        """Images gone from the disk (trashed or moved by the app): out of the list now."""
        gone = set(keys)
        if not gone & self._by_key.keys():
            return
        self.items_resetting.emit()
        self._items = [i for i in self._items if i.key not in gone]
        self._by_key = {i.key: i for i in self._items}
        if self._query is not None:
            self._query_total = max(len(self._items), self._query_total - len(gone))
        self.items_reset.emit()

    def toggle_tag(self, key: str, tag: str) -> None:
        item = self._by_key.get(key)
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


async def _settled(outcome: WriteOutcome | Exception) -> None:
    """Wait for a rating book's write (a Future, an awaitable or None); raises why it failed."""
    if isinstance(outcome, Exception):
        raise outcome
    if isinstance(outcome, Future):
        await asyncio.wrap_future(outcome)
    elif inspect.isawaitable(outcome):
        await outcome


__all__ = ["GalleryController", "GalleryItem", "ImageDetail", "RatingBook", "RatingsUnavailable",
           "StoredRatings", "THUMB_SIDE", "LARGE_SIDE", "PAGE_SIZE", "PRESET_TAGS", "_settled"]
