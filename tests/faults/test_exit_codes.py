"""A config the server cannot run is exit 2 before anything starts; every command's --help
documents its exit codes."""

from __future__ import annotations

import pytest

from stablenew.cli import build_parser, main
from tests.fakes.sdwebui import FakeSDWebUI


@pytest.fixture
def fake():
    with FakeSDWebUI(step_ms=1).running_in_thread() as served:
        yield served


@pytest.mark.parametrize(("extra", "words"), [
    ("txt2img:\n  checkpoint: nope_v9.safetensors\n", "no model named 'nope_v9.safetensors'"),
    ("txt2img:\n  prompt: x\nupscale:\n  enabled: true\n  upscaler: Mystery 8x\n",
     "no upscaler named 'Mystery 8x'"),
])
def test_a_config_the_server_cannot_run_is_exit_2_before_anything_starts(fake, tmp_path, capsys, extra,
                                                                         words):
    config = tmp_path / "cfg.yaml"
    config.write_text("version: 1\n" + extra, encoding="utf-8")
    code = main(["run", str(config), "--node", fake.url, "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert words in err and "It has: " in err
    assert "Run " not in err  # no run header: nothing started
    assert fake.requests_to("/sdapi/v1/txt2img") == []
    assert fake.requests_to("/sdapi/v1/extra-single-image") == []
    assert not (tmp_path / "out").exists()


def commands(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                has_verbs = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
                if has_verbs:
                    yield from commands(sub, (*prefix, name))
                else:
                    yield (*prefix, name), sub


def test_every_command_documents_its_exit_codes():
    undocumented = [" ".join(name) for name, sub in commands(build_parser())
                    if "Exit codes:" not in (sub.epilog or "")]
    assert undocumented == []
