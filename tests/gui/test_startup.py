"""Start-up: the window opens without a server and with a corrupt settings file, never a traceback."""

from __future__ import annotations

import pytest

from stablenew.controller.app_controller import start_up
from stablenew.gui.main_window import MainWindow
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, save_settings
from tests.gui.conftest import close_window


@pytest.fixture
def open_window(qtbot, qloop):
    from stablenew.controller.session import Session

    opened = []

    def make():
        window = MainWindow(Session(start_up()))
        qtbot.addWidget(window)
        window.show()
        opened.append(window)
        return window

    yield make
    for window in opened:
        close_window(qtbot, window)


def test_no_server_says_how_to_fix_it(qtbot, open_window, dead_url):
    save_settings(AppPaths.default(), AppSettings(server_url=dead_url))
    window = open_window()
    window.start_after_first_paint()
    qtbot.waitUntil(lambda: window.server_notice.isVisible(), timeout=5000)
    text = window.server_notice.message
    assert dead_url in text
    assert "--api" in text and "Settings" in text
    assert "Traceback" not in text
    assert "not reachable" in window.status.node_label.text()


def test_corrupt_settings_file_shows_a_message_and_starts(open_window):
    paths = AppPaths.default()
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.settings_file.write_text("server_url: [unclosed\n", encoding="utf-8")
    window = open_window()
    assert window.notice.isVisible()
    assert "settings could not be read" in window.notice.message
    assert window.session.app.settings == AppSettings()
    assert list(paths.config_dir.glob("settings.yaml.bad-*")), "the bad file is kept aside"
