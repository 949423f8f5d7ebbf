"""GUI tests: the real window on a qasync loop that Qt drives while qtbot waits."""

from __future__ import annotations

import asyncio
import socket

import pytest


@pytest.fixture
def dead_url():
    """An address on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


from tests.fakes.comfyui import fake_comfyui_thread  # noqa: E402,F401  (fixture)
from tests.fakes.llm import fake_llm_thread  # noqa: E402,F401  (fixture)
from tests.fakes.sdwebui import fake_sdwebui_thread  # noqa: E402,F401  (fixture)


@pytest.fixture
def window_for(qtbot, qloop):
    """Open the real main window against a server URL (settings saved first, as a user would)."""
    from stablenew.controller.app_controller import start_up
    from stablenew.gui.main_window import build_main_window
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import AppSettings, save_settings

    windows = []

    def make(url: str, connect: bool = True, **settings):
        save_settings(AppPaths.default(), AppSettings(server_url=url, **settings))
        window = build_main_window(start_up())
        windows.append(window)  # held here: qtbot only keeps a weak reference
        window.show()
        if connect:
            window.start_after_first_paint()
            qtbot.waitUntil(lambda: window.session.server.state == "connected", timeout=5000)
        return window

    yield make
    # Every window shuts its session down as the app does, passed or failed, before it goes.
    for window in windows:
        close_window(window)
        window.close()
        window.deleteLater()


def close_window(window) -> None:
    """Shut the window's session down as the app does at exit (timers, tasks, database threads).

    Called at the end of every test that opened a window (`window_for`, `open_window`): the
    window, and the session it owns, close on this thread — never later from the garbage collector.
    """
    import time

    from PySide6.QtWidgets import QApplication

    window.session.pipeline.stop()
    done = asyncio.ensure_future(window.shutdown())
    deadline = time.monotonic() + 10
    while not done.done() and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.002)
    done.result()
