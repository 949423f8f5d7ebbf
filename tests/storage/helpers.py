"""Helpers for tests that need the app's settings: an AppController over the isolated home."""

from __future__ import annotations

from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, peek_settings


def app_controller_for(paths: AppPaths | None = None):
    """An AppController as start-up makes it (settings read from disk), without the log file."""
    from stablenew.controller.app_controller import AppController
    from stablenew.controller.startup import Startup
    from stablenew.storage.settings import load_settings

    paths = paths or AppPaths.default()
    settings, message = load_settings(paths)
    return AppController(Startup(paths, settings, message, None))


def saved_settings(paths: AppPaths) -> AppSettings:
    """What the settings file on disk says now."""
    assert paths.settings_file.exists(), "the settings were never saved"
    return peek_settings(paths)
