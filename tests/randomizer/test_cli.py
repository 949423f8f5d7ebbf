"""`stablenew variants`: count first, then prompts; template errors exit non-zero."""

from __future__ import annotations

import subprocess
import sys

from stablenew.cli import main


def run(capsys, *args):
    code = main(["variants", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_prints_exact_count_then_prompts(capsys, wildcards):
    code, lines, _ = run(capsys, "a {red|blue} __people/names__", "--wildcards", str(wildcards))
    assert code == 0
    assert lines == ["count=4", "a red Ada", "a red Grace", "a blue Ada", "a blue Grace"]


def test_count_only_and_limit(capsys):
    template = " ".join("{" + "|".join(str(j) for j in range(10)) + "}" for _ in range(12))
    code, lines, _ = run(capsys, template, "--count-only")
    assert (code, lines) == (0, ["count=1000000000000"])
    code, lines, _ = run(capsys, template, "--limit", "3")
    assert lines[0] == "count=1000000000000" and len(lines) == 4


def test_random_mode_is_seeded(capsys):
    args = ("{a|b|c|d|e|f}{1|2|3|4|5|6}", "--mode", "random", "--limit", "5", "--seed", "9")
    _, first, _ = run(capsys, *args)
    _, second, _ = run(capsys, *args)
    assert first == second
    assert first[0] == "count=5" and len(set(first[1:])) == 5


def test_template_error_exits_non_zero_with_position(capsys):
    code, lines, err = run(capsys, "a {red|blue")
    assert code != 0 and lines == []
    assert "line 1, column 3" in err and "never closed" in err


def test_missing_wildcard_names_it(capsys, wildcards):
    code, _, err = run(capsys, "__nothing_here__", "--wildcards", str(wildcards))
    assert code != 0 and "__nothing_here__" in err


def test_runs_as_a_command():
    result = subprocess.run([sys.executable, "-m", "stablenew", "variants", "{x|y}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["count=2", "x", "y"]


def test_prompts_a_console_cannot_encode_do_not_crash():
    import os

    env = dict(os.environ, PYTHONIOENCODING="cp1252")
    result = subprocess.run([sys.executable, "-m", "stablenew", "variants", "{猫|犬} ×"],
                            capture_output=True, text=True, timeout=60, env=env,
                            encoding="cp1252", errors="replace")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "count=2"
    assert len(result.stdout.splitlines()) == 3


def test_the_wildcards_folder_defaults_to_the_one_in_settings(capsys, wildcards, tmp_path):
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import AppSettings, save_settings

    save_settings(AppPaths.default(), AppSettings(wildcards_dir=str(wildcards)))
    code, lines, _ = run(capsys, "__people/names__")
    assert (code, lines) == (0, ["count=2", "Ada", "Grace"])
    save_settings(AppPaths.default(), AppSettings(wildcards_dir=str(tmp_path / "gone")))
    code, _lines, err = run(capsys, "__people/names__")
    assert code == 2 and "The wildcards folder in Settings" in err and "does not exist" in err
