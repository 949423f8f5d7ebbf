"""LibraryController: presets, prompt packs and profiles for the sidebar, file work off the Qt thread.
Its lists, the folder watch and the actions on any item live here; what is done with presets
and profiles is in `preset_actions` (PresetController), with packs in `pack_actions`
(PackController).

Public methods are synchronous and schedule private `_verb` coroutines on the TaskOwner, whose
file I/O runs in a worker thread (`asyncio.to_thread`); any failure becomes `error_changed`
state instead of a lost exception. The window wires two things: `set_current_config_provider`
(the cards' current PipelineConfig, for "save current as preset" and for applying) and the
`config_applied(PipelineConfig)` signal (the config the cards should load).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from stablenew.controller.app_controller import AppController
from stablenew.controller.errors import ErrorInfo
from stablenew.controller.library_items import (
    Gone,
    ItemKind,
    LibraryItem,
    folder_item,
    gone,
    pack_item,
)
from stablenew.controller.library_packs import PackController
from stablenew.controller.library_presets import PresetController
from stablenew.controller.tasks import TaskOwner
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.presets import (
    LibraryEntry,
    LibraryFolder,
    Preset,
    PresetStore,
    TrashTicket,
)
from stablenew.randomizer.packs import PackEntry, PackLibrary
from stablenew.randomizer.profiles import ProfileStore
from stablenew.storage.settings import AppSettings

if TYPE_CHECKING:
    from stablenew.randomizer.profiles import Profile
    from stablenew.storage.folders import Signature

log = logging.getLogger("stablenew.controller.library")

_R = TypeVar("_R")
#: A preset's or a profile's folder and entry, chosen by an ItemKind at run time; each folder
#: takes back only its own entries. Any: the item type follows a run-time value, which the
#: type checker cannot pair up across the two calls.
_Folder: TypeAlias = "LibraryFolder[Any]"
_Entry: TypeAlias = "LibraryEntry[Any]"

PACK_POLL_MS = 2000
#: Changes on disk come in bursts (an editor's save, a copy of many files): read once they settle.
WATCH_DELAY_MS = 200
#: Files watched one by one (for editors that write in place); a folder is always watched.
MAX_WATCHED_FILES = 500


class LibraryController(QObject):
    """State and operations of the library sidebar: presets, packs and profiles."""

    presets_changed = Signal()
    packs_changed = Signal()
    profiles_changed = Signal()
    config_applied = Signal(object)  # PipelineConfig the cards should load
    error_changed = Signal(object)  # ErrorInfo | None
    message_changed = Signal(str)  # plain confirmation ("Saved preset 'Night' …")
    folder_ready = Signal(str)  # a folder asked for by `make_folder`, made if it was missing
    undo_changed = Signal(str)  # text of what undo would bring back ("" when nothing)
    busy_changed = Signal(bool)

    def __init__(self, presets: PresetStore | None = None, packs: PackLibrary | None = None,
                 profiles: ProfileStore | None = None, parent: QObject | None = None, *,
                 poll_ms: int = PACK_POLL_MS, app: AppController | None = None) -> None:
        """*app* keeps the packs folder in the settings (the Session passes its own); without
        one the folder is read from the settings file and not kept."""
        super().__init__(parent)
        self._app = app
        if packs is None:
            packs = PackLibrary(self._app.settings.packs_path(self._app.paths)
                                if self._app is not None else None)
        self._presets = presets if presets is not None else PresetStore()
        self._packs = packs
        self._profiles = profiles if profiles is not None else ProfileStore()
        self._preset_entries: list[LibraryEntry[Preset]] = []
        self._profile_entries: list[LibraryEntry[Profile]] = []
        self._pack_entries: list[PackEntry] = []
        self._filter = ""
        self._error: ErrorInfo | None = None
        self._undo: list[tuple[ItemKind, TrashTicket]] = []
        self._config_provider: Callable[[], PipelineConfig] = PipelineConfig
        self.tasks = TaskOwner("Library", self)
        self.tasks.error_raised.connect(self._set_error)
        self.tasks.busy_changed.connect(self.busy_changed)
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(poll_ms)
        self._poll_timer.timeout.connect(self.poll_packs)
        self._polling = False
        # The folders are watched, so a file added, edited or broken in another program shows
        # at once; the packs poll above stays for disks that send no notifications.
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self._disk_changed)
        self._watcher.fileChanged.connect(self._disk_changed)
        self._watch_timer = QTimer(self)
        self._watch_timer.setSingleShot(True)
        self._watch_timer.setInterval(WATCH_DELAY_MS)
        self._watch_timer.timeout.connect(self._check_disk)
        self._signatures: dict[ItemKind, Signature] = {}
        self._writing = 0  # writes of ours under way
        if self._app is not None:
            self._app.settings_changed.connect(self._settings_changed)
        self.pack_actions = PackController(self)
        self.preset_actions = PresetController(self)

    # --- wiring -------------------------------------------------------------------------------

    def set_current_config_provider(self, provider: Callable[[], PipelineConfig]) -> None:
        """Where "save current as preset" and "apply" read the cards' current config."""
        self._config_provider = provider

    def start(self) -> None:
        """First read of every list, then watch the folders for changes."""
        self.refresh()
        self._poll_timer.start()
        self._spawn(self._watch(), "library-watch")
        self._spawn(self._tidy_trash(), "library-trash")

    async def _tidy_trash(self) -> None:
        # Deleted files stay undoable for a month across restarts, then the trash forgets them.
        for store in (self._presets, self._profiles):
            await asyncio.to_thread(store.empty_trash)

    # --- state --------------------------------------------------------------------------------

    @property
    def error(self) -> ErrorInfo | None:
        return self._error

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def packs_folder(self) -> Path:
        return self._packs.folder

    @property
    def presets_folder(self) -> Path:
        return self._presets.user_dir

    def presets(self) -> list[LibraryItem]:
        return [i for i in (folder_item(ItemKind.preset, e) for e in self._preset_entries)
                if i.matches(self._filter)]

    def profiles(self) -> list[LibraryItem]:
        return [i for i in (folder_item(ItemKind.profile, e) for e in self._profile_entries)
                if i.matches(self._filter)]

    def packs(self) -> list[LibraryItem]:
        return [i for i in (pack_item(e) for e in self._pack_entries) if i.matches(self._filter)]

    def has_any(self, kind: ItemKind) -> bool:
        """The folder holds at least one of *kind* (whatever the search filter shows)."""
        entries = {ItemKind.preset: self._preset_entries, ItemKind.profile: self._profile_entries,
                   ItemKind.pack: self._pack_entries}[kind]
        return bool(entries)

    def folder_of(self, kind: ItemKind) -> Path:
        return {ItemKind.preset: self._presets.user_dir, ItemKind.profile: self._profiles.user_dir,
                ItemKind.pack: self._packs.folder}[kind]

    def make_folder(self, kind: ItemKind | str) -> None:
        """Make the folder of *kind* if it is missing (off the Qt thread), then `folder_ready`."""
        folder = self.folder_of(ItemKind(kind))

        async def make() -> None:
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            self.folder_ready.emit(str(folder))
            await self._watch()  # a folder that was missing is watched itself from now on
        self._spawn(make(), "library-folder")

    def preset_names(self) -> list[str]:
        return [e.name for e in self._preset_entries if not e.broken]

    def undo_text(self) -> str:
        if not self._undo:
            return ""
        kind, ticket = self._undo[-1]
        return f"Undo delete of {kind.value} '{ticket.name}'"

    def set_filter(self, text: str) -> None:
        if text == self._filter:
            return
        self._filter = text
        self.presets_changed.emit()
        self.packs_changed.emit()
        self.profiles_changed.emit()

    def clear_error(self) -> None:
        self._set_error(None)

    def _set_error(self, info: ErrorInfo | None) -> None:
        self._error = info
        self.error_changed.emit(info)

    def _spawn(self, coro: Coroutine[object, object, object], name: str) -> None:
        self.tasks.spawn(coro, name=name)

    # --- reading ------------------------------------------------------------------------------

    def refresh(self) -> None:
        self._spawn(self._refresh_all(), "library-refresh")

    async def _refresh_all(self) -> None:
        await self._reload(ItemKind.preset)
        await self._reload(ItemKind.profile)
        await self._reload(ItemKind.pack)

    async def _reload(self, kind: ItemKind) -> None:
        if kind is ItemKind.pack:
            packs = self._packs
            scanned = await asyncio.to_thread(packs.scan)
            if packs is not self._packs:
                return  # the folder changed meanwhile: its own reload shows it
            self._pack_entries = scanned
            self.packs_changed.emit()
            self.pack_actions._packs_reloaded()
        else:
            store = self._store(kind)
            entries: list[_Entry]
            entries, self._signatures[kind] = await asyncio.to_thread(
                lambda: (store.entries(), store.signature()))
            if kind is ItemKind.preset:
                self._preset_entries = entries
                self.presets_changed.emit()
            else:
                self._profile_entries = entries
                self.profiles_changed.emit()

    # --- watching the folders -----------------------------------------------------------------

    def _folders(self) -> list[Path]:
        return [self._presets.user_dir, self._profiles.user_dir, self._packs.folder]

    async def _watch(self) -> None:
        """Watch each folder and its files; a folder not made yet is watched through the nearest
        one that exists, so its creation is seen too."""
        wanted = await asyncio.to_thread(_watch_paths, self._folders())
        current = set(self._watcher.directories()) | set(self._watcher.files())
        gone = [p for p in current if p not in wanted]
        new = [p for p in wanted if p not in current]
        if gone:
            self._watcher.removePaths(gone)
        if new:
            self._watcher.addPaths(new)

    def _disk_changed(self, _path: str) -> None:
        self._watch_timer.start()

    def _check_disk(self) -> None:
        if self._writing:
            self._watch_timer.start()  # our own write reloads what it changed; look again after
            return
        self._spawn(self._reread_changed(), "library-disk")

    async def _reread_changed(self) -> None:
        """Read again what changed on disk; a file that is broken now is said at once."""
        stores = {kind: self._store(kind) for kind in (ItemKind.preset, ItemKind.profile)}
        signatures = await asyncio.to_thread(
            lambda: {kind: store.signature() for kind, store in stores.items()})
        for kind, signature in signatures.items():
            if signature != self._signatures.get(kind):
                broken = {e.key for e in self._entries(kind) if e.broken}
                await self._reload(kind)
                self._say_newly_broken(kind, broken)
        self.poll_packs()
        await self._watch()  # new files and folders are watched from now on

    def _say_newly_broken(self, kind: ItemKind, before: set[str]) -> None:
        fresh = [e for e in self._entries(kind) if e.broken and e.key not in before]
        if fresh:
            entry = fresh[0]
            more = f" ({len(fresh) - 1} more)" if len(fresh) > 1 else ""
            self.message_changed.emit(f"The {kind.value} file {entry.path.name} cannot be used{more}: "
                                      f"{entry.error}")

    def poll_packs(self) -> None:
        """Look for changes in the packs folder (the timer calls this; cheap when nothing changed)."""
        if self._polling:
            return
        self._polling = True
        self._spawn(self._poll(), "library-poll")

    async def _poll(self) -> None:
        try:
            changed = await asyncio.to_thread(self._packs.poll)
            if changed:
                await self._reload(ItemKind.pack)
        finally:
            self._polling = False

    def set_packs_folder(self, folder: str | os.PathLike[str], *, remember: bool = True) -> None:
        """Read packs from *folder* from now on (and next start, when *remember*: it is kept in
        the settings, written off the Qt thread, whose change brings it back here)."""
        folder = Path(folder).expanduser()
        if remember and self._app is not None and folder != self._packs.folder:
            reason = self._app.apply_settings({"packs_dir": str(folder)})
            if not reason:
                return
            self._set_error(ErrorInfo(f"The packs folder could not be kept: {reason}", source="Library"))
        self._use_packs_folder(folder)

    def _settings_changed(self, settings: AppSettings) -> None:
        folder = settings.packs_path(self._app.paths)  # type: ignore[union-attr]
        if folder != self._packs.folder:
            self._use_packs_folder(folder)

    def _use_packs_folder(self, folder: Path) -> None:
        self._packs = PackLibrary(folder)
        self.pack_actions._packs_reloaded(folder_changed=True)
        self._spawn(self._show_packs_folder(folder), "library-packs-folder")
        self._spawn(self._watch(), "library-watch")

    async def _show_packs_folder(self, folder: Path) -> None:
        await self._reload(ItemKind.pack)
        self.message_changed.emit(f"Packs are read from {folder}.")

    # --- lookups ------------------------------------------------------------------------------

    def _store(self, kind: ItemKind) -> _Folder:
        return self._presets if kind is ItemKind.preset else self._profiles

    def _entries(self, kind: ItemKind) -> list[_Entry]:
        return self._preset_entries if kind is ItemKind.preset else self._profile_entries

    def _entry(self, kind: ItemKind, key: str) -> _Entry:
        for entry in self._entries(kind):
            if entry.key == key:
                return entry
        raise gone(kind)

    def _pack(self, key: str) -> PackEntry:
        for entry in self._pack_entries:
            if entry.key == key:
                return entry
        raise gone(ItemKind.pack)

    def _preset_named(self, name: str) -> Preset | None:
        for entry in self._preset_entries:
            if entry.name == name and entry.item is not None:
                return entry.item
        return None

    # --- writes and the actions on any item ------------------------------------------------------

    async def _write(self, kind: ItemKind, action: Callable[[], _R], message: str) -> _R:
        # The folder watch waits meanwhile: the list changes with this write's own message.
        self._writing += 1
        shown = self._error
        try:
            result = await asyncio.to_thread(action)
            if self._error is shown:  # a newer error (another action's, meanwhile) stays up
                self._set_error(None)
            await self._reload(kind)
        finally:
            self._writing -= 1
        self.message_changed.emit(message)
        return result

    def _find_usable(self, kind: ItemKind, key: str) -> _Entry | None:
        try:
            entry = self._entry(kind, key)
        except Gone as exc:
            self._set_error(ErrorInfo(exc.message, source="Library"))
            return None
        if entry.item is None:
            self._set_error(ErrorInfo(f"'{entry.name}' cannot be used: {entry.error}",
                                      detail=str(entry.error), source="Library"))
            return None
        return entry

    def rename(self, kind: ItemKind | str, key: str, new_name: str) -> None:
        kind = ItemKind(kind)
        self._spawn(self._on_entry(kind, key, lambda store, e: store.rename(e, new_name),
                                   f"Renamed to '{new_name.strip()}'."), "library-rename")

    def duplicate(self, kind: ItemKind | str, key: str, new_name: str | None = None) -> None:
        kind = ItemKind(kind)
        self._spawn(self._on_entry(kind, key, lambda store, e: store.duplicate(e, new_name),
                                   "Duplicated."), "library-duplicate")

    def delete(self, kind: ItemKind | str, key: str) -> None:
        kind = ItemKind(kind)
        self._spawn(self._delete(kind, key), "library-delete")

    async def _delete(self, kind: ItemKind, key: str) -> None:
        entry = self._entry(kind, key)
        ticket = await self._write(kind, lambda: self._store(kind).delete(entry),
                                   f"Deleted {kind.value} '{entry.name}'. Undo brings it back.")
        self._undo.append((kind, ticket))
        self.undo_changed.emit(self.undo_text())

    def undo_delete(self) -> None:
        if not self._undo:
            self.message_changed.emit("Nothing to undo.")
            return
        self._spawn(self._undo_last(), "library-undo")

    async def _undo_last(self) -> None:
        kind, ticket = self._undo[-1]
        await self._write(kind, lambda: self._store(kind).undo_delete(ticket),
                          f"Restored {kind.value} '{ticket.name}'.")
        self._undo.pop()
        self.undo_changed.emit(self.undo_text())

    async def _on_entry(self, kind: ItemKind, key: str,
                        action: Callable[[_Folder, _Entry], object], message: str) -> None:
        entry = self._entry(kind, key)
        store = self._store(kind)
        await self._write(kind, lambda: action(store, entry), message)

    def import_file(self, kind: ItemKind | str, path: str | os.PathLike[str], *,
                    replace: bool = False) -> None:
        kind = ItemKind(kind)
        source = Path(path)
        self._spawn(self._write(kind, lambda: self._store(kind).import_file(source, replace=replace),
                                f"Imported {source.name}."), "library-import")

    def export(self, kind: ItemKind | str, key: str, destination: str | os.PathLike[str]) -> None:
        kind = ItemKind(kind)
        target = Path(destination)
        self._spawn(self._on_entry(kind, key, lambda store, e: store.export(e, target),
                                   f"Exported to {target}."), "library-export")

    def stop(self) -> None:
        """Stop following the disk (the poll and the folder watch)."""
        self._poll_timer.stop()
        self._watch_timer.stop()
        self._watcher.blockSignals(True)

    async def aclose(self) -> None:
        self.stop()
        await self.tasks.wait_idle(timeout=5)

    async def wait_idle(self, timeout: float = 5.0) -> None:
        await self.tasks.wait_idle(timeout=timeout)


def _watch_paths(folders: list[Path]) -> set[str]:
    """The folders to watch (or their nearest existing parent) and the files in them."""
    paths: set[str] = set()
    files = 0
    for folder in folders:
        target = folder
        while not target.is_dir() and target.parent != target:
            target = target.parent
        paths.add(str(target))
        if target != folder:
            continue
        try:
            children = sorted(folder.iterdir())
        except OSError:
            continue
        for child in children:
            if child.name.startswith("."):
                continue  # our lock file and trash change with every save: not the user's
            if child.is_dir():
                paths.add(str(child))  # a folder pack
            elif files < MAX_WATCHED_FILES:
                paths.add(str(child))
                files += 1
    return paths


__all__ = ["ItemKind", "LibraryController", "LibraryItem"]
