"""`stablenew queue run` against a node that answers with 1.5 GB stays under 300 MB of memory
(peak resident set of the process, measured by the kernel)."""

from __future__ import annotations

import os
import subprocess
import sys
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


def run_measured(args: list[str], env: dict[str, str], timeout: float = 240.0) -> tuple[int, float, str]:
    """Exit code, peak RSS in MB (from wait4's rusage: this child alone) and its output."""
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            out = proc.stdout.read() if proc.stdout else ""
            return proc.returncode, usage.ru_maxrss / 1024, out
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError("queue run did not finish in time")


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
