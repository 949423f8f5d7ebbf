"""`stablenew run` and `stablenew info` end to end against the A1111 fake server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stablenew.cli import main
from stablenew.pipeline.infotext import read_image_metadata

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
version: 1
txt2img:
  prompt: "a lighthouse, stormy sea"
  negative_prompt: blurry
  width: 64
  height: 64
  steps: 4
  seed: 77
upscale:
  enabled: true
  scale: 2
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_run_saves_images_and_exits_zero(sdwebui_thread, config_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", str(config_file), "--node", sdwebui_thread.url, "--kind", "a1111",
                 "--out", str(out), "--count", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    paths = [Path(line) for line in captured.out.splitlines()]
    assert len(paths) == 2 and all(p.exists() and p.parent.parent == out for p in paths)
    assert "2 images saved" in captured.err
    meta = read_image_metadata(paths[1])
    assert (meta.width, meta.height) == (128, 128) and meta.parsed["Seed"] == "78"
    assert len(sdwebui_thread.requests_to("/sdapi/v1/txt2img")) == 2


def test_info_prints_both_chunks(sdwebui_thread, config_file, tmp_path, capsys):
    assert main(["run", str(config_file), "--node", sdwebui_thread.url, "--out",
                 str(tmp_path / "o"), "--quiet"]) == 0
    image = capsys.readouterr().out.strip()
    assert main(["info", image]) == 0
    text = capsys.readouterr().out
    assert "Prompt: a lighthouse, stormy sea" in text and "Negative prompt: blurry" in text
    assert "StableNew metadata" in text and '"stages": [' in text
    assert "  Size: 64x64" in text
    assert main(["info", image, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["parsed"]["Seed"] == "77" and data["stablenew"]["seed"] == 77


def test_info_on_a_non_image_says_so(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("hello", encoding="utf-8")
    assert main(["info", str(bad)]) == 1
    assert "not an image" in capsys.readouterr().err


def test_bad_config_names_file_line_and_field(config_file, capsys):
    config_file.write_text(CONFIG.replace("steps: 4", "steps: 500"), encoding="utf-8")
    assert main(["run", str(config_file), "--node", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert str(config_file) in err and "line 7" in err and "steps" in err.lower()


def test_bad_count_and_missing_file(config_file, tmp_path, capsys):
    assert main(["run", str(config_file), "--count", "0"]) == 2
    assert "--count 0" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_unreachable_server_exits_three(config_file, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["run", str(config_file), "--node", f"http://127.0.0.1:{port}", "--kind",
                 "a1111"]) == 3
    assert "127.0.0.1" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT, which Windows consoles do differently")
def test_ctrl_c_stops_cleanly(config_file, tmp_path):
    from tests.fakes.sdwebui import FakeSDWebUI

    out = tmp_path / "out"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with FakeSDWebUI(step_ms=100).running_in_thread() as fake:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stablenew", "run", str(config_file), "--node", fake.url,
             "--kind", "a1111", "--out", str(out), "--count", "20"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while fake.current_task is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert fake.current_task is not None, "the run never reached the server"
            time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            sent = time.monotonic()
            stdout, stderr = proc.communicate(timeout=15)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        assert proc.returncode == 130, stderr
        assert took < 5
        assert fake.interrupts and fake.interrupts[0] is not None
        assert "Stopped after" in stderr
    assert not list(out.rglob("*.tmp"))
    assert len(list(out.rglob("*.png"))) == len(stdout.split())


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT, which Windows consoles do differently")
def test_ctrl_c_while_the_server_hangs_on_connect(config_file, tmp_path):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "stablenew", "run", str(config_file), "--node",
             f"http://127.0.0.1:{port}", "--kind", "a1111", "--out", str(tmp_path / "o")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            silent.settimeout(20)
            conn, _ = silent.accept()  # the run is now waiting on the silent server
            time.sleep(0.1)
            assert proc.poll() is None
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=10)
            conn.close()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
    assert proc.returncode == 130 and "Stopped before the run began" in stderr
