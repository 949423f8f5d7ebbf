"""`run_app()`: the thin main — folders and logging, then Qt and the window's first paint, then
the settings and the controllers (so the window appears before the models load)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

log = logging.getLogger("stablenew.gui")


def run_app(argv: Sequence[str] | None = None) -> int:
    """Open the window and run until it is closed; returns the process exit code."""
    from stablenew.controller.startup import before_paint, import_window_core

    paths = before_paint()  # folders and the log file: no Qt, no settings yet
    import_window_core()  # before PySide6 loads: see WINDOW_CORE

    import qasync
    from PySide6.QtWidgets import QApplication

    running = QApplication.instance()  # tests start one; the typed handle needs a QApplication
    app = running if isinstance(running, QApplication) else QApplication([sys.argv[0], *(argv or [])])
    app.setApplicationName("StableNew")
    app.setOrganizationName("StableNew")
    # The window's close ends the async main, which then stops the loop: cleanup always runs.
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_main(app, paths))
    except RuntimeError as exc:  # the OS ended the session while we were closing
        log.warning("event loop ended early: %s", exc)
        return 0
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def _main(app, paths) -> int:
    from stablenew.gui.main_window import open_window

    closed = asyncio.Event()

    def request_close() -> None:
        if not closed.is_set():  # aboutToQuit and the window may both fire
            closed.set()

    app.aboutToQuit.connect(request_close)
    window = open_window(paths)  # as the last launch left it: layout, theme, the cards
    window.closed.connect(request_close)
    window.show()
    await window.first_paint()
    if not closed.is_set():
        from stablenew.controller.session import Session
        from stablenew.controller.startup import start_up

        # Settings, models and controllers: pydantic and PyYAML load here, after the paint.
        window.bind(Session(start_up(paths), window_state=window.window_state))
        window.start_after_first_paint()
    await closed.wait()
    await window.shutdown()
    return 0
