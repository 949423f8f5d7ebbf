"""LibraryController: presets, prompt packs and profiles for the sidebar, file work off the Qt thread.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from stablenew.controller.app_controller import AppController
from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.tasks import TaskOwner
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.library_folder import file_stem
from stablenew.pipeline.presets import (
    LibraryEntry,
    LibraryError,
    LibraryFolder,
    Preset,
    PresetStore,
    TrashTicket,
    name_warnings,
)
from stablenew.pipeline.styles import read_styles_csv
from stablenew.randomizer.packs import (
    PackEntry,
    PackLibrary,
    PackRunItem,
    pack_configs,
    pack_plan_for,
    plan_pack,
)
from stablenew.randomizer.profiles import ProfileStore, RandomizerBias, profile_form, profile_from_form
from stablenew.storage.atomic import atomic_write_text
from stablenew.storage.settings import AppSettings

log = logging.getLogger("stablenew.controller.library")

PACK_POLL_MS = 2000
#: Changes on disk come in bursts (an editor's save, a copy of many files): read once they settle.
WATCH_DELAY_MS = 200
#: Files watched one by one (for editors that write in place); a folder is always watched.
MAX_WATCHED_FILES = 500


class ItemKind(StrEnum):
    preset = "preset"
    pack = "pack"
    profile = "profile"


@dataclass(frozen=True)
class LibraryItem:
    """One row of a sidebar list, in plain values the view shows as they are."""

    key: str
    kind: ItemKind
    name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    source: str = "user"  # "shipped" rows are read-only
    broken: bool = False
    problem: str = ""  # why a broken row cannot be used, or its warnings (tooltip text)
    detail: str = ""  # e.g. "12 prompts · default preset SDXL quality"
    default_preset: str = ""

    @property
    def read_only(self) -> bool:
        return self.source == "shipped"

    def matches(self, text: str) -> bool:
        needle = text.casefold().strip()
        if not needle:
            return True
        haystack = " ".join((self.name, self.description, " ".join(self.tags), self.detail)).casefold()
        return all(word in haystack for word in needle.split())


def _folder_item(kind: ItemKind, entry: LibraryEntry[Any]) -> LibraryItem:
    item = entry.item
    problem = str(entry.error) if entry.error is not None else "\n".join(
        f"Warning: {w.message} (line {w.line}, {w.field})" if w.line else f"Warning: {w.message}"
        for w in entry.warnings)
    return LibraryItem(
        key=entry.key, kind=kind, name=entry.name,
        description=getattr(item, "description", "") if item is not None else "",
        tags=tuple(getattr(item, "tags", ()) or ()) if item is not None else (),
        source=entry.source.value, broken=entry.broken, problem=problem)


def _pack_item(entry: PackEntry) -> LibraryItem:
    if entry.pack is None:
        return LibraryItem(key=entry.key, kind=ItemKind.pack, name=entry.name, broken=True,
                           problem=str(entry.error))
    count = len(entry.pack.prompts)
    detail = f"{count} prompt{'s' if count != 1 else ''}"
    if entry.default_preset:
        detail += f" · default preset {entry.default_preset}"
    return LibraryItem(key=entry.key, kind=ItemKind.pack, name=entry.name,
                       description=entry.pack.description, tags=tuple(entry.pack.tags), detail=detail,
                       default_preset=entry.default_preset or "")


class LibraryController(QObject):
    """State and operations of the library sidebar: presets, packs and profiles."""

    presets_changed = Signal()
    packs_changed = Signal()
    profiles_changed = Signal()
    pack_prompts_changed = Signal(object)  # list[tuple[str, str]] of the selected pack
    config_applied = Signal(object)  # PipelineConfig the cards should load
    pack_run_requested = Signal(object)  # plan provider: PipelineConfig -> iterable of PackRunItem
    bias_changed = Signal(object)  # RandomizerBias of the applied profile (empty: none)
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
        self._profile_entries: list[LibraryEntry[Any]] = []
        self._pack_entries: list[PackEntry] = []
        self._filter = ""
        self._error: ErrorInfo | None = None
        self._undo: list[tuple[ItemKind, TrashTicket]] = []
        self._selected_pack: str = ""
        self._config_provider: Callable[[], PipelineConfig] = PipelineConfig
        self._spec_provider: Callable[[], Any] | None = None
        self._wildcards_provider: Callable[[], Path | None] | None = None
        self._bias: RandomizerBias | None = None
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
        self._signatures: dict[ItemKind, Any] = {}
        self._writing = 0  # writes of ours under way
        if self._app is not None:
            self._app.settings_changed.connect(self._settings_changed)

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
        return [i for i in (_folder_item(ItemKind.preset, e) for e in self._preset_entries)
                if i.matches(self._filter)]

    def profiles(self) -> list[LibraryItem]:
        return [i for i in (_folder_item(ItemKind.profile, e) for e in self._profile_entries)
                if i.matches(self._filter)]

    def packs(self) -> list[LibraryItem]:
        return [i for i in (_pack_item(e) for e in self._pack_entries) if i.matches(self._filter)]

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

    def create_pack(self, name: str) -> None:
        """A new .txt pack named *name* in the packs folder, starting with the current prompt
        (or an example) and a comment on how to write more; refused if the name is taken."""
        name = " ".join(str(name).split())
        if not name:
            self._set_error(ErrorInfo("A pack needs a name.", source="Library"))
            return
        target = self._packs.folder / f"{file_stem(name)}.txt"
        prompt = " ".join(self._config_provider().txt2img.prompt.split()) or \
            "a lighthouse on a cliff at dusk, {oil painting|watercolor}"
        text = (f"# {name}\n# One prompt per line; a line starting with 'negative:' is the negative "
                f"prompt of the prompt above it.\n# {{a|b}} and __wildcard__ work as in the "
                f"Variants tab.\n{prompt}\n")

        def write() -> None:
            if target.exists():
                raise LibraryError(f"There is already a pack file called {target.name}. Choose "
                                   "another name.", detail=str(target))
            atomic_write_text(target, text)
        self._spawn(self._write(ItemKind.pack, write,
                                f"Created pack '{target.stem}' in {target.parent}. Add one prompt "
                                "per line to it in any text editor."), "library-new-pack")

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

    def _spawn(self, coro: Any, name: str) -> None:
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
            entries = await asyncio.to_thread(packs.scan)
            if packs is not self._packs:
                return  # the folder changed meanwhile: its own reload shows it
            self._pack_entries = entries
            self.packs_changed.emit()
            if self._selected_pack:
                self._emit_pack_prompts()
        else:
            store = self._store(kind)
            listed, self._signatures[kind] = await asyncio.to_thread(
                lambda: (store.entries(), store.signature()))
            if kind is ItemKind.preset:
                self._preset_entries = listed
                self.presets_changed.emit()
            else:
                self._profile_entries = listed
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
        folder = settings.packs_path(self._app.paths)  # type: ignore[union-attr]  # only connected with an app
        if folder != self._packs.folder:
            self._use_packs_folder(folder)

    def _use_packs_folder(self, folder: Path) -> None:
        self._packs = PackLibrary(folder)
        self._selected_pack = ""
        self._spawn(self._show_packs_folder(folder), "library-packs-folder")
        self._spawn(self._watch(), "library-watch")

    async def _show_packs_folder(self, folder: Path) -> None:
        await self._reload(ItemKind.pack)
        self.message_changed.emit(f"Packs are read from {folder}.")

    # --- lookups ------------------------------------------------------------------------------

    def _store(self, kind: ItemKind) -> LibraryFolder[Any]:
        return self._presets if kind is ItemKind.preset else self._profiles

    def _entries(self, kind: ItemKind) -> list[LibraryEntry[Any]]:
        return self._preset_entries if kind is ItemKind.preset else self._profile_entries

    def _entry(self, kind: ItemKind, key: str) -> LibraryEntry[Any]:
        for entry in self._entries(kind):
            if entry.key == key:
                return entry
        raise _gone(kind)

    def _pack(self, key: str) -> PackEntry:
        for entry in self._pack_entries:
            if entry.key == key:
                return entry
        raise _gone(ItemKind.pack)

    def _preset_named(self, name: str) -> Preset | None:
        for entry in self._preset_entries:
            if entry.name == name and entry.item is not None:
                return entry.item
        return None

    # --- presets and profiles ------------------------------------------------------------------

    def save_current_as_preset(self, name: str, *, description: str = "", tags: tuple[str, ...] = (),
                               include_prompts: bool = False, replace: bool = False) -> None:
        """Save the cards' current config as a user preset (refused if the name is taken)."""
        try:
            config = self._config_provider()
            preset = Preset.from_config(name.strip(), config, description=description, tags=list(tags),
                                        include_prompts=include_prompts)
        except Exception as exc:  # noqa: BLE001 - a bad name or config is shown, never raised into the view
            self._set_error(error_from_exception(exc, "Library"))
            return
        message = f"Saved preset '{preset.name}'."
        for warning in name_warnings(preset.partial()):
            message += f" Note: {warning.message}"
        self._spawn(self._write(ItemKind.preset, lambda: self._presets.save(preset, replace=replace),
                                message), "library-save")

    def update_preset(self, key: str) -> None:
        """Replace a user preset's settings with the current ones (name, notes and styles kept)."""
        entry = self._find_usable(ItemKind.preset, key)
        if entry is None or entry.item is None:  # _find_usable has said why
            return
        if entry.read_only:
            self._set_error(ErrorInfo(f"'{entry.name}' ships with StableNew and cannot be changed. "
                                      "Save your settings as a new preset instead.", source="Library"))
            return
        try:
            old = entry.item
            keeps_prompts = "prompt" in old.partial().get("txt2img", {})
            fresh = Preset.from_config(old.name, self._config_provider(), include_prompts=keeps_prompts)
            preset = old.model_copy(update={"config": fresh.config})
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            self._set_error(error_from_exception(exc, "Library"))
            return
        self._spawn(self._write(ItemKind.preset,
                                lambda: self._presets.save(preset, replace=True, previous=entry.path),
                                f"Updated preset '{preset.name}' with your current settings."),
                    "library-update")

    async def _write(self, kind: ItemKind, action: Callable[[], Any], message: str) -> Any:
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

    def apply_preset(self, key: str) -> None:
        entry = self._find_usable(ItemKind.preset, key)
        if entry is None or entry.item is None:  # _find_usable has said why
            return
        try:
            config = entry.item.apply_to(self._config_provider())
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            self._set_error(error_from_exception(exc, "Library"))
            return
        self._set_error(None)
        self.config_applied.emit(config)
        self.message_changed.emit(f"Applied preset '{entry.name}'.")

    def apply_profile(self, key: str) -> None:
        entry = self._find_usable(ItemKind.profile, key)
        if entry is None or entry.item is None:  # _find_usable has said why
            return
        try:
            config, bias = entry.item.apply_to(self._config_provider())
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            self._set_error(error_from_exception(exc, "Library"))
            return
        self._set_error(None)
        self._bias = bias
        self.config_applied.emit(config)
        self.bias_changed.emit(bias)
        self.message_changed.emit(f"Applied profile '{entry.name}'.")

    def profile_form(self, key: str | None = None) -> dict[str, str]:
        """Text fields for the profile editor: the profile's, or a new one starting from the prompt."""
        if key:
            entry = self._find_usable(ItemKind.profile, key)
            if entry is not None:
                return profile_form(entry.item)
        form = profile_form()
        form["character"] = self._config_provider().txt2img.prompt
        return form

    def save_profile(self, form: dict[str, str], key: str | None = None) -> bool:
        """Save the editor's fields as a profile (replacing *key* when editing); False if invalid."""
        previous = None
        try:
            if key:
                previous = self._entry(ItemKind.profile, key).path
            profile = profile_from_form(form)
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            self._set_error(error_from_exception(exc, "Library"))
            return False
        self._spawn(self._write(ItemKind.profile,
                                lambda: self._profiles.save(profile, replace=False, previous=previous),
                                f"Saved profile '{profile.name}'."), "library-profile")
        return True

    def _find_usable(self, kind: ItemKind, key: str) -> LibraryEntry[Any] | None:
        try:
            entry = self._entry(kind, key)
        except _Gone as exc:
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
                        action: Callable[[LibraryFolder[Any], LibraryEntry[Any]], Any], message: str) -> None:
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

    def import_styles(self, path: str | os.PathLike[str], *, replace: bool = False) -> None:
        """Each style of an A1111 styles.csv becomes a preset that adds the style's prompts."""
        source = Path(path)
        self._spawn(self._write(ItemKind.preset, lambda: self._import_styles(source, replace),
                                f"Imported the styles of {source.name} as presets."), "library-styles")

    def _import_styles(self, source: Path, replace: bool) -> int:
        styles = read_styles_csv(source)
        for style in styles:
            self._presets.save(Preset(name=style.name, description=f"Style imported from {source.name}.",
                                      tags=["style"], styles=[style]), replace=replace)
        return len(styles)

    # --- packs --------------------------------------------------------------------------------

    def select_pack(self, key: str) -> None:
        self._selected_pack = key
        self._emit_pack_prompts()

    def _emit_pack_prompts(self) -> None:
        entry = next((e for e in self._pack_entries if e.key == self._selected_pack), None)
        self.pack_prompts_changed.emit(entry.pack.resolved() if entry and entry.pack else [])

    def pack_prompts(self, key: str) -> list[tuple[str, str]]:
        entry = self._pack(key)
        return entry.pack.resolved() if entry.pack is not None else []

    def apply_pack(self, key: str, prompt_index: int = 0) -> None:
        """Fill the prompt fields from the pack (one of its prompts) over its default preset."""
        try:
            entry = self._pack(key)
            if entry.pack is None:
                raise _Gone(f"'{entry.name}' cannot be used: {entry.error}")
            config = self._pack_base(entry)
            prompts = list(pack_configs(entry.pack, config))
            chosen = prompts[max(0, min(prompt_index, len(prompts) - 1))]
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            self._set_error(error_from_exception(exc, "Library"))
            return
        self._set_error(None)
        self.config_applied.emit(chosen)
        preset = f" with preset '{entry.default_preset}'" if entry.default_preset else ""
        self.message_changed.emit(f"Applied pack '{entry.name}'{preset}.")

    def _pack_base(self, entry: PackEntry) -> PipelineConfig:
        config = self._config_provider()
        if entry.default_preset:
            preset = self._preset_named(entry.default_preset)
            if preset is None:
                raise _Gone(f"The pack's default preset '{entry.default_preset}' is not in your "
                            "presets. Choose another one or import it.")
            config = preset.apply_to(config)
        return config

    def pack_run_configs(self, key: str) -> tuple[list[PipelineConfig], Path | None]:
        """One config per prompt of the pack (over its default preset) and its wildcards folder.

        The run path plans each of them with the randomizer, so a pack runs every prompt
        times the plan.
        """
        entry = self._pack(key)
        if entry.pack is None:
            raise _Gone(f"'{entry.name}' cannot be used: {entry.error}")
        return list(pack_configs(entry.pack, self._pack_base(entry))), entry.wildcards_dir

    def set_randomizer(self, spec: Callable[[], Any] | None,
                       wildcards_dir: Callable[[], Path | None] | None = None) -> None:
        """The randomizer panel's current VariationSpec and wildcards folder, so a pack runs
        every prompt times the plan (its axes, seeds and counts) the user has set up."""
        self._spec_provider = spec
        self._wildcards_provider = wildcards_dir

    @property
    def bias(self) -> RandomizerBias | None:
        """The bias of the profile applied last (None: no profile)."""
        return self._bias

    def clear_bias(self) -> None:
        self._bias = None
        self.bias_changed.emit(RandomizerBias())

    def pack_plan_provider(self, key: str) -> Callable[[PipelineConfig], Iterator[PackRunItem]]:
        """A plan provider for the run path: given the cards' config when Run starts, every
        prompt of the pack times the randomizer's plan of it (pack prompts replace the spec's
        template; the pack's wildcards folder wins over the randomizer's)."""
        entry = self._pack(key)
        if entry.pack is None:
            raise _Gone(f"'{entry.name}' cannot be used: {entry.error}")
        spec = self._spec_provider() if self._spec_provider is not None else None
        wildcards = entry.wildcards_dir
        if wildcards is None and self._wildcards_provider is not None:
            wildcards = self._wildcards_provider()
        plan_for = pack_plan_for(spec, wildcards_dir=wildcards, bias=self._bias)
        pack, preset = entry.pack, entry.default_preset
        return lambda config: plan_pack(pack, config, plan_for=plan_for, preset=preset)

    def run_pack(self, key: str, prompt_index: int = 0) -> None:
        """Apply the pack, then ask the window to run all of its prompts (`pack_run_requested`)."""
        try:
            provider = self.pack_plan_provider(key)
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            self._set_error(error_from_exception(exc, "Library"))
            return
        self.apply_pack(key, prompt_index)
        if self._error is None:
            self.pack_run_requested.emit(provider)

    def set_pack_default_preset(self, key: str, preset_name: str | None) -> None:
        try:
            entry = self._pack(key)
        except _Gone as exc:
            self._set_error(ErrorInfo(exc.message, source="Library"))
            return
        name = preset_name or None
        message = (f"'{entry.name}' now applies preset '{name}'." if name
                   else f"'{entry.name}' uses its own default preset again.")
        self._spawn(self._write(ItemKind.pack, lambda: self._packs.set_default_preset(entry, name),
                                message), "library-pack-preset")

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


class _Gone(Exception):
    """An item the view asked for is no longer in the list (changed on disk meanwhile)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _gone(kind: ItemKind) -> _Gone:
    return _Gone(f"That {kind.value} is no longer in the list (it may have changed on disk). "
                 "Refresh the list and try again.")


__all__ = ["ItemKind", "LibraryController", "LibraryItem", "RandomizerBias"]
