"""CatalogController: the Models room — LoRAs and checkpoints read, hashed and watched off the Qt thread.

Scanning (headers, sidecars, the SQLite cache) and building the matcher run in a worker
thread (`asyncio.to_thread`); hashing runs on the catalog's own background thread and reports
each file back through a queued signal. A folder change restarts a quiet-period timer; when
the folder has been quiet for `quiet_ms` the catalog is read again (only changed files are).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from stablenew.catalog.cache import CatalogCache
from stablenew.catalog.entry import BaseModel, ModelEntry, ModelKind
from stablenew.catalog.hashes import HashWorker
from stablenew.catalog.index import Catalog, scan
from stablenew.catalog.match import LoraMatch, Matcher
from stablenew.catalog.prompt import DEFAULT_WEIGHT, insert_lora, lora_hashes_for_files
from stablenew.catalog.servers import ServerLora, merge_server_checkpoints, merge_server_loras
from stablenew.controller.catalog_runs import CatalogRuns
from stablenew.controller.errors import ErrorInfo
from stablenew.controller.tasks import TaskOwner

if TYPE_CHECKING:
    from stablenew.cluster.prompt_steps import CatalogView
    from stablenew.controller.app_controller import AppController
    from stablenew.pipeline.config import PipelineConfig

log = logging.getLogger("stablenew.controller")

#: How long a watched folder must stay quiet before it is read again (a copy of 50 LoRAs
#: fires hundreds of change events).
QUIET_MS = 2000

#: The settings behind "Add matching LoRAs" (the run step in stablenew.cluster.prompt_steps).
AUTO_FIELDS = ("lora_auto", "lora_auto_min", "lora_auto_max", "lora_auto_categories")


class CatalogController(QObject):
    """The LoRA and checkpoint catalog for the Models panel: folders, filters, add to prompt."""

    entries_changed = Signal()
    progress_changed = Signal(int, int)  # done, total while reading; 0, 0 when idle
    busy_changed = Signal(bool)
    error_changed = Signal(object)  # ErrorInfo | None
    message_changed = Signal(str)
    #: "Try this LoRA" (its display name) or a swatch batch ("3 LoRAs") is running.
    learning_run_started = Signal(str)
    #: The LoRAs the Models panel picks (its selection, else what its filter shows) as plain
    #: (name, weight) pairs: the randomizer's "LoRA from library" axis draws from them.
    library_loras_changed = Signal(list)
    auto_changed = Signal()  # "Add matching LoRAs" was changed (here or in Settings)
    #: From the scan's and the hash worker's threads; queued to the Qt thread.
    _progress = Signal(int, int)
    _hashed = Signal()

    def __init__(self, cache_path: str | os.PathLike[str], parent: QObject | None = None, *,
                 quiet_ms: int = QUIET_MS) -> None:
        super().__init__(parent)
        self._cache_path = Path(cache_path)
        self._cache: CatalogCache | None = None
        self._catalog = Catalog()
        self._matcher: Matcher | None = None
        self._folders: list[tuple[str, ModelKind]] = []
        self._hasher: HashWorker | None = None
        self._tasks = TaskOwner("Models", self)
        self._tasks.error_raised.connect(self._set_error)
        self._tasks.busy_changed.connect(self.busy_changed)
        self._current_node = ""
        #: What each node's server lists (its LoRAs with their metadata, its checkpoints):
        #: merged into every read of the folders, so a server's models show in Models even
        #: when no folder was added (the server on another PC, a new user's first start).
        self._server_lists: dict[str, tuple[list[ServerLora], tuple[str, ...]]] = {}
        self._again = False  # a change arrived while reading: read once more afterwards
        self._reading = False
        self._get_config: Callable[[], PipelineConfig] | None = None
        self._load_config: Callable[[PipelineConfig], None] | None = None
        #: "Try this LoRA" and the swatch batch: learning runs started from this room.
        self.runs = CatalogRuns(lambda: self._get_config, self.message_changed.emit,
                                self.learning_run_started.emit)
        self._app: AppController | None = None
        self._library_loras: list[tuple[str, float]] = []
        self._panel_chosen: tuple[ModelEntry, ...] = ()  # the entries the panel last showed or picked
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self._folder_changed)
        self._quiet = QTimer(self)
        self._quiet.setSingleShot(True)
        self._quiet.setInterval(quiet_ms)
        self._quiet.timeout.connect(self.refresh)
        self._hash_flush = QTimer(self)
        self._hash_flush.setSingleShot(True)
        self._hash_flush.setInterval(300)  # hashes arrive in bursts: repaint at a human rate
        self._hash_flush.timeout.connect(self.entries_changed)
        self._progress.connect(self.progress_changed)
        self._hashed.connect(self._hash_flush.start)

    # --- state -----------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    def folders(self) -> list[tuple[str, str]]:
        return [(f, k.value) for f, k in self._folders]

    @staticmethod
    def base_models() -> list[str]:
        return [b.value for b in BaseModel]

    def categories(self) -> list[str]:
        return self._catalog.categories()

    def tags(self, most: int = 40) -> list[str]:
        """The LoRAs' most common tags (their own, a sidecar's or training tags), for a filter."""
        return sorted(self._catalog.common_tags()[:most])

    def nodes_with(self, entry: ModelEntry) -> list[str]:
        """The nodes whose server lists this LoRA (as far as their lists are known)."""
        return self._catalog.nodes_with(entry)

    def filtered(self, text: str = "", base: str = "", category: str = "", *, favourites: bool = False,
                 node: str = "", kind: str = "lora", tag: str = "") -> list[ModelEntry]:
        """Entries whose name, triggers or tags contain *text*, of one family/category/tag if given."""
        needle = text.strip().lower()
        wanted_tag = tag.strip().lower()
        out = []
        for entry, haystack, tags in self._catalog.listing(ModelKind(kind)):
            if base and entry.base_model != base:  # a StrEnum: equal to its value
                continue
            if category and entry.category != category:
                continue
            if wanted_tag and wanted_tag not in tags:
                continue
            if favourites and not entry.favorite:
                continue
            if node and self._catalog.available_on(entry, node) is False:
                continue
            if needle and needle not in haystack:
                continue
            out.append(entry)
        return out

    def match_view(self) -> CatalogView | str:
        """The catalog and its matcher for the LoRA step of a run, or why there is none yet."""
        from stablenew.cluster.prompt_steps import CatalogView

        if self._matcher is None:
            return "the LoRA catalog is still being read; try again in a moment."
        return CatalogView(self._catalog, self._matcher)

    def lora_hashes_for(self, files: Sequence[str]) -> str:
        """A1111's `Lora hashes` for LoRA files a ComfyUI graph loaded ("" while none is hashed)."""
        return lora_hashes_for_files(files, self._catalog)

    def match(self, prompt: str, checkpoint: str = "") -> list[LoraMatch]:
        if self._matcher is None:
            return []
        return self._matcher.match(prompt, checkpoint=self._catalog.checkpoint_base(checkpoint))

    # --- folders and reading ---------------------------------------------------------------

    def start(self) -> None:
        """Open the cache and read the folders known from last time (all off the Qt thread)."""
        self.refresh()

    def add_folder(self, folder: str | os.PathLike[str], kind: str = "lora") -> None:
        path = str(Path(folder).resolve())
        entry = (path, ModelKind(kind))
        if entry not in self._folders:
            self._folders.append(entry)
        self.refresh()

    def refresh(self) -> None:
        if self._reading:
            self._again = True
            return
        self._reading = True
        self._tasks.spawn(self._refresh(), name="catalog-refresh", on_error=lambda _i: self._done_reading())

    def _done_reading(self) -> None:
        self._reading = False
        if self._again:
            self._again = False
            self.refresh()

    async def _refresh(self) -> None:
        if self._hasher is not None:
            await asyncio.to_thread(self._hasher.stop)
        folders = list(self._folders)
        catalog, matcher, cache, known, dirs = await asyncio.to_thread(
            self._read, folders, dict(self._server_lists))
        self._cache = cache
        for entry in known:
            if entry not in self._folders:
                self._folders.append(entry)
        for node, names in self._catalog.available.items():
            catalog.available[node] = names  # servers' lists outlive a re-read of the folders
        self._catalog, self._matcher = catalog, matcher
        self._watch(dirs)
        self._progress.emit(0, 0)
        self.entries_changed.emit()
        loras = len(catalog.loras)
        self.message_changed.emit(f"{loras} LoRA{'s' if loras != 1 else ''} and {len(catalog.checkpoints)} "
                                  f"checkpoint{'s' if len(catalog.checkpoints) != 1 else ''} in the catalog.")
        if catalog.problems:
            self._set_error(ErrorInfo(" ".join(catalog.problems), source="Models"))
        self._hasher = HashWorker(cache, on_result=lambda _r: self._hashed.emit())
        self._hasher.start(catalog.entries)
        self._done_reading()

    def _read(self, folders: list[tuple[str, ModelKind]],
              servers: dict[str, tuple[list[ServerLora], tuple[str, ...]]]
              ) -> tuple[Catalog, Matcher, CatalogCache, list[tuple[str, ModelKind]], list[str]]:
        cache = self._cache or CatalogCache(self._cache_path)
        known = [(r, ModelKind(k)) for r, k in cache.roots()]
        every = list(dict.fromkeys(folders + known))
        catalog = scan(every, cache, progress=lambda d, t: self._progress.emit(d, t))
        for node, (loras, checkpoints) in servers.items():  # what the folders lack
            merge_server_loras(catalog, node, loras)
            merge_server_checkpoints(catalog, node, checkpoints)
        dirs = []
        for root, _kind in every:
            for here, subdirs, _files in os.walk(root):
                subdirs[:] = [d for d in subdirs if not d.startswith(".")]
                dirs.append(here)
        # Counted and sorted here, off the Qt thread (the Models panel asks at each change).
        catalog.common_tags()
        catalog.categories()
        for kind in ModelKind:
            catalog.listing(kind)
        return catalog, Matcher(catalog.entries), cache, known, dirs

    def _watch(self, dirs: list[str]) -> None:
        old = set(self._watcher.directories())
        new = set(dirs)
        if old - new:
            self._watcher.removePaths(sorted(old - new))
        if new - old:
            self._watcher.addPaths(sorted(new - old))

    def _folder_changed(self, _path: str) -> None:
        self._quiet.start()  # restarts: reading waits until the folder has been quiet

    def list_server(self, node: str, url: str, kind: str, checkpoints: tuple[str, ...] = (), *,
                    auth: tuple[str, str] | None = None) -> None:
        """Read the LoRA list of *node*'s server (A1111's carries each file's metadata: trigger
        words, base model, training tags) off the Qt thread, and show its LoRAs and
        *checkpoints* in Models beside the folders' (a folder's file wins over the server's)."""
        self._tasks.spawn(self._list_server(node, url, kind, tuple(checkpoints), auth),
                          name="server models")

    async def _list_server(self, node: str, url: str, kind: str, checkpoints: tuple[str, ...],
                           auth: tuple[str, str] | None) -> None:
        from stablenew.backends.errors import BackendError
        from stablenew.backends.http import HttpClient
        from stablenew.catalog.servers import a1111_loras, comfyui_loras

        http = HttpClient(url, auth=auth, node=node)
        try:
            loras = await (comfyui_loras(http) if kind == "comfyui" else a1111_loras(http))
        except BackendError as exc:
            # Its checkpoints still show; its LoRA names still mark where a LoRA is available.
            log.info("models: %s did not list its LoRAs: %s (%s)", node, exc.message, exc.detail)
            loras = []
        finally:
            await http.aclose()
        known = self._server_lists.get(node)
        if known is not None and known[1] == checkpoints and [i.name for i in known[0]] == [
                i.name for i in loras]:
            return  # a reconnect to the same server: nothing new to read
        self._server_lists[node] = (loras, checkpoints)
        self.refresh()  # the folders' read is cached: only the merge is new

    def set_node_loras(self, node: str, names: list[str] | tuple[str, ...]) -> None:
        """The LoRAs a node's server lists (from its probe): marks them available there."""
        before = self._catalog.available.get(node)
        self._catalog.mark_available(node, names)
        if self._catalog.available.get(node) != before:  # node checks repeat the same list
            self.entries_changed.emit()

    @property
    def current_node(self) -> str:
        """The node the window's Run goes to ("" before its server has answered)."""
        return self._current_node

    def set_current_node(self, node: str) -> None:
        self._current_node = node
        self.entries_changed.emit()

    # --- the prompt ------------------------------------------------------------------------

    def set_prompt_target(self, get_config: Callable[[], PipelineConfig],
                          load_config: Callable[[PipelineConfig], None]) -> None:
        """The cards' current config and how to load a changed one (the pipeline controller's)."""
        self._get_config, self._load_config = get_config, load_config

    def current_checkpoint_base(self) -> str:
        config = self._get_config() if self._get_config else None
        name = getattr(getattr(config, "txt2img", None), "checkpoint", "") or ""
        return self._catalog.checkpoint_base(name).value if name else ""

    def add_to_prompt(self, entry: ModelEntry, weight: float | None = None,
                      triggers: list[str] | None = None) -> bool:
        """Add `<lora:name:weight>` and the ticked trigger words to the Text-to-image prompt."""
        if self._get_config is None or self._load_config is None:
            return False
        config = self._get_config()
        prompt = insert_lora(config.txt2img.prompt, entry, weight, triggers)
        txt2img = config.txt2img.model_copy(update={"prompt": prompt})
        self._load_config(config.model_copy(update={"txt2img": txt2img}))
        self.message_changed.emit(f"Added {entry.display_name} to the prompt.")
        return True

    # --- "Add matching LoRAs" (a run step; the choice lives in the app settings) ------------

    def use_app_settings(self, app: AppController) -> None:
        """Where "Add matching LoRAs" and its counts are kept (the app's settings)."""
        self._app = app
        app.settings_changed.connect(lambda _settings: self.auto_changed.emit())
        self.auto_changed.emit()

    def auto_values(self) -> dict[str, bool | int | str] | None:
        """The settings' `lora_auto*` values (None before the app's settings are known)."""
        if self._app is None:
            return None
        return {name: getattr(self._app.settings, name) for name in AUTO_FIELDS}

    def set_auto_values(self, **values: bool | int | str) -> bool:
        """Change "Add matching LoRAs" settings (saved at once); False with a message when refused."""
        if self._app is None:
            return False
        reason = self._app.apply_settings({k: v for k, v in values.items() if k in AUTO_FIELDS})
        if reason:
            self.message_changed.emit(reason)
            return False
        return True

    def use_checkpoint(self, entry: ModelEntry) -> bool:
        """Make *entry* the Text-to-image model (the name as the server lists it; a folder's
        file by its file name, which A1111 and ComfyUI both find)."""
        if self._get_config is None or self._load_config is None:
            return False
        name = entry.path if entry.origin else Path(entry.path).name
        config = self._get_config()
        txt2img = config.txt2img.model_copy(update={"checkpoint": name})
        self._load_config(config.model_copy(update={"txt2img": txt2img}))
        self.message_changed.emit(f"Text to image now uses {entry.display_name}.")
        return True

    # --- the panel's pick, for the randomizer -------------------------------------------------

    def set_panel_choice(self, selected: Sequence[ModelEntry], shown: Sequence[ModelEntry]) -> None:
        """What the Models panel picks: its selected LoRAs, or every one its filter shows when
        none is selected. Each at its preferred weight (1 when it has none)."""
        chosen = tuple(selected or shown)
        last = self._panel_chosen
        if len(chosen) == len(last) and all(a is b for a, b in zip(chosen, last, strict=True)):
            return  # the panel filled again with the same entries (hashes arrived, say)
        self._panel_chosen = chosen
        loras = [(e.name, e.weight or DEFAULT_WEIGHT) for e in chosen if e.kind is ModelKind.lora]
        if loras != self._library_loras:
            self._library_loras = loras
            self.library_loras_changed.emit(list(loras))

    def library_loras(self) -> list[tuple[str, float]]:
        return list(self._library_loras)

    # --- errors and lifetime ---------------------------------------------------------------

    def _set_error(self, info: ErrorInfo | None) -> None:
        self.error_changed.emit(info)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        await self._tasks.wait_idle(timeout)

    def wait_hashed(self, timeout: float = 10.0) -> bool:
        """Tests: block until the hash worker is done (never called on a live window)."""
        return self._hasher.wait(timeout) if self._hasher is not None else True

    async def aclose(self) -> None:
        self._quiet.stop()
        await self._tasks.aclose()
        if self._hasher is not None:
            await asyncio.to_thread(self._hasher.stop)
        if self._cache is not None:
            await asyncio.to_thread(self._cache.close)
            self._cache = None
