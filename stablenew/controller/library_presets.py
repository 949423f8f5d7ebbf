"""PresetController: the library's presets and profiles at work — saving the current settings
as a preset, updating one, applying a preset or a profile (and the profile's randomizer bias),
the profile editor and importing A1111 styles."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.library_items import ItemKind
from stablenew.pipeline.presets import Preset, name_warnings
from stablenew.pipeline.styles import read_styles_csv
from stablenew.randomizer.profiles import RandomizerBias, profile_form, profile_from_form

if TYPE_CHECKING:
    import os

    from stablenew.controller.library_controller import LibraryController


class PresetController(QObject):
    """What the library does with presets and profiles; the lists and the writes stay with the
    LibraryController, whose state this shares (one room, two jobs)."""

    bias_changed = Signal(object)  # RandomizerBias of the applied profile (empty: none)

    def __init__(self, library: LibraryController) -> None:
        super().__init__(library)
        self._library = library
        self._bias: RandomizerBias | None = None

    @property
    def bias(self) -> RandomizerBias | None:
        """The bias of the profile applied last (None: no profile)."""
        return self._bias

    def clear_bias(self) -> None:
        self._bias = None
        self.bias_changed.emit(RandomizerBias())

    def save_current_as_preset(self, name: str, *, description: str = "", tags: tuple[str, ...] = (),
                               include_prompts: bool = False, replace: bool = False) -> None:
        """Save the cards' current config as a user preset (refused if the name is taken)."""
        library = self._library
        try:
            config = library._config_provider()
            preset = Preset.from_config(name.strip(), config, description=description, tags=list(tags),
                                        include_prompts=include_prompts)
        except Exception as exc:  # noqa: BLE001 - a bad name or config is shown, never raised into the view
            library._set_error(error_from_exception(exc, "Library"))
            return
        message = f"Saved preset '{preset.name}'."
        for warning in name_warnings(preset.partial()):
            message += f" Note: {warning.message}"
        presets = library._presets
        library._spawn(library._write(ItemKind.preset, lambda: presets.save(preset, replace=replace),
                                      message), "library-save")

    def update_preset(self, key: str) -> None:
        """Replace a user preset's settings with the current ones (name, notes and styles kept)."""
        library = self._library
        entry = library._find_usable(ItemKind.preset, key)
        if entry is None:
            return
        if entry.read_only:
            library._set_error(ErrorInfo(f"'{entry.name}' ships with StableNew and cannot be "
                                         "changed. Save your settings as a new preset instead.",
                                         source="Library"))
            return
        old = entry.item
        assert old is not None  # _find_usable gives only entries that can be used
        try:
            keeps_prompts = "prompt" in old.partial().get("txt2img", {})
            fresh = Preset.from_config(old.name, library._config_provider(),
                                       include_prompts=keeps_prompts)
            preset = old.model_copy(update={"config": fresh.config})
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            library._set_error(error_from_exception(exc, "Library"))
            return
        presets = library._presets
        library._spawn(library._write(ItemKind.preset,
                                      lambda: presets.save(preset, replace=True, previous=entry.path),
                                      f"Updated preset '{preset.name}' with your current settings."),
                       "library-update")

    def apply_preset(self, key: str) -> None:
        library = self._library
        entry = library._find_usable(ItemKind.preset, key)
        if entry is None:
            return
        preset = entry.item
        assert preset is not None  # _find_usable gives only entries that can be used
        try:
            config = preset.apply_to(library._config_provider())
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            library._set_error(error_from_exception(exc, "Library"))
            return
        library._set_error(None)
        library.config_applied.emit(config)
        library.message_changed.emit(f"Applied preset '{entry.name}'.")

    def apply_profile(self, key: str) -> None:
        library = self._library
        entry = library._find_usable(ItemKind.profile, key)
        if entry is None:
            return
        profile = entry.item
        assert profile is not None  # _find_usable gives only entries that can be used
        try:
            config, bias = profile.apply_to(library._config_provider())
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            library._set_error(error_from_exception(exc, "Library"))
            return
        library._set_error(None)
        self._bias = bias
        library.config_applied.emit(config)
        self.bias_changed.emit(bias)
        library.message_changed.emit(f"Applied profile '{entry.name}'.")

    def profile_form(self, key: str | None = None) -> dict[str, str]:
        """Text fields for the profile editor: the profile's, or a new one starting from the prompt."""
        if key:
            entry = self._library._find_usable(ItemKind.profile, key)
            if entry is not None:
                return profile_form(entry.item)
        form = profile_form()
        form["character"] = self._library._config_provider().txt2img.prompt
        return form

    def save_profile(self, form: dict[str, str], key: str | None = None) -> bool:
        """Save the editor's fields as a profile (replacing *key* when editing); False if invalid."""
        library = self._library
        previous = None
        try:
            if key:
                previous = library._entry(ItemKind.profile, key).path
            profile = profile_from_form(form)
        except Exception as exc:  # noqa: BLE001 - shown as the Library error, never raised into the view
            library._set_error(error_from_exception(exc, "Library"))
            return False
        profiles = library._profiles
        library._spawn(library._write(ItemKind.profile,
                                      lambda: profiles.save(profile, replace=False, previous=previous),
                                      f"Saved profile '{profile.name}'."), "library-profile")
        return True

    def import_styles(self, path: str | os.PathLike[str], *, replace: bool = False) -> None:
        """Each style of an A1111 styles.csv becomes a preset that adds the style's prompts."""
        source = Path(path)
        self._library._spawn(
            self._library._write(ItemKind.preset, lambda: self._import_styles(source, replace),
                                 f"Imported the styles of {source.name} as presets."),
            "library-styles")

    def _import_styles(self, source: Path, replace: bool) -> int:
        styles = read_styles_csv(source)
        for style in styles:
            self._library._presets.save(
                Preset(name=style.name, description=f"Style imported from {source.name}.",
                       tags=["style"], styles=[style]), replace=replace)
        return len(styles)
