"""The run log: its file is opened and written off the caller's thread (the window's Qt thread
in the app), in the order of the events."""

from __future__ import annotations

import json
import os
import sys
import threading

import pytest

from stablenew.pipeline.events import RunFinished, RunStarted, RunStatus, RunWarning
from stablenew.pipeline.runlog import RunLog


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes (FIFOs) are POSIX")
def test_a_log_whose_file_is_slow_to_open_never_holds_up_the_run(tmp_path):
    # A FIFO's open for writing waits until someone reads it: a disk that does not answer.
    path = tmp_path / "logs" / "run-1.jsonl"
    path.parent.mkdir()
    os.mkfifo(path)
    handed_over = threading.Event()
    logs: list[RunLog] = []

    def run() -> None:
        run_log = RunLog(path)
        logs.append(run_log)
        run_log.write(RunStarted("run-1", 2, ("txt2img",), tmp_path, "node"))
        for n in range(50):
            run_log.write(RunWarning(f"warning {n}", n))
        run_log.write(RunFinished("run-1", RunStatus.completed, 2, 0, 1.5, "Done"))
        handed_over.set()

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    try:
        assert handed_over.wait(5), "the run waited for its log file to open"
    finally:
        # The reader: the writer's open (or the old code's) goes ahead now.
        with open(path, encoding="utf-8") as reader:
            closing = threading.Thread(target=lambda: logs and logs[0].close(), daemon=True)
            caller.join(5)
            closing.start()
            text = reader.read()
            closing.join(5)
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["event"] for line in lines] == ["RunStarted", *["RunWarning"] * 50, "RunFinished"]
    assert [line["message"] for line in lines[1:-1]] == [f"warning {n}" for n in range(50)]
    assert lines[0]["output_dir"] == str(tmp_path) and lines[-1]["status"] == "completed"


def test_close_leaves_every_line_on_disk_and_later_writes_are_dropped(tmp_path):
    path = tmp_path / "logs" / "run-2.jsonl"
    run_log = RunLog(path)
    for n in range(200):
        run_log.write(RunWarning(f"warning {n}"))
    run_log.close()
    run_log.write(RunWarning("after the close"))
    run_log.close()  # twice is harmless
    messages = [json.loads(line)["message"] for line in path.read_text(encoding="utf-8").splitlines()]
    assert messages == [f"warning {n}" for n in range(200)]


def test_a_log_that_cannot_be_opened_says_so_and_never_raises(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be", encoding="utf-8")
    run_log = RunLog(blocker / "run-3.jsonl")
    run_log.write(RunWarning("lost"))
    run_log.close()
    assert "cannot be written" in caplog.text
