"""`make run` checks that Qt's xcb plugin can load, and names the packages to install if not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import check_qt

# What ldd printed for PySide6's libqxcb.so on a Debian 12 machine without the xcb utilities.
LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd6b9f2000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f2a1c000000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-weird.so.9 => not found
"""


@pytest.fixture
def fake_ldd(tmp_path: Path) -> Path:
    """An `ldd` that prints the recorded output, run as a real program."""
    recorded = tmp_path / "ldd.txt"
    recorded.write_text(LDD_OUTPUT, encoding="utf-8")
    script = tmp_path / "ldd"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.stdout.write(open({str(recorded)!r}).read())\n",
                      encoding="utf-8")
    script.chmod(0o755)
    return script


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check is for Linux")
def test_missing_libraries_become_one_apt_command(fake_ldd, tmp_path):
    missing = check_qt.check(tmp_path / "libqxcb.so", ldd=str(fake_ldd))
    assert missing == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1",
                       "libxcb-weird.so.9"]
    text = check_qt.advice(missing)
    assert "    sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1\n" in text
    assert "libxcb-weird.so.9" in text.splitlines()[-2], "a library without a known package is named"


def test_nothing_missing_and_no_ldd_pass(tmp_path):
    assert check_qt.missing_libraries("\tlibxcb.so.1 => /lib/libxcb.so.1 (0x1)\n") == []
    assert check_qt.check(tmp_path / "libqxcb.so", ldd=str(tmp_path / "no-such-ldd")) == []


def test_offscreen_and_other_platforms_are_not_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert check_qt.main([str(tmp_path / "libqxcb.so")]) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the check is for Linux")
def test_make_run_runs_the_check_before_the_app():
    dry = subprocess.run(["make", "-n", "run"], cwd=Path(__file__).parents[2], capture_output=True,
                         text=True, check=False)
    assert dry.stdout.index("-m tools.check_qt") < dry.stdout.index(".venv/bin/stablenew"), dry.stdout
