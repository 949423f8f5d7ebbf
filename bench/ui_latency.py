"""UI latency: how long the Qt thread stalls during a 200-image run, and start-up cost.

A probe timer fires every 5 ms on the Qt loop while the real window runs 200 images at full
speed against the fake SD WebUI (in its own thread); a stall is how late the probe fired.
Start-up: time from launching a fresh interpreter to the first paint of the StableNew window
÷ the same for a blank PySide6 window (best of 7 each, interleaved). StableNew starts through its
real entry point (`stablenew.gui.app.run_app`) as a returning user: saved settings, bytecode cached.
The window paints before its settings and controllers load; `startup_ready_ms` is the time until
they are joined to it (every button works from there), for the record.

    .venv/bin/python bench/ui_latency.py
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
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

from bench._stall_probe import StallProbe  # noqa: E402

IMAGES = 200

_FIRST_PAINT = r"""
import os, sys, time
def report_first_paint(window):
    # Watches the window alone: an application-wide Python event filter would be called for every
    # event of every widget (thousands while StableNew builds its window), a cost no launch pays.
    from PySide6.QtCore import QEvent, QObject
    class Spy(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint:
                print(f"{time.time():.6f}", flush=True)
                os._exit(0)
            return False
    window._first_paint_spy = Spy()
    window.installEventFilter(window._first_paint_spy)
if sys.argv[1] == "python":  # a bare interpreter: what every launch pays before any import
    print(f"{time.time():.6f}", flush=True)
elif sys.argv[1] == "core":  # StableNew's Qt-free start-up before its paint: folders, log, asyncio
    from stablenew.controller.startup import before_paint, import_window_core
    before_paint()
    import_window_core()
    print(f"{time.time():.6f}", flush=True)
elif sys.argv[1] == "blank":
    from PySide6.QtWidgets import QApplication, QMainWindow
    app = QApplication([sys.argv[0]])
    window = QMainWindow()
    report_first_paint(window)
    window.resize(1480, 920)
    window.show()
    app.exec()
else:
    # The real entry point, exactly as `stablenew gui` runs it; the spy joins the window it builds.
    # main_window is imported where the real _main imports it: after run_app has loaded Qt.
    import stablenew.gui.app as entry
    real_main = entry._main
    async def spied_main(app, paths):
        import stablenew.gui.main_window as main_window
        real_open = main_window.open_window
        def spied_open(paths):
            window = real_open(paths)
            if sys.argv[1] == "stablenew":
                report_first_paint(window)
            return window
        main_window.open_window = spied_open
        if sys.argv[1] == "ready":  # until the controllers are joined: the window works from here
            real_bind = main_window.MainWindow.bind
            def spied_bind(window, session):
                real_bind(window, session)
                print(f"{time.time():.6f}", flush=True)
                os._exit(0)
            main_window.MainWindow.bind = spied_bind
        return await real_main(app, paths)
    entry._main = spied_main
    entry.run_app([])
"""


def first_paint(kind: str, home: str) -> float:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", STABLENEW_HOME=home)
    # A user's Python caches bytecode; without that every launch would compile our modules
    # again (PySide6's own come precompiled by pip), which no user pays after the first start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # From launching the process to the first paint: what a user waits for after a double-click.
    spawned = time.time()
    out = subprocess.run([sys.executable, "-c", _FIRST_PAINT, kind], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=60)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{kind} start-up did not finish (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return float(lines[-1]) - spawned


def _temp_home() -> str:
    """A throw-away data folder, removed when the bench exits (each run used to leave two)."""
    home = tempfile.mkdtemp(prefix="stablenew-bench-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def returning_user_home() -> str:
    """A data folder as a returning user has it: saved settings, caches warm after one launch."""
    home = _temp_home()
    seed = ("from stablenew.storage.paths import AppPaths\n"
            "from stablenew.storage.settings import AppSettings, save_settings\n"
            "save_settings(AppPaths.default(), AppSettings(server_url='http://127.0.0.1:9'))\n")
    subprocess.run([sys.executable, "-c", seed], check=True, cwd=ROOT,
                   env=dict(os.environ, STABLENEW_HOME=home))
    for kind in ("blank", "ready"):
        first_paint(kind, home)  # first launch: writes the bytecode caches; not counted
    return home


def measure_stalls() -> tuple[list[float], float]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["STABLENEW_HOME"] = _temp_home()
    import qasync
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
            probe = StallProbe()
            started = time.perf_counter()
            probe.start()
            window.run()
            await asyncio.sleep(0.1)
            while window.session.pipeline.state != "idle":
                await asyncio.sleep(0.05)
            probe.stop()
            stalls.extend(probe.stalls)
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
    home = returning_user_home()
    blanks, ours_all, ready_all = [], [], []
    for _ in range(7):  # interleaved, so load from elsewhere on the machine hits both alike
        blanks.append(first_paint("blank", home))
        ours_all.append(first_paint("stablenew", home))
        ready_all.append(first_paint("ready", home))
    blank, ours, ready = min(blanks), min(ours_all), min(ready_all)
    print(f"first paint: blank PySide6 window {blank * 1000:.0f} ms, StableNew {ours * 1000:.0f} ms; "
          f"StableNew's controllers joined at {ready * 1000:.0f} ms")
    # The floor: a blank window plus StableNew's Qt-free start-up before its paint (folders, the
    # log file, asyncio), before a single widget of ours exists.
    python = min(first_paint("python", home) for _ in range(7))
    core = min(first_paint("core", home) for _ in range(7))
    floor = blank + core - python
    print(f"bare interpreter {python * 1000:.0f} ms, Qt-free start-up {core * 1000:.0f} ms: a blank "
          f"window plus that start-up would paint at {floor * 1000:.0f} ms")
    print(f"RESULT startup_ratio={ours / blank:.2f} startup_ms={ours * 1000:.0f} "
          f"blank_startup_ms={blank * 1000:.0f} startup_floor_ratio={floor / blank:.2f} "
          f"startup_ready_ms={ready * 1000:.0f}")


if __name__ == "__main__":
    main()
