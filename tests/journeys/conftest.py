"""Journeys: the real window, driven by clicks and typing, closed or killed, reopened on the same
STABLENEW_HOME, and checked for what a user would see there.

- `fake_process(step_ms=…)` starts the fake A1111 server in a process of its own (it shares neither
  our event loop nor our GIL, and a journey can kill it as a node dies).
- `journey` opens the window the way `run_app` does (paint, then bind a Session, then start), on
  the test's STABLENEW_HOME; `journey.restart()` closes it as the user's close does and reopens it.
- `spawn_app(steps)` runs the real app in a subprocess (tests/journeys/app_driver.py) acting on
  its widgets; the test kills it with SIGKILL when it likes.
- `qt_stall_watchdog` (automatic) fails a journey in which the window's Qt loop stalls over 50 ms
  (tests/journeys/stall_watchdog.py says how it tells the app's time from the test's).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.journeys.stall_watchdog import Excuse, StallWatchdog

ROOT = Path(__file__).resolve().parents[2]
#: The longest stall a window's start-up may have (see Journey.open); the longest measured over
#: the journeys was 2.7 s, the very first window's imports, and 0.2–0.5 s for the others.
STARTUP_ALLOWANCE_S = 3.0

#: Stalls over 50 ms after start-up that are not work of ours to move off the Qt thread, each
#: with the longest measured and a ceiling above it; any other stall over 50 ms fails the
#: journey (tests/journeys/test_window_answers_during_big_actions.py times the actions whose
#: own excuses were here: the learning grid, applying a preset, typing with variants on).
KNOWN_STALLS = (
    # A module's first import on the Qt thread (the runner at the first Run: 77 ms; PIL's PNG
    # plugin at the first image: 87 ms). Imports are lazy to keep start-up short; this machine
    # keeps no bytecode cache (PYTHONDONTWRITEBYTECODE), so each import compiles its source.
    Excuse("a module's first import", r"<frozen importlib\._bootstrap>", 1.0),
    # Qt's own work with no Python code of ours on the stack (painting, layout, style polish of
    # a tab shown for the first time): up to 138 ms measured, on two cores shared with others.
    Excuse("Qt's own painting and layout",
           r"(obj\.exec\(\*args, \*\*kwargs\)|QApplication\.processEvents\(\)|"
           r"QTest\.\w+\(\*args, \*\*kwargs\))\s*\Z", 0.3),
)


class FakeProcess:
    """A fake SD server in its own process: its URL, and a way to kill it as a node dies."""

    def __init__(self, step_ms: float, flavor: str = "a1111", port: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.sdwebui", "--port", str(port), "--step-ms", str(step_ms),
             "--flavor", flavor],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening at" not in line:
            self.stop()
            raise RuntimeError(f"the fake server did not start: {line!r}")
        self.url = line.split("listening at", 1)[1].split()[0]

    def kill(self) -> None:
        """SIGKILL: the node is gone at once, mid-request."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def fake_process() -> Iterator[Callable[..., FakeProcess]]:
    started: list[FakeProcess] = []

    def start(step_ms: float = 10.0, flavor: str = "a1111", port: int = 0) -> FakeProcess:
        """A fake server; *port* 0 picks a free one (a fixed one: a server started later at an
        address the settings already name)."""
        fake = FakeProcess(step_ms, flavor, port)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


def save_server(url: str) -> None:
    """The user's one-time set-up: the server address in Settings (saved before the first open)."""
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import AppSettings, save_settings

    save_settings(AppPaths.default(), AppSettings(server_url=url))


def pump(until: Callable[[], bool], timeout: float, what: str) -> None:
    """Let Qt and the qasync loop run until *until* holds (outside a qtbot wait)."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        process_events()
        time.sleep(0.002)


def process_events() -> None:
    """One pass of Qt's loop (the stall watchdog times each)."""
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()


