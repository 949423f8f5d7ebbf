"""TrendingController: the Trending room — CivitAI's top images and the LoRA combos you can run.

Fetching, reading the cache and resolving against the catalog run off the Qt thread (the
community room's `gather` uses worker threads for files and parsing); thumbnails arrive one
by one after the list. Opening the room shows the cached list with its age and sends
nothing: only Fetch asks the site. Using a combo goes through the cards' own config (the
pipeline controller's `current_config` / `load_config`); a batch is one queue job.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, Signal

from stablenew.catalog.entry import BaseModel
from stablenew.catalog.index import Catalog
from stablenew.community.cache import CommunityCache
from stablenew.community.client import ImageQuery, Period, Sort
from stablenew.community.combos import Combo, ComboFilter, VersionInfo, batch_items, combo_changes, pick
from stablenew.community.combos import ResolvedLora as ResolvedLora  # for the views
from stablenew.community.download import confirmation_text, download_lora
from stablenew.community.pool import Pool, gather, regroup
from stablenew.community.trending import TrendingSource
from stablenew.controller.errors import ErrorInfo
from stablenew.controller.tasks import TaskOwner

if TYPE_CHECKING:
    from stablenew.community.meta import CommunityImage
    from stablenew.controller.catalog_controller import CatalogController
    from stablenew.controller.queue_controller import PlanEntry
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.storage.settings import AppSettings


class AddPlan(Protocol):
    """How a batch is queued (the session's `queue_trending`): False when the queue is not open."""

    def __call__(self, items: Iterable[PlanEntry], *, name: str) -> bool: ...

log = logging.getLogger("stablenew.controller")

SORTS = [s.value for s in Sort]
PERIODS = [p.value for p in Period]
#: What the rating choice offers: its words and the browsing-level bits it allows.
RATINGS = [("Safe only", 1), ("Up to PG-13", 3), ("Up to R", 7), ("Everything", 31)]
#: CivitAI's own base-model labels the tab offers ("" first: any).
BASE_MODELS = ["", "SD 1.5", "SDXL 1.0", "Pony", "Illustrious", "Flux.1 D", "Flux.1 S"]
DEFAULT_COUNT = 100
NOTHING_YET = "Nothing fetched yet: press Fetch to ask CivitAI."


@dataclass(frozen=True)
class TrendingOptions:
    """The question the Trending tab asks and how it filters the answer."""

    sort: str = Sort.most_reactions.value
    period: str = Period.week.value
    count: int = DEFAULT_COUNT
    browsing_level: int = 1
    #: CivitAI base-model labels to ask for (empty: any).
    base_models: tuple[str, ...] = ()
    runnable_only: bool = True
    allow_nsfw_loras: bool = False
    #: Also take the image's sampler, steps, CFG, clip skip and size when using a combo.
    with_settings: bool = False
    #: Reroll draws weighted by reactions, comments and collections.
    by_engagement: bool = False

    def query(self) -> ImageQuery:
        return ImageQuery(Sort(self.sort), Period(self.period), self.browsing_level,
                          self.base_models, limit=min(self.count, 200))


class TrendingController(QObject):
    """Trending combos for the Trending tab: fetch, filter, use one, reroll, queue a batch."""

    combos_changed = Signal()
    status_changed = Signal(str)
    busy_changed = Signal(bool)
    error_changed = Signal(object)  # ErrorInfo | None
    message_changed = Signal(str)
    #: image id, path of its thumbnail on disk
    thumbnail_ready = Signal(int, str)
    #: the image id whose combo is now in the cards
    current_changed = Signal(int)
    #: a LoRA was downloaded (its path): the server must read its LoRA folder again
    lora_downloaded = Signal(str)

    def __init__(self, cache_dir: str | Path, settings: Callable[[], AppSettings],
                 parent: QObject | None = None, *,
                 catalog: Callable[[], CatalogController | None] | None = None,
                 packs_folder: Callable[[], Path] | None = None) -> None:
        super().__init__(parent)
        self._cache = CommunityCache(cache_dir)
        self._settings = settings
        self._catalog_controller = catalog or (lambda: None)
        self._packs_folder = packs_folder
        self._tasks = TaskOwner("Trending", self)
        self._tasks.error_raised.connect(self._set_error)
        self._tasks.busy_changed.connect(self.busy_changed)
        # Thumbnails trickle in after the list: they never make the room look busy (Fetch stays on).
        self._thumbnail_tasks = TaskOwner("Trending", self)
        self._options = TrendingOptions()
        self._pool: Pool | None = None
        self._status = NOTHING_YET
        self._thumbnails: dict[int, str] = {}
        self._current: int | None = None
        self._checkpoint_seen = BaseModel.unknown
        self._rng = random.Random()
        self._get_config: Callable[[], PipelineConfig] | None = None
        self._load_config: Callable[[PipelineConfig], None] | None = None
        self._add_plan: AddPlan | None = None

    # --- wiring ----------------------------------------------------------------------------

    def set_targets(self, get_config: Callable[[], PipelineConfig],
                    load_config: Callable[[PipelineConfig], None],
                    add_plan: AddPlan | None = None) -> None:
        """The cards' config and how to load one (the pipeline controller's), and how to queue."""
        self._get_config, self._load_config, self._add_plan = get_config, load_config, add_plan

    def set_queue(self, add_plan: AddPlan | None) -> None:
        self._add_plan = add_plan

    # --- state -----------------------------------------------------------------------------

    @property
    def options(self) -> TrendingOptions:
        return self._options

    def set_options(self, **changes: Any) -> None:
        """Change the question or the filter; a filter change re-filters at once (no network).

        Any: *changes* are TrendingOptions fields by name, which TrendingOptions checks."""
        old = self._options
        self._options = TrendingOptions(**{**old.__dict__, **changes})
        if self._pool is not None and self._rules(old) != self._rules(self._options):
            self.regroup()

    @property
    def status(self) -> str:
        return self._status

    @property
    def current(self) -> int | None:
        return self._current

    @property
    def base_url(self) -> str:
        return str(getattr(self._settings(), "civitai_url", "") or "https://civitai.com")

    def combos(self) -> list[Combo]:
        return list(self._pool.filtered.kept) if self._pool is not None else []

    def left_out(self) -> list[tuple[Combo, str]]:
        return list(self._pool.filtered.dropped) if self._pool is not None else []

    def find(self, image_id: int) -> Combo | None:
        return self._pool.find(image_id) if self._pool is not None else None

    def thumbnail(self, image_id: int) -> str | None:
        return self._thumbnails.get(image_id)

    # --- fetching ----------------------------------------------------------------------------

    def _source(self) -> TrendingSource:
        settings = self._settings()
        key = getattr(settings, "civitai_api_key", None)
        return TrendingSource(self._cache, self.base_url,
                              key.get_secret_value() if key is not None else "")

    def _catalog(self) -> tuple[Catalog, str]:
        controller = self._catalog_controller()
        if controller is None:
            return Catalog(), ""
        return controller.catalog, controller.current_node

    def _checkpoint(self) -> BaseModel:
        controller = self._catalog_controller()
        value = controller.current_checkpoint_base() if controller is not None else ""
        return BaseModel(value) if value else BaseModel.unknown

    def _rules(self, options: TrendingOptions | None = None) -> ComboFilter:
        o = options or self._options
        return ComboFilter(runnable_only=o.runnable_only, browsing_level=o.browsing_level,
                           allow_nsfw_loras=o.allow_nsfw_loras, checkpoint=self._checkpoint())

    def start(self) -> None:
        """Show the list stored last time, with its age; nothing is sent to the site."""
        self._tasks.spawn(self._show_cached(), name="trending-cached")

    async def _show_cached(self) -> None:
        import asyncio

        options = self._options
        source = self._source()
        result = await asyncio.to_thread(source.cached, options.query(), options.count)
        if result is None or self._pool is not None:
            self._set_status(self._status)
            return
        catalog, node = self._catalog()
        pool = await asyncio.to_thread(
            regroup, Pool(result, base_url=source.base_url), catalog, self._rules(), node=node)
        if self._pool is None:  # a Fetch pressed meanwhile has the newer answer
            self._take(pool, resolved_with=catalog)

    def fetch(self, *, refresh: bool = True, lookup: bool = False) -> None:
        """Ask CivitAI (or the fresh cache without *refresh*); offline, the stored list is used."""
        self.error_changed.emit(None)
        self._set_status("Asking CivitAI…")
        self._tasks.spawn(self._fetch(refresh, lookup), name="trending-fetch",
                          on_error=lambda info: self._set_status(self._pool_status()))

    async def _fetch(self, refresh: bool, lookup: bool) -> None:
        options = self._options
        catalog, node = self._catalog()
        pool = await gather(self._source(), options.query(), options.count, catalog, self._rules(),
                            node=node, refresh=refresh, lookup=lookup,
                            on_progress=lambda n: self._set_status(f"Asking CivitAI… {n} images so far"))
        self._take(pool, resolved_with=catalog)

    def regroup(self) -> None:
        """Resolve and filter the images again (the catalog, node, model or filter changed)."""
        if self._pool is None:
            return
        catalog, node = self._catalog()
        rules = self._rules()
        self._checkpoint_seen = rules.checkpoint
        self._take(regroup(self._pool, catalog, rules, node=node))

    def card_changed(self, path: str) -> None:
        """A card field changed: only a model of another family changes which combos fit."""
        if path in ("", "txt2img.checkpoint") and self._checkpoint() is not self._checkpoint_seen:
            self.regroup()

    def _take(self, pool: Pool, resolved_with: Catalog | None = None) -> None:
        self._pool = pool
        if resolved_with is not None and self._catalog()[0] is not resolved_with:
            # The catalog was read again while this was resolved off the Qt thread (its
            # "changed" came before there was a list to regroup): resolve against the new one.
            catalog, node = self._catalog()
            self._pool = pool = regroup(pool, catalog, self._rules(), node=node)
        self._set_status(self._pool_status())
        for problem in pool.problems:
            self.message_changed.emit(problem)
        self.combos_changed.emit()
        missing = [c.image for c in pool.filtered.kept if c.image.id not in self._thumbnails]
        if missing:
            self._thumbnail_tasks.spawn(self._load_thumbnails(missing), name="trending-thumbnails")

    def _pool_status(self) -> str:
        return self._pool.summary() if self._pool is not None else NOTHING_YET

    async def _load_thumbnails(self, images: list[CommunityImage]) -> None:
        source = self._source()
        async with source.client() as client:
            for image in images:
                path = await source.thumbnail(image.url, client)
                if path is not None:
                    self._thumbnails[image.id] = str(path)
                    self.thumbnail_ready.emit(image.id, str(path))

    # --- using combos ------------------------------------------------------------------------

    def use(self, image_id: int) -> bool:
        """Fill the cards with the combo: prompt, negative, LoRAs and weights (and the image's
        sampler, steps, CFG, clip skip and size when asked). False when it cannot be used."""
        combo = self.find(image_id)
        if combo is None or self._get_config is None or self._load_config is None:
            return False
        changes, skipped = combo_changes(combo, settings=self._options.with_settings)
        self._load_config(self._get_config().with_changes(changes))
        self._current = image_id
        self.current_changed.emit(image_id)
        loras = sum(1 for lora in combo.loras if lora.entry is not None)
        text = (f"The cards now hold CivitAI image {image_id}'s prompt with "
                f"{loras} LoRA{'s' if loras != 1 else ''}.")
        self.message_changed.emit(" ".join([text, *(s[0].upper() + s[1:] + "." for s in skipped)]))
        return True

    def reroll(self) -> bool:
        """Use another combo of the list, drawn at random (by engagement if chosen)."""
        combo = pick(self.combos(), self._rng, by_engagement=self._options.by_engagement, avoid=self._current)
        return combo is not None and self.use(combo.image.id)

    def queue_batch(self, image_ids: list[int] | None = None, count: int | None = None) -> bool:
        """Queue "N trending combos": the given images, else the first *count* of the list; each
        image keeps its source image id (`civitai:<id>`) in its record."""
        if self._add_plan is None or self._get_config is None:
            self._set_error(ErrorInfo("The queue is not open yet; try again in a moment.", source="Trending"))
            return False
        kept = self.combos()
        chosen = [c for c in kept if c.image.id in set(image_ids)] if image_ids else kept[:count or len(kept)]
        if not chosen:
            self.message_changed.emit("There is no combo to queue: fetch, or widen the filters.")
            return False
        items = batch_items(chosen, self._get_config(), settings=self._options.with_settings)
        name = f"{len(items)} trending combo{'s' if len(items) != 1 else ''}"
        if self._add_plan(items, name=name) is False:
            self._set_error(ErrorInfo("The queue is not open, so nothing was queued.", source="Trending"))
            return False
        self.message_changed.emit(f"Queued {name}.")
        return True

    def favourite(self, image_id: int) -> bool:
        """Keep the combo in the "Trending favourites" prompt pack (off the Qt thread)."""
        combo = self.find(image_id)
        if combo is None or self._packs_folder is None:
            return False
        self._tasks.spawn(self._favourite(combo, self._packs_folder()), name="trending-favourite")
        return True

    async def _favourite(self, combo: Combo, folder: Path) -> None:
        import asyncio

        from stablenew.community.favourites import FAVOURITES_NAME, save_favourite

        path, added = await asyncio.to_thread(save_favourite, combo, folder)
        log.info("trending: image %s %s %s", combo.image.id, "added to" if added else "already in", path)
        self.message_changed.emit(f"Image {combo.image.id} {'is now' if added else 'was already'} in your "
                                  f"\"{FAVOURITES_NAME}\" pack.")

    # --- missing LoRAs: look-ups and downloads ----------------------------------------------

    def lookup_missing(self) -> None:
        """Ask CivitAI about every LoRA not found here (name, base model, size, page)."""
        if self._pool is None:
            return
        self._set_status("Looking the missing LoRAs up on CivitAI…")
        self._tasks.spawn(self._lookup(self._pool), name="trending-lookup",
                          on_error=lambda info: self._set_status(self._pool_status()))

    async def _lookup(self, pool: Pool) -> None:
        from stablenew.community.pool import MAX_LOOKUPS
        from stablenew.community.trending import lookup_key

        wanted = {lookup_key(lora.ref): lora.ref for combo in pool.combos for lora in combo.loras
                  if lora.entry is None and lookup_key(lora.ref) and lookup_key(lora.ref) not in pool.infos}
        infos, problems = await self._source().lookup(list(wanted.values())[:MAX_LOOKUPS])
        pool.infos.update(infos)
        pool.problems = problems
        self.regroup()

    @property
    def downloads_allowed(self) -> bool:
        return bool(getattr(self._settings(), "civitai_downloads", False))

    def lora_folder(self) -> str | None:
        """Where a downloaded LoRA goes: the first LoRA folder of the catalog."""
        controller = self._catalog_controller()
        folders = [f for f, kind in controller.folders() if kind == "lora"] if controller is not None else []
        return folders[0] if folders else None

    def download_offers(self, image_id: int) -> list[tuple[VersionInfo, str]]:
        """The combo's missing LoRAs CivitAI offers for download, each with the sentence the
        user confirms (its size, the folder); empty when downloads are off or nowhere to go."""
        combo, folder = self.find(image_id), self.lora_folder()
        if combo is None or folder is None or not self.downloads_allowed:
            return []
        return [(lora.info, confirmation_text(lora.info, Path(folder))) for lora in combo.loras
                if lora.entry is None and lora.info is not None and lora.info.download_url]

    def download(self, info: VersionInfo) -> bool:
        """Download one LoRA the user confirmed; the catalog reads its folder again afterwards."""
        folder = self.lora_folder()
        if folder is None or not self.downloads_allowed:
            return False
        self._tasks.spawn(self._download(info, Path(folder)), name="trending-download",
                          on_error=lambda _info: self._set_status(self._pool_status()))
        return True

    async def _download(self, info: VersionInfo, folder: Path) -> None:
        def progress(done: int, total: int) -> None:
            share = f" ({done * 100 // total} %)" if total else ""
            self._set_status(f"Downloading {info.name}{share}…")

        async with self._source().client() as client:
            path = await download_lora(client, info, folder, progress=progress)
        self._set_status(self._pool_status())
        self.message_changed.emit(f"{info.name} is now in {path.parent} (its sha256 checked).")
        controller = self._catalog_controller()
        if controller is not None:
            controller.refresh()  # the new file joins the catalog; its combos regroup when it does
        self.lora_downloaded.emit(str(path))

    # --- errors and lifetime -----------------------------------------------------------------

    def _set_status(self, text: str) -> None:
        self._status = text
        self.status_changed.emit(text)

    def _set_error(self, info: ErrorInfo | None) -> None:
        self.error_changed.emit(info)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        await self._tasks.wait_idle(timeout)
        await self._thumbnail_tasks.wait_idle(timeout)

    async def aclose(self) -> None:
        await self._thumbnail_tasks.aclose()
        await self._tasks.aclose()
