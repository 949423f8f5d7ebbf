"""Start-up: the window opens without a server and with a corrupt settings file, never a traceback."""

from __future__ import annotations

import pytest

from stablenew.controller.app_controller import start_up
from stablenew.gui.main_window import MainWindow
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, save_settings


def _window(qtbot):
    from stablenew.controller.session import Session

    window = MainWindow(Session(start_up()))
    qtbot.addWidget(window)
    window.show()
    return window


def test_no_server_says_how_to_fix_it(qtbot, qloop, dead_url):
    pytest.importorskip("stablenew.backends.connect")
    save_settings(AppPaths.default(), AppSettings(server_url=dead_url))
    window = _window(qtbot)
    window.start_after_first_paint()
    qtbot.waitUntil(lambda: window.server_notice.isVisible(), timeout=5000)
    text = window.server_notice.message
    assert dead_url in text
    assert "--api" in text and "Settings" in text
    assert "Traceback" not in text
    assert "not reachable" in window.status.node_label.text()


def test_corrupt_settings_file_shows_a_message_and_starts(qtbot, qloop):
    paths = AppPaths.default()
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.settings_file.write_text("server_url: [unclosed\n", encoding="utf-8")
    window = _window(qtbot)
    assert window.notice.isVisible()
    assert "settings could not be read" in window.notice.message
    assert window.session.app.settings == AppSettings()
    assert list(paths.config_dir.glob("settings.yaml.bad-*")), "the bad file is kept aside"
