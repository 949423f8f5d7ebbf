"""Render the StableNew window mid-run, offscreen, against the fake SD WebUI server.

    python -m tools.screenshot docs/screenshot.png [--dark]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs/screenshot.png"))
    parser.add_argument("--dark", action="store_true", help="use the dark theme")
    parser.add_argument("--step-ms", type=float, default=40.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = tempfile.mkdtemp(prefix="stablenew-shot-")
    os.environ["STABLENEW_HOME"] = home  # never touch the user's real settings or outputs
    atexit.register(shutil.rmtree, home, True)  # seven were left in /tmp, one per screenshot

    from tests.fakes.sdwebui import FakeSDWebUI

    with FakeSDWebUI(step_ms=args.step_ms).running_in_thread() as fake:
        return _shoot(fake.url, args.out, args.dark)


def _shoot(url: str, out: Path, dark: bool) -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    from stablenew.controller.app_controller import start_up
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import AppSettings, save_settings

    save_settings(AppPaths.default(), AppSettings(server_url=url, theme="dark" if dark else "light"))
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    async def scenario() -> None:
        from stablenew.gui.main_window import build_main_window

        window = build_main_window(start_up())
        window.resize(1480, 920)
        window.show()
        window.start_after_first_paint()
        await _until(lambda: window.session.server.state == "connected"
                     and window.session.rooms_ready, 20)
        panel = window.pipeline_panel
        panel.editor("txt2img.prompt").set_value(
            "a lighthouse on a cliff at dusk, volumetric light, crashing waves, highly detailed, "
            "oil painting by a master")
        panel.editor("txt2img.negative_prompt").set_value("blurry, lowres, watermark")
        panel.editor("txt2img.steps").set_value(24)
        panel.editor("txt2img.batch_count").set_value(8)
        panel.editor("txt2img.hires.enabled").set_value(True)
        panel.editor("upscale.enabled").set_value(True)
        window.run()
        await _until(lambda: window.session.pipeline.progress.images_saved >= 4
                     and (window.session.pipeline.progress.step or 0) >= 8, 60)
        if window.gallery_panel.model.rowCount():
            window.gallery_panel.view.setCurrentIndex(window.gallery_panel.model.index(1))
            window.session.gallery.rate(window.session.gallery.items[1].key, 4)
        await asyncio.sleep(1.2)  # let the next live preview arrive behind its button
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        print(f"wrote {out}")
        window.session.pipeline.stop()
        await window.session.pipeline.wait_idle(10)
        window.close()
        await window.shutdown()

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    return 0


async def _until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not reach the expected state in time")
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    raise SystemExit(main())
