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

# Ceilings for waits on events the tests do not test (the window connecting, shutting down): a
# passing run never comes near them; they only bound how long a broken one hangs.
CONNECT_CEILING_MS = 60_000
SHUTDOWN_CEILING_S = 60.0


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
            # The event, with a ceiling far above any wait it stands for: the first window of a
            # process also imports the app and opens its rooms, which takes over 5 s on a loaded
            # machine before the connect even starts. (A test that times out here stops its fake
            # before its window; the log then shows that late connect refused, not the cause.)
            qtbot.waitUntil(lambda: window.session.server.state == "connected",
                            timeout=CONNECT_CEILING_MS)
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
    deadline = time.monotonic() + SHUTDOWN_CEILING_S
    while not done.done() and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.002)
    done.result()
