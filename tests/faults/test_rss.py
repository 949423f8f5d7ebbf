"""`stablenew queue run` against a node that answers with 1.5 GB stays under 300 MB of memory
(peak resident set of the process, measured by the kernel)."""

from __future__ import annotations

import os
import subprocess
import sys
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


#: Runs `python -m stablenew ARGS` and, as it exits, prints the process's own peak resident set
#: (VmHWM, counted from its exec). wait4's ru_maxrss is no use here: Linux carries the parent's
#: resident set over the fork into it, so inside a long test session it measured pytest itself.
_MEASURED = """
import atexit, runpy, sys
def peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                print("PEAK_RSS_KB", line.split()[1], file=sys.stderr, flush=True)
atexit.register(peak)
sys.argv = ["stablenew", *sys.argv[1:]]
runpy.run_module("stablenew", run_name="__main__", alter_sys=True)
"""


def run_measured(args: list[str], env: dict[str, str], timeout: float = 240.0) -> tuple[int, float, str]:
    """Exit code, peak RSS in MB of `stablenew ARGS` (that process alone) and its output."""
    proc = subprocess.run([sys.executable, "-c", _MEASURED, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    marks = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB")]
    assert marks, f"no peak reported: {proc.stderr[-2000:]}"
    return proc.returncode, int(marks[-1]) / 1024, proc.stdout + proc.stderr


def test_queue_run_against_a_1_5_gb_answer_stays_under_300_mb(hostile_node, isolated_home, tmp_path):
    config = tmp_path / "one.yaml"
    config.write_text(PipelineConfig().with_changes({"txt2img.prompt": "a cat", "txt2img.steps": 2})
                      .to_yaml(), encoding="utf-8")
    assert main(["queue", "add", str(config), "--output", str(tmp_path / "out")]) == 0
    env = {**os.environ, "STABLENEW_HOME": str(isolated_home)}
    code, peak_mb, out = run_measured(
        ["queue", "run", "--node", hostile_node, "--until-empty"], env)
    print(f"RESULT queue_run_peak_rss_mb={peak_mb:.0f}")
    assert code == 1 and "FAILED" in out and "much larger answer" in out, out
    assert peak_mb < LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"