class Journey:
    """Opens, closes and reopens the real main window on the test's STABLENEW_HOME."""

    def __init__(self, qtbot: Any, home: Path, watchdog: StallWatchdog | None = None) -> None:
        self.qtbot = qtbot
        self.watchdog = watchdog
        self.home = home
        self.window: Any = None
        self._windows: list[Any] = []  # held: qtbot keeps only weak references

    def open(self, *, connect: bool = True, rooms: bool = True) -> Any:
        """The window as `run_app` opens it: painted, then bound to a Session, then started."""
        if self.watchdog is None:
            return self._open(connect, rooms)
        # Start-up is the one allowance: first imports (this machine keeps no bytecode cache,
        # PYTHONDONTWRITEBYTECODE), Qt building and polishing the first window, and each room's
        # panel built on the Qt thread as its controller is ready. Measured over the journeys.
        with self.watchdog.allow("start-up (imports, first show, building the rooms' panels)",
                                 up_to=STARTUP_ALLOWANCE_S):
            return self._open(connect, rooms)

    def _open(self, connect: bool, rooms: bool) -> Any:
        from stablenew.controller.session import Session
        from stablenew.controller.startup import start_up
        from stablenew.gui.main_window import open_window
        from stablenew.storage.paths import AppPaths

        paths = AppPaths.default()
        window = open_window(paths)
        self._windows.append(window)
        window.show()
        # Ceilings, not expectations: a loaded machine opens the first window of a process slowly.
        self.qtbot.waitExposed(window, timeout=60000)
        window.bind(Session(start_up(paths), window_state=window.window_state))
        window.start_after_first_paint()
        if connect:
            self.qtbot.waitUntil(lambda: window.session.server.state == "connected", timeout=60000)
        if rooms:
            self.qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=60000)
        self.window = window
        return window

    def close(self, answer: str = "stop") -> None:
        """The user closes the window: its close event, then the shutdown `run_app` awaits.

        When queued work runs the window asks first; *answer* is the button the user clicks
        ("stop": stop and resume next time, as a close always did; "finish": finish in the
        background, then the window's `closed` once the queue is empty).
        """
        from PySide6.QtCore import Qt

        window, self.window = self.window, None
        if window is None:
            return
        with self.qtbot.waitSignal(window.closed, timeout=120000 if answer == "finish" else 5000):
            window.close()
            if window.closing.question is not None:
                self.qtbot.mouseClick(window.closing.button(answer),
                                      Qt.MouseButton.LeftButton)
        shutdown_window(window)

    def restart(self, answer: str = "stop", **kwargs: Any) -> Any:
        self.close(answer)
        return self.open(**kwargs)

    def shutdown_all(self) -> None:
        for window in self._windows:
            if window.session is not None and not window.session._closing:
                shutdown_window(window)
            window.close()
            window.deleteLater()


def shutdown_window(window: Any) -> None:
    """Run the window's shutdown to the end on this thread, as `run_app` does after a close."""
    done = asyncio.ensure_future(window.shutdown())
    pump(done.done, 15, "the window to shut down")
    done.result()


@pytest.fixture(autouse=True)
def qt_stall_watchdog(request) -> Iterator[StallWatchdog | None]:
    """Fails a journey whose window stalls the Qt loop over 50 ms (see stall_watchdog.py)."""
    if "qtbot" not in request.fixturenames:
        yield None  # the app runs in a subprocess, or no window at all
        return
    request.getfixturevalue("qtbot")
    watchdog = StallWatchdog(runs_qt=((sys.modules[__name__], "process_events"),), excuses=KNOWN_STALLS)
    watchdog.start()
    yield watchdog
    watchdog.stop()
    failures = watchdog.failures()
    if failures:
        pytest.fail(f"{len(failures)} stall(s) of the Qt loop over {watchdog.limit * 1000:.0f} ms:\n\n"
                    + watchdog.report(failures), pytrace=False)


@pytest.fixture
def journey(qtbot, qloop, isolated_home, qt_stall_watchdog) -> Iterator[Journey]:
    j = Journey(qtbot, isolated_home, qt_stall_watchdog)
    yield j
    j.shutdown_all()


