"""Credentials never go on the command line (where `ps` shows them), and the CLI's login
errors name the CLI's own options."""

from __future__ import annotations

import pytest

from stablenew.cli import main
from tests.fakes.sdwebui import FakeSDWebUI

CONFIG = "version: 1\ntxt2img:\n  prompt: a lighthouse\n  width: 64\n  height: 64\n  steps: 2\n"


@pytest.fixture
def locked():
    with FakeSDWebUI(step_ms=1, auth=("ann", "s3cret")).running_in_thread() as served:
        yield served


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def run(config, node, *extra):
    return main(["run", str(config), "--node", node, "--out", str(config.parent / "out"), "--quiet",
                 *extra])


def test_password_on_the_command_line_is_refused_with_the_way_to_give_it(locked, config, capsys):
    assert run(config, locked.url, "--user", "ann", "--password", "s3cret") == 2
    err = capsys.readouterr().err
    assert "ps" in err and "--password-env" in err
    assert locked.requests == []  # refused before anything was sent


def test_password_from_an_environment_variable(locked, config, capsys, monkeypatch):
    monkeypatch.setenv("SD_PASS", "s3cret")
    assert run(config, locked.url, "--user", "ann", "--password-env", "SD_PASS") == 0, \
        capsys.readouterr().err


def test_an_unset_variable_and_no_terminal_say_what_to_do(locked, config, capsys, monkeypatch):
    monkeypatch.delenv("SD_PASS", raising=False)
    assert run(config, locked.url, "--user", "ann", "--password-env", "SD_PASS") == 2
    assert "SD_PASS: that environment variable is not set" in capsys.readouterr().err
    assert run(config, locked.url, "--user", "ann") == 2  # stdin is not a terminal under pytest
    assert "--password-env" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "words"), [
    (("--user", "ann", "--password-env", "SD_PASS"), "wrong user or password"),
    ((), "wants a user name and password"),
])
def test_a_refused_login_names_the_cli_options_not_the_settings_dialog(locked, config, capsys,
                                                                       monkeypatch, extra, words):
    monkeypatch.setenv("SD_PASS", "guess")
    assert run(config, locked.url, *extra) == 3
    err = capsys.readouterr().err
    assert words in err and "--user NAME and --password-env VARIABLE" in err
    assert "Settings" not in err
