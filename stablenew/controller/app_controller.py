"""App-wide state: settings, theme and remembered window state (start-up itself: startup.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.fields import FieldSpec, field_specs
from stablenew.controller.startup import Startup, configure_logging, start_up
from stablenew.controller.tasks import TaskOwner
from stablenew.storage.resources import resource_path
from stablenew.storage.settings import AppSettings, save_settings

log = logging.getLogger("stablenew")

THEMES = ("system", "light", "dark")
__all__ = ["AppController", "Startup", "THEMES", "configure_logging", "start_up"]


class AppController(QObject):
    """Owns the settings (load, validate, save off the Qt thread) and the window's remembered state."""

    settings_changed = Signal(object)  # AppSettings
    theme_changed = Signal(str)
    notice_changed = Signal(object)  # ErrorInfo | None: a message for the user not tied to a run

    def __init__(self, startup: Startup | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        startup = startup or start_up()
        self.paths = startup.paths
        self._settings = startup.settings
        self._saved: AppSettings | None = startup.settings
        self._save_lock: asyncio.Lock | None = None
        self.tasks = TaskOwner("Settings", self)
        self.tasks.error_raised.connect(self.notice_changed)
        self._notice: ErrorInfo | None = None
        if startup.settings_message:
            self._notice = ErrorInfo(startup.settings_message, source="Settings")
        self._ui_state = QSettings(str(self.paths.config_dir / "window.ini"), QSettings.Format.IniFormat)

    # --- settings ---------------------------------------------------------------------------

    @property
    def settings(self) -> AppSettings:
        return self._settings

    @property
    def notice(self) -> ErrorInfo | None:
        return self._notice

    @property
    def output_dir(self) -> Path:
        return self._settings.output_path(self.paths)

    def settings_fields(self) -> dict[str, FieldSpec]:
        return {spec.name: spec for spec in field_specs(AppSettings, exclude=("version",))}

    def validate_settings(self, values: dict[str, Any]) -> tuple[AppSettings | None, str]:
        """Check values from the dialog; returns (settings, "") or (None, plain reason)."""
        from pydantic import ValidationError

        from stablenew.storage.validation import plain_problems

        try:
            data = self._settings.model_dump()
            data.update(values)
            return AppSettings.model_validate(data), ""
        except ValidationError as exc:
            return None, "; ".join(str(p) for p in plain_problems(exc, AppSettings))

    def apply_settings(self, values: dict[str, Any]) -> str:
        """Validate and adopt new settings now, writing them to disk off the Qt thread."""
        settings, reason = self.validate_settings(values)
        if settings is None:
            return reason
        old_theme = self._settings.theme
        self._settings = settings
        self.settings_changed.emit(settings)
        if settings.theme != old_theme:
            self.theme_changed.emit(str(settings.theme))
        self.tasks.spawn(self._save(), name="save-settings")
        return ""

    async def _save(self) -> None:
        # One write at a time, always of the newest settings: two quick changes (a learning
        # mode switch, then a folder) must never leave the older one on disk.
        if self._save_lock is None:
            self._save_lock = asyncio.Lock()
        async with self._save_lock:
            settings = self._settings
            if settings is self._saved:
                return  # a later change's save already wrote these
            await asyncio.to_thread(save_settings, self.paths, settings)
            self._saved = settings
        log.info("settings saved to %s", self.paths.settings_file)

    def clear_notice(self) -> None:
        self._notice = None
        self.notice_changed.emit(None)

    def report(self, exc: BaseException, source: str) -> ErrorInfo:
        info = error_from_exception(exc, source)
        self._notice = info
        self.notice_changed.emit(info)
        return info

    # --- theme ------------------------------------------------------------------------------

    @property
    def theme(self) -> str:
        return str(self._settings.theme)

    def style_sheet(self, dark: bool) -> str:
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

    def icon_path(self, name: str) -> str:
        return str(resource_path("style", "icons", name))

    # --- remembered window state ------------------------------------------------------------

    def ui_value(self, key: str) -> Any:
        return self._ui_state.value(key)

    def set_ui_value(self, key: str, value: Any) -> None:
        self._ui_state.setValue(key, value)

    def sync_ui_state(self) -> None:
        self._ui_state.sync()


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