class AppProcess:
    """The real app in a subprocess acting out a script of steps (see app_driver.py)."""

    def __init__(self, steps: list[dict[str, Any]], home: Path) -> None:
        script = home / f"journey-steps-{time.monotonic_ns()}.json"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(json.dumps(steps), encoding="utf-8")
        env = {**os.environ, "STABLENEW_HOME": str(home), "PYTHONPATH": str(ROOT),
               "QT_QPA_PLATFORM": "offscreen"}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.journeys.app_driver", str(script)],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._errors: list[str] = []
        threading.Thread(target=self._read_lines, daemon=True, name="app-stdout").start()
        threading.Thread(target=self._read_errors, daemon=True, name="app-stderr").start()

    def wait_for_line(self, text: str, timeout: float = 30) -> None:
        """Until the app prints *text* (its steps report themselves on stdout)."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break  # the app ended
            seen.append(line)
            if text in line:
                return
        self.kill()
        raise AssertionError(f"the app never said {text!r}: {''.join(seen)}\n"
                             f"{self.stderr()[-3000:]}")

    def stderr(self) -> str:
        """What the app wrote to stderr so far (drained as it goes: a full pipe would block it)."""
        return "".join(self._errors)

    def _read_lines(self) -> None:
        # A thread of its own: select() on the pipe misses lines already in the reader's
        # buffer (two lines printed at once would leave the second unseen).
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._errors.append(line)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a crash or a power cut."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def spawn_app(isolated_home) -> Iterator[Callable[[list[dict[str, Any]]], AppProcess]]:
    apps: list[AppProcess] = []

    def spawn(steps: list[dict[str, Any]]) -> AppProcess:
        app = AppProcess(steps, isolated_home)
        apps.append(app)
        return app

    yield spawn
    for app in apps:
        app.kill()


def item_states(home: Path | None = None, *, job: str | None = None) -> dict[str, int]:
    """How many queue items (of the job named *job*, or all) are in each state, read straight
    from the database file."""
    from stablenew.storage.paths import AppPaths

    db = AppPaths.default().database_file
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        if job is not None:
            return dict(con.execute(
                "SELECT i.state, COUNT(*) FROM queue_items i JOIN queue_jobs j ON j.id = i.job_id "
                "WHERE j.name = ? GROUP BY i.state", (job,)).fetchall())
        return dict(con.execute("SELECT state, COUNT(*) FROM queue_items GROUP BY state").fetchall())
    except sqlite3.OperationalError:
        return {}  # the queue's tables are not there yet
    finally:
        con.close()


def wait_db(until: Callable[[dict[str, int]], bool], timeout: float, what: str) -> dict[str, int]:
    """Poll the database (not the Qt loop) until *until* holds for the item counts."""
    deadline = time.monotonic() + timeout
    while True:
        states = item_states()
        if until(states):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {states}")
        time.sleep(0.01)


# --- what a user does and sees, shared by the journeys ------------------------------------------


def queue_batch(qtbot, window, prompt: str, images: int) -> None:
    """Type a prompt, set a small batch, press Add to queue: what a user does."""
    from PySide6.QtCore import Qt

    fill_cards(qtbot, window, prompt, images)
    qtbot.mouseClick(window.commands.queue_button, Qt.MouseButton.LeftButton)


def fill_cards(qtbot, window, prompt: str, images: int) -> None:
    """Type a prompt and set a small batch of *images* (8 steps, 64×64) on the cards."""
    from PySide6.QtWidgets import QLineEdit, QPlainTextEdit, QTextEdit

    widget = window.pipeline_panel.editor("txt2img.prompt").widget
    assert isinstance(widget, QLineEdit | QPlainTextEdit | QTextEdit)
    widget.setFocus()
    widget.clear()
    qtbot.keyClicks(widget, prompt)
    for path, value in (("txt2img.steps", 8), ("txt2img.batch_count", images),
                        ("txt2img.width", 64), ("txt2img.height", 64)):
        window.pipeline_panel.editor(path).set_value(value)


def bar_says(bar) -> str:
    """What the command bar says runs: in full (its tooltip) while the bar shortens it to fit,
    after checking the bar shows it at all."""
    if not bar.state_label.text().startswith("Running"):
        return bar.state_label.text()
    return bar.state_label.toolTip() or bar.state_label.text()


def wait_states(qtbot, until, seconds: float) -> None:
    """Until the queue's database says *until* (the window's loop runs meanwhile)."""
    qtbot.waitUntil(lambda: until(item_states()), timeout=int(seconds * 1000))


def images_on_disk(window) -> list:
    return sorted(p for p in window.session.app.output_dir.rglob("*.png")
                  if p.parent.name != ".thumbnails")
