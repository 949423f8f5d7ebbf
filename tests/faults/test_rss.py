"""`stablenew queue run` against a node that answers with 1.5 GB stays under 300 MB of memory
(peak resident set of the process, measured by the kernel)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stablenew.cli import main
from stablenew.pipeline.config import PipelineConfig

ROOT = Path(__file__).resolve().parents[2]
LIMIT_MB = 300


@pytest.fixture
def hostile_node():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.hostile", "--huge", "/sdapi/v1/txt2img=1500000000"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "listening at" in line, line
        yield line.split("listening at", 1)[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _hwm_mb(pid: int) -> float | None:
    """The process's own peak resident set (VmHWM) so far, in MB; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_measured(args: list[str], env: dict[str, str], timeout: float = 240.0) -> tuple[int, float, str]:
    """Exit code, peak RSS in MB and its output. VmHWM is the high-water mark of the process's
    own memory since exec (wait4's ru_maxrss would also count the forked copy of pytest), read
    until the process is gone: it only grows, so the last reading is the peak up to then."""
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    peak = 0.0
    deadline = time.monotonic() + timeout
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else ""),
                              daemon=True)
    reader.start()
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError("queue run did not finish in time")
        peak = max(peak, _hwm_mb(proc.pid) or 0.0)
        time.sleep(0.01)
    reader.join(10)
    return proc.returncode, peak, "".join(out)


def test_queue_run_against_a_1_5_gb_answer_stays_under_300_mb(hostile_node, isolated_home, tmp_path):
    config = tmp_path / "one.yaml"
    config.write_text(PipelineConfig().with_changes({"txt2img.prompt": "a cat", "txt2img.steps": 2})
                      .to_yaml(), encoding="utf-8")
    assert main(["queue", "add", str(config), "--output", str(tmp_path / "out")]) == 0
    env = {**os.environ, "STABLENEW_HOME": str(isolated_home)}
    code, peak_mb, out = run_measured(
        [sys.executable, "-m", "stablenew", "queue", "run", "--node", hostile_node, "--until-empty"], env)
    print(f"RESULT queue_run_peak_rss_mb={peak_mb:.0f}")
    assert code == 1 and "FAILED" in out and "much larger answer" in out, out
    assert peak_mb < LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"
