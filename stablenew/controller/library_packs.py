"""PackController: the prompt packs of the library — their prompts, applying one, running all
of them times the randomizer's plan, a pack's default preset and new packs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.library_items import Gone, ItemKind
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.library_folder import file_stem
from stablenew.pipeline.presets import LibraryError
from stablenew.randomizer.packs import PackEntry, PackRunItem, pack_configs, pack_plan_for, plan_pack
from stablenew.storage.atomic import atomic_write_text

if TYPE_CHECKING:
    from stablenew.controller.library_controller import LibraryController
    from stablenew.randomizer.spec import VariationSpec


class PackController(QObject):
    """What the library does with prompt packs; the lists, the folder and the writes stay with
    the LibraryController, whose state this shares (one room, two jobs)."""

    pack_prompts_changed = Signal(object)  # list[tuple[str, str]] of the selected pack
    pack_run_requested = Signal(object)  # plan provider: PipelineConfig -> iterable of PackRunItem

    def __init__(self, library: LibraryController) -> None:
        super().__init__(library)
        self._library = library
        self._selected = ""
        self._spec_provider: Callable[[], VariationSpec | None] | None = None
        self._wildcards_provider: Callable[[], Path | None] | None = None

    def select_pack(self, key: str) -> None:
        self._selected = key
        self._emit_pack_prompts()

    def _packs_reloaded(self, *, folder_changed: bool = False) -> None:
        """The library read the packs again (from another folder: nothing is selected)."""
        if folder_changed:
            self._selected = ""
        elif self._selected:
            self._emit_pack_prompts()

    def _emit_pack_prompts(self) -> None:
        entry = next((e for e in self._library._pack_entries if e.key == self._selected), None)
        self.pack_prompts_changed.emit(entry.pack.resolved() if entry and entry.pack else [])

    def pack_prompts(self, key: str) -> list[tuple[str, str]]:
        entry = self._library._pack(key)
        return entry.pack.resolved() if entry.pack is not None else []

    def apply_pack(self, key: str, prompt_index: int = 0) -> None:
        """Fill the prompt fields from the pack (one of its prompts) over its default preset."""
        library = self._library
        try:
            entry = library._pack(key)
            if entry.pack is None:
                raise Gone(f"'{entry.name}' cannot be used: {entry.error}")
            config = self._pack_base(entry)
            prompts = list(pack_configs(entry.pack, config))
            chosen = prompts[max(0, min(prompt_index, len(prompts) - 1))]
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            library._set_error(error_from_exception(exc, "Library"))
            return
        library._set_error(None)
        library.config_applied.emit(chosen)
        preset = f" with preset '{entry.default_preset}'" if entry.default_preset else ""
        library.message_changed.emit(f"Applied pack '{entry.name}'{preset}.")

    def _pack_base(self, entry: PackEntry) -> PipelineConfig:
        config = self._library._config_provider()
        if entry.default_preset:
            preset = self._library._preset_named(entry.default_preset)
            if preset is None:
                raise Gone(f"The pack's default preset '{entry.default_preset}' is not in your "
                           "presets. Choose another one or import it.")
            config = preset.apply_to(config)
        return config

    def _usable(self, key: str) -> PackEntry:
        entry = self._library._pack(key)
        if entry.pack is None:
            raise Gone(f"'{entry.name}' cannot be used: {entry.error}")
        return entry

    def pack_run_configs(self, key: str) -> tuple[list[PipelineConfig], Path | None]:
        """One config per prompt of the pack (over its default preset) and its wildcards folder.

        The run path plans each of them with the randomizer, so a pack runs every prompt
        times the plan.
        """
        entry = self._usable(key)
        assert entry.pack is not None
        return list(pack_configs(entry.pack, self._pack_base(entry))), entry.wildcards_dir

    def set_randomizer(self, spec: Callable[[], VariationSpec | None] | None,
                       wildcards_dir: Callable[[], Path | None] | None = None) -> None:
        """The randomizer panel's current VariationSpec and wildcards folder, so a pack runs
        every prompt times the plan (its axes, seeds and counts) the user has set up."""
        self._spec_provider = spec
        self._wildcards_provider = wildcards_dir

    def pack_plan_provider(self, key: str) -> Callable[[PipelineConfig], Iterator[PackRunItem]]:
        """A plan provider for the run path: given the cards' config when Run starts, every
        prompt of the pack times the randomizer's plan of it (pack prompts replace the spec's
        template; the pack's wildcards folder wins over the randomizer's)."""
        entry = self._usable(key)
        assert entry.pack is not None
        spec = self._spec_provider() if self._spec_provider is not None else None
        wildcards = entry.wildcards_dir
        if wildcards is None and self._wildcards_provider is not None:
            wildcards = self._wildcards_provider()
        plan_for = pack_plan_for(spec, wildcards_dir=wildcards,
                                 bias=self._library.preset_actions.bias)
        pack, preset = entry.pack, entry.default_preset
        return lambda config: plan_pack(pack, config, plan_for=plan_for, preset=preset)

    def run_pack(self, key: str, prompt_index: int = 0) -> None:
        """Apply the pack, then ask the window to run all of its prompts (`pack_run_requested`)."""
        try:
            provider = self.pack_plan_provider(key)
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            self._library._set_error(error_from_exception(exc, "Library"))
            return
        self.apply_pack(key, prompt_index)
        if self._library.error is None:
            self.pack_run_requested.emit(provider)

    def set_pack_default_preset(self, key: str, preset_name: str | None) -> None:
        library = self._library
        try:
            entry = library._pack(key)
        except Gone as exc:
            library._set_error(ErrorInfo(exc.message, source="Library"))
            return
        name = preset_name or None
        message = (f"'{entry.name}' now applies preset '{name}'." if name
                   else f"'{entry.name}' uses its own default preset again.")
        packs = library._packs
        library._spawn(library._write(ItemKind.pack,
                                      lambda: packs.set_default_preset(entry, name), message),
                       "library-pack-preset")

    def create_pack(self, name: str) -> None:
        """A new .txt pack named *name* in the packs folder, starting with the current prompt
        (or an example) and a comment on how to write more; refused if the name is taken."""
        library = self._library
        name = " ".join(str(name).split())
        if not name:
            library._set_error(ErrorInfo("A pack needs a name.", source="Library"))
            return
        target = library.packs_folder / f"{file_stem(name)}.txt"
        prompt = " ".join(library._config_provider().txt2img.prompt.split()) or \
            "a lighthouse on a cliff at dusk, {oil painting|watercolor}"
        text = (f"# {name}\n# One prompt per line; a line starting with 'negative:' is the negative "
                f"prompt of the prompt above it.\n# {{a|b}} and __wildcard__ work as in the "
                f"Variants tab.\n{prompt}\n")

        def write() -> None:
            if target.exists():
                raise LibraryError(f"There is already a pack file called {target.name}. Choose "
                                   "another name.", detail=str(target))
            atomic_write_text(target, text)
        library._spawn(library._write(ItemKind.pack, write,
                                      f"Created pack '{target.stem}' in {target.parent}. Add one "
                                      "prompt per line to it in any text editor."), "library-new-pack")
