"""`run_app()`: the thin main — folders, logging and settings first, then Qt, then the async main."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

log = logging.getLogger("stablenew.gui")


def run_app(argv: Sequence[str] | None = None) -> int:
    """Open the window and run until it is closed; returns the process exit code."""
    from stablenew.controller.startup import import_window_core, start_up

    startup = start_up()  # folders, log file, settings: no Qt, no network
    import_window_core()  # before PySide6 loads: see WINDOW_CORE

    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setApplicationName("StableNew")
    app.setOrganizationName("StableNew")
    # The window's close ends the async main, which then stops the loop: cleanup always runs.
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_main(app, startup))
    except RuntimeError as exc:  # the OS ended the session while we were closing
        log.warning("event loop ended early: %s", exc)
        return 0
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def _main(app, startup) -> int:
    from stablenew.gui.main_window import build_main_window

    closed = asyncio.Event()

    def request_close() -> None:
        if not closed.is_set():  # aboutToQuit and the window may both fire
            closed.set()

    app.aboutToQuit.connect(request_close)
    window = build_main_window(startup)
    window.closed.connect(request_close)
    window.show()
    window.start_after_first_paint()
    await closed.wait()
    await window.shutdown()
    return 0
