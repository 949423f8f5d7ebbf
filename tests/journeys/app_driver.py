"""The real app (`run_app`, as `stablenew` starts it) driven by a script of user actions, in a
process of its own so a journey can SIGKILL it: `python -m tests.journeys.app_driver SCRIPT.json`.

The script is a JSON list of steps, each acted on the real widgets once the window is bound and
every room is open:
  {"fill": {"txt2img.prompt": "a fox", "txt2img.batch_count": 3}}  type text / set numbers
  {"click": "queue_button"}                                          a button of the command bar
  {"wait_queue_count": 3}                                            until the queue has 3 jobs
Each finished step prints `step N done`; after the last, `actions done`. The process then runs
until it is killed (or its window closes).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QLineEdit, QPlainTextEdit, QTextEdit

    from stablenew.gui.app import run_app
    from stablenew.gui.main_window import MainWindow

    with open(sys.argv[1], encoding="utf-8") as f:
        steps = json.load(f)
    app = QApplication([sys.argv[0]])
    state = {"step": 0}

    def window() -> MainWindow | None:
        for widget in app.topLevelWidgets():
            if isinstance(widget, MainWindow) and widget.session is not None:
                return widget
        return None

    def fill(win: MainWindow, values: dict) -> None:
        for path, value in values.items():
            editor = win.pipeline_panel.editor(path)
            widget = editor.widget
            if isinstance(value, str) and isinstance(widget, QLineEdit | QPlainTextEdit | QTextEdit):
                widget.setFocus()
                widget.clear()
                QTest.keyClicks(widget, value)  # typed, as a user would
            else:
                editor.set_value(value)

    def done_waiting(win: MainWindow, step: dict) -> bool:
        if "wait_queue_count" in step:
            queue = win.session.queue
            return queue is not None and queue.count >= step["wait_queue_count"]
        return True

    def tick() -> None:
        win = window()
        if win is None or not win.session.rooms_ready or state["step"] >= len(steps):
            return
        step = steps[state["step"]]
        if "fill" in step:
            fill(win, step["fill"])
        elif "click" in step:
            QTest.mouseClick(getattr(win.commands, step["click"]), Qt.MouseButton.LeftButton)
        elif not done_waiting(win, step):
            return
        print(f"step {state['step']} done", flush=True)
        state["step"] += 1
        if state["step"] == len(steps):
            print("actions done", flush=True)

    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(tick)
    timer.start()
    return run_app([])


if __name__ == "__main__":
    raise SystemExit(main())
