"""UI latency: how long the Qt thread stalls during a 200-image run, and start-up cost.

A probe timer fires every 5 ms on the Qt loop while the real window runs 200 images at full
speed against the fake SD WebUI (in its own thread); a stall is how late the probe fired.
Start-up: time from launching a fresh interpreter to the first paint of the StableNew window
÷ the same for a blank PySide6 window (best of 5 each, interleaved).

    .venv/bin/python bench/ui_latency.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The script's own folder goes first on sys.path by default; take it off so a sibling script
# can never shadow a standard module, and put the repo root there instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
IMAGES = 200
PROBE_MS = 5

_FIRST_PAINT = r"""
import os, sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([sys.argv[0]])
class Spy(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            print(f"{time.time():.6f}", flush=True)
            os._exit(0)
        return False
spy = Spy()
if sys.argv[1] == "blank":
    from PySide6.QtWidgets import QMainWindow
    window = QMainWindow()
    window.resize(1480, 920)
else:
    import asyncio, qasync
    from stablenew.controller.app_controller import start_up
    from stablenew.gui.main_window import build_main_window
    loop = qasync.QEventLoop(app, already_running=True)
    asyncio.set_event_loop(loop)
    window = build_main_window(start_up())
    window.start_after_first_paint()
window.installEventFilter(spy)
window.show()
QTimer.singleShot(20000, lambda: os._exit(2))
app.exec()
"""


def first_paint(kind: str) -> float:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               STABLENEW_HOME=tempfile.mkdtemp(prefix="stablenew-bench-"))
    # From launching the process to the first paint: what a user waits for after a double-click.
    spawned = time.time()
    out = subprocess.run([sys.executable, "-c", _FIRST_PAINT, kind], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=60)
    return float(out.stdout.strip().splitlines()[-1]) - spawned


def measure_stalls() -> tuple[list[float], float]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["STABLENEW_HOME"] = tempfile.mkdtemp(prefix="stablenew-bench-")
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from stablenew.controller.app_controller import start_up
    from stablenew.gui.main_window import build_main_window
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import AppSettings, save_settings
    from tests.fakes.sdwebui import FakeSDWebUI

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setQuitOnLastWindowClosed(False)
    stalls: list[float] = []
    with FakeSDWebUI(step_ms=0.0).running_in_thread() as fake:
        save_settings(AppPaths.default(), AppSettings(server_url=fake.url))
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)

        async def scenario() -> float:
            window = build_main_window(start_up())
            window.show()
            window.start_after_first_paint()
            # Measured once start-up is over: server connected and every room opened.
            while window.session.server.state != "connected" or not window.session.rooms_ready:
                await asyncio.sleep(0.02)
            panel = window.pipeline_panel
            panel.editor("txt2img.prompt").set_value("benchmark prompt")
            panel.editor("txt2img.batch_count").set_value(100)
            panel.editor("txt2img.batch_size").set_value(2)
            panel.editor("txt2img.steps").set_value(4)
            panel.editor("txt2img.width").set_value(256)
            panel.editor("txt2img.height").set_value(256)
            last = [time.perf_counter()]

            def probe() -> None:
                now = time.perf_counter()
                stalls.append(max(0.0, (now - last[0]) * 1000 - PROBE_MS))
                last[0] = now

            timer = QTimer()
            timer.setInterval(PROBE_MS)
            timer.timeout.connect(probe)
            started = time.perf_counter()
            timer.start()
            window.run()
            await asyncio.sleep(0.1)
            while window.session.pipeline.state != "idle":
                await asyncio.sleep(0.05)
            timer.stop()
            seconds = time.perf_counter() - started
            saved = window.session.pipeline.progress.images_saved
            if saved != IMAGES:
                raise SystemExit(f"expected {IMAGES} images, the run saved {saved}: "
                                 f"{window.session.pipeline.error}")
            window.close()
            await window.shutdown()
            return seconds

        try:
            seconds = loop.run_until_complete(scenario())
        finally:
            loop.close()
    return stalls, seconds


def main() -> None:
    stalls, seconds = measure_stalls()
    stalls.sort()
    p99 = stalls[min(len(stalls) - 1, int(len(stalls) * 0.99))]
    print(f"{IMAGES} images in {seconds:.1f} s; {len(stalls)} probes, median stall "
          f"{statistics.median(stalls):.2f} ms")
    print(f"RESULT ui_max_stall_ms={max(stalls):.1f} ui_p99_stall_ms={p99:.1f}")
    blanks, ours_all = [], []
    for _ in range(5):  # interleaved, so load from elsewhere on the machine hits both alike
        blanks.append(first_paint("blank"))
        ours_all.append(first_paint("stablenew"))
    blank, ours = min(blanks), min(ours_all)
    print(f"first paint: blank PySide6 window {blank * 1000:.0f} ms, StableNew {ours * 1000:.0f} ms")
    print(f"RESULT startup_ratio={ours / blank:.2f} startup_ms={ours * 1000:.0f} "
          f"blank_startup_ms={blank * 1000:.0f}")


if __name__ == "__main__":
    main()
