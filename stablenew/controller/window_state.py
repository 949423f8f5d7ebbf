"""WindowState: what the window remembers between launches (geometry, splitters, the theme it
last showed) and its style sheets; everything the first paint needs, without settings or pydantic.

The settings stay the truth for the theme: once they are read, AppController tells the window
which theme they ask for and records it here for the next launch's first paint.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QSettings

from stablenew.storage.paths import AppPaths
from stablenew.storage.resources import resource_path

log = logging.getLogger("stablenew")

THEMES = ("system", "light", "dark")


class WindowState(QObject):
    """The window's remembered state in `window.ini` (Qt's own INI format) and its style sheets."""

    def __init__(self, paths: AppPaths, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ini = QSettings(str(paths.config_dir / "window.ini"), QSettings.Format.IniFormat)

    def value(self, key: str) -> object:
        """What the INI holds under *key* (None: nothing); the caller checks its type."""
        return self._ini.value(key)

    def set_value(self, key: str, value: object) -> None:
        self._ini.setValue(key, value)

    def sync(self) -> None:
        self._ini.sync()

    @property
    def theme(self) -> str:
        """The theme the settings asked for at the last launch ("system" the first time)."""
        theme = self._ini.value("theme")
        return theme if theme in THEMES else "system"

    def remember_theme(self, theme: str) -> None:
        if self._ini.value("theme") != theme:
            self._ini.setValue("theme", theme)

    @staticmethod
    def style_sheet(dark: bool) -> str:
        """The shipped style sheet for the light or dark palette ("" when it is missing)."""
        name = "dark.qss" if dark else "light.qss"
        try:
            base = resource_path("style", "base.qss").read_text(encoding="utf-8")
            colours = resource_path("style", name).read_text(encoding="utf-8")
        except OSError as exc:
            log.warning("style sheet missing: %s", exc)
            return ""
        icons = resource_path("style", "icons").as_posix()  # Qt style sheets want / on every OS
        return _apply_palette(base, colours).replace("@icons", icons)


def _apply_palette(base: str, palette_text: str) -> str:
    """Fill @name placeholders in the base sheet from `name: value` lines of a palette file."""
    colours: dict[str, str] = {}
    for line in palette_text.splitlines():
        line = line.split("/*", 1)[0].strip()
        if ":" in line:
            key, value = line.split(":", 1)
            colours[key.strip()] = value.strip().rstrip(";")
    # Longest names first so @accent_hover is not eaten by @accent.
    for key in sorted(colours, key=len, reverse=True):
        base = base.replace(f"@{key}", colours[key])
    return base
