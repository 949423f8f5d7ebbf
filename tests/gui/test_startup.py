"""Start-up: the window opens without a server and with a corrupt settings file, never a traceback."""

from __future__ import annotations

import pytest

from stablenew.controller.app_controller import start_up
from stablenew.controller.cards import SECTIONS
from stablenew.gui.main_window import build_main_window
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, save_settings
from tests.gui.conftest import close_window


@pytest.fixture
def open_window(qtbot, qloop):
    windows = []

    def make():
        window = build_main_window(start_up())
        windows.append(window)  # held here: qtbot only keeps a weak reference
        window.show()
        return window

    yield make
    for window in windows:
        close_window(window)
        window.close()
        window.deleteLater()


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


_CLOSE_SOON = r"""
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([sys.argv[0]])

import time
deadline = time.monotonic() + 20

def close_when_told():
    windows = [w for w in app.topLevelWidgets() if w.isVisible() and w.windowTitle() == "StableNew"]
    waiting = not windows or not windows[0].server_notice.message
    if waiting and time.monotonic() < deadline:
        QTimer.singleShot(100, close_when_told)  # the probe runs in the background
        return
    print("window:", len(windows), windows[0].server_notice.message if windows else "", flush=True)
    for w in windows:
        w.close()

QTimer.singleShot(300, close_when_told)
from stablenew.gui.app import run_app
sys.exit(run_app())
"""


def test_run_app_opens_says_no_server_and_exits_cleanly(tmp_path, dead_url):
    """What `make run` does on a machine without a server: a window, a plain message, exit 0."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    env = dict(os.environ, STABLENEW_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    paths = AppPaths(home / "config", home / "data", home / "outputs")
    save_settings(paths, AppSettings(server_url=dead_url))
    result = subprocess.run([sys.executable, "-c", _CLOSE_SOON], capture_output=True, text=True,
                            env=env, timeout=45)
    assert result.returncode == 0, result.stderr
    assert "window: 1" in result.stdout
    assert f"No Stable Diffusion server answers at {dead_url}" in result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert (paths.log_dir / "stablenew.log").exists(), "logging goes to the data folder"


def test_theme_and_window_layout_are_remembered(qtbot, open_window):
    window = open_window()
    window.session.app.apply_settings({"theme": "dark"})
    assert window.property("dark") is True
    qtbot.waitUntil(lambda: "dark" in window.session.app.paths.settings_file.read_text()
                    if window.session.app.paths.settings_file.exists() else False, timeout=5000)
    window.resize(1100, 700)
    window.main_split.setSizes([300, 400, 400])
    sizes = window.main_split.sizes()
    window.save_state()
    again = open_window()
    assert again.session.app.theme == "dark"
    # Sidebar and cards keep their widths (within the few pixels a fresh layout moves them);
    # the viewer, which stretches, takes the rest.
    restored = again.main_split.sizes()
    assert all(abs(a - b) <= 25 for a, b in zip(restored[:2], sizes[:2], strict=True)), (restored, sizes)
    # Offscreen window managers may clamp a restored size; the stored geometry must round-trip.
    stored = again.window_state.value("geometry")
    assert stored == window.saveGeometry() and again.restoreGeometry(stored)


_LATE_CORE = r"""
import os, sys
from pathlib import Path
import stablenew.gui.app as entry

real_main = entry._main

async def report_at_first_paint(app, paths):
    from PySide6.QtCore import QEvent, QObject

    class Spy(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint and obj.isWidgetType() and obj.isWindow():
                names = list(sys.modules)  # in the order the imports began
                late = names[names.index("PySide6") + 1:]
                for name in late:
                    module = sys.modules.get(name)
                    file = getattr(module, "__file__", None) or ""
                    if name.startswith("stablenew") and not name.startswith("stablenew.gui"):
                        if "PySide6" not in Path(file).read_text(encoding="utf-8"):
                            print("late:", name, flush=True)
                heavy = [n for n in ("pydantic", "yaml", "stablenew.pipeline.config",
                                     "stablenew.controller.session") if n in sys.modules]
                print("heavy:", " ".join(heavy), flush=True)
                cards = obj.pipeline_panel.editors
                print("cards:", len(cards), cards["txt2img.steps"].value(), flush=True)
                print("painted", flush=True)
                os._exit(0)
            return False

    app._spy = Spy()
    app.installEventFilter(app._spy)
    return await real_main(app, paths)

entry._main = report_at_first_paint
entry.run_app([])
"""


def test_the_window_paints_its_cards_before_the_models_load(tmp_path):
    """Start-up stays fast: the first paint shows every card field with its default before
    pydantic, PyYAML or a controller loads, and no Qt-free module of ours is first imported
    after PySide6 (WINDOW_CORE)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, STABLENEW_HOME=str(tmp_path / "home"), QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, "-c", _LATE_CORE], capture_output=True, text=True,
                            env=env, timeout=60)
    assert "painted" in result.stdout, result.stderr
    late = [line.split(":", 1)[1].strip() for line in result.stdout.splitlines() if line.startswith("late:")]
    assert late == [], (f"these Qt-free modules load after PySide6 and slow start-up; add them to "
                        f"WINDOW_CORE in stablenew/controller/startup.py: {late}")
    heavy = next(line for line in result.stdout.splitlines() if line.startswith("heavy:"))
    assert heavy.strip() == "heavy:", (f"the window must paint before these load (they cost tens of "
                               f"milliseconds of start-up): {heavy}")
    cards = next(line for line in result.stdout.splitlines() if line.startswith("cards:"))
    assert cards.split()[1:] == [str(sum(len(s) for s in SECTIONS.values())), "20"], cards


def test_the_first_paint_uses_the_remembered_theme_and_waits_for_the_controllers(qtbot, qloop):
    """Before `bind` the window shows the theme the settings asked for last time, and its
    commands do nothing rather than fail; after it, the settings decide."""
    from stablenew.controller.session import Session
    from stablenew.controller.window_state import WindowState
    from stablenew.gui.main_window import open_window

    paths = AppPaths.default()
    save_settings(paths, AppSettings(theme="light"))
    state = WindowState(paths)
    state.remember_theme("dark")  # as the last launch left it
    state.sync()
    state.deleteLater()
    window = open_window(paths)
    try:
        assert window.property("dark") is True
        assert window.pipeline_panel.editor("txt2img.steps").value() == 20
        window.run()
        window.add_to_queue()
        window._stop()
        window.open_settings()
        assert window.session is None and not window.notice.isVisible()
        window.show()
        qtbot.waitUntil(lambda: window._painted_once, timeout=5000)
        window.start_after_first_paint()  # painted, not bound yet: the start waits for bind
        window.bind(Session(start_up(paths), window_state=window.window_state))
        assert window.property("dark") is False, "the settings say light"
        assert window.window_state.theme == "light", "and the next launch paints light at once"
        qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=10000)
    finally:
        if window.session is not None:
            close_window(window)
        window.close()
        window.deleteLater()
