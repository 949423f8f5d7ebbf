"""App-wide state: settings and theme (remembered window state: window_state.py; start-up: startup.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.field_spec import FieldValue
from stablenew.controller.fields import FieldSpec, field_specs
from stablenew.controller.startup import Startup, configure_logging, start_up
from stablenew.controller.tasks import TaskOwner
from stablenew.controller.window_state import THEMES, WindowState
from stablenew.storage.settings import AppSettings, save_settings

log = logging.getLogger("stablenew")

__all__ = ["AppController", "Startup", "THEMES", "configure_logging", "start_up"]


class AppController(QObject):
    """Owns the settings (load, validate, save off the Qt thread); hands the theme to WindowState."""

    settings_changed = Signal(object)  # AppSettings
    theme_changed = Signal(str)
    notice_changed = Signal(object)  # ErrorInfo | None: a message for the user not tied to a run

    def __init__(self, startup: Startup | None = None, parent: QObject | None = None, *,
                 window_state: WindowState | None = None) -> None:
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
        # The window may have painted with it already (window_state.py); the settings' theme is
        # recorded there for the next launch's first paint.
        self.window_state = window_state or WindowState(self.paths, self)
        self.window_state.remember_theme(self.theme)

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

    def settings_values(self) -> dict[str, FieldValue]:
        """The settings as the dialog edits them: plain values, secrets as the user typed them
        (a JSON dump masks them as stars, which saved back would replace the real key)."""
        values = self._settings.model_dump(mode="json")
        values["llm_api_key"] = self._settings.llm_api_key.get_secret_value()
        values["civitai_api_key"] = self._settings.civitai_api_key.get_secret_value()
        return values

    def validate_settings(self, values: Mapping[str, FieldValue]) -> tuple[AppSettings | None, str]:
        """Check values from the dialog; returns (settings, "") or (None, plain reason)."""
        from pydantic import ValidationError

        from stablenew.storage.validation import plain_problems

        try:
            data = self._settings.model_dump()
            data.update(values)
            return AppSettings.model_validate(data), ""
        except ValidationError as exc:
            return None, "; ".join(str(p) for p in plain_problems(exc, AppSettings))

    def apply_settings(self, values: Mapping[str, FieldValue]) -> str:
        """Validate and adopt new settings now, writing them to disk off the Qt thread."""
        settings, reason = self.validate_settings(values)
        if settings is None:
            return reason
        old_theme = self._settings.theme
        self._settings = settings
        self.settings_changed.emit(settings)
        if settings.theme != old_theme:
            self.window_state.remember_theme(self.theme)
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

