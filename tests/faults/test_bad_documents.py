"""One loader, one error path: unreadable documents give a clear message naming the file, the
line and what to do, in every command; a bad settings file is set aside with a word."""

from __future__ import annotations

import sys

import pytest

from stablenew.cli import main
from stablenew.cluster.queue_store import QueueStore
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.documents import DocumentError, load_yaml_model
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings

CONTROL = b"version: 2\ntheme: dark\x0c\n"


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "cat.yaml"
    path.write_text(PipelineConfig().with_changes({"txt2img.prompt": "a cat"}).to_yaml(), encoding="utf-8")
    return path


def settings_file(isolated_home):
    paths = AppPaths.default()
    paths.settings_file.parent.mkdir(parents=True, exist_ok=True)
    return paths.settings_file


@pytest.mark.parametrize(("raw", "words", "line"), [
    (CONTROL, "control character (form feed", 2),
    # the line counted in characters, not in the bytes of the accented ones before it
    ("# café, crème brûlée, ünïcödé, éèêë\ntheme: dark\x0c\n\n\n\n".encode(),
     "control character (form feed", 2),
    (b"version: 2\n\x00\x01\x02binary", "not a text file", 2),
    ("theme: dark\n".encode("utf-16"), "UTF-16", None),
    ("version: 2\ntheme: \xe9t\xe9\n".encode("latin-1"), "not UTF-8", 2),
])
def test_unreadable_text_is_a_document_error_with_file_line_and_advice(tmp_path, raw, words, line):
    path = tmp_path / "settings.yaml"
    path.write_bytes(raw)
    with pytest.raises(DocumentError) as info:
        load_yaml_model(path, AppSettings)
    text = str(info.value)
    assert words in text and str(path) in text
    assert info.value.line == line
    assert any(advice in text for advice in ("Delete it", "Save it again", "right file"))


@pytest.mark.parametrize(("file", "command"), [
    ("settings.yaml", ["queue", "run", "--node", "http://127.0.0.1:9", "--until-empty"]),
    ("settings.yaml", ["pack", "list"]),
    ("nodes.yaml", ["nodes", "list"]),
    ("nodes.yaml", ["plan"]),
    ("nodes.yaml", ["queue", "run", "--until-empty"]),
])
def test_a_control_character_is_a_clear_message_in_every_command(isolated_home, capsys, file, command):
    path = settings_file(isolated_home).with_name(file)
    path.write_bytes(CONTROL)
    try:
        code = main(command)  # no ReaderError escapes
    except SystemExit as exc:  # as the interpreter does with it: text to stderr, exit 1
        code = 1 if isinstance(exc.code, str) else exc.code
        print(exc.code, file=sys.stderr)
    assert code in (0, 1, 2)
    err = capsys.readouterr().err
    assert "control character (form feed" in err and "line 2" in err


def test_queue_add_refuses_when_the_output_folder_is_lost_and_leaves_the_file(
        isolated_home, capsys, config_file):
    file = settings_file(isolated_home)
    file.write_bytes(CONTROL)
    assert main(["queue", "add", str(config_file)]) == 1
    err = capsys.readouterr().err
    assert "control character" in err and "--output" in err and "line 2" in err
    assert file.read_bytes() == CONTROL  # left for the user to fix, not set aside
    with QueueStore(isolated_home / "data" / "stablenew.db") as store:
        assert store.reads.list_jobs() == []


def test_queue_add_keeps_the_users_output_folder_and_says_what_it_set_aside(
        isolated_home, capsys, config_file, tmp_path):
    file = settings_file(isolated_home)
    mine = tmp_path / "my pictures"
    file.write_text(f"version: 2\ntheme: purple\noutput_dir: {mine}\n", encoding="utf-8")
    assert main(["queue", "add", str(config_file)]) == 0
    out, err = capsys.readouterr()
    assert "set aside and kept as" in err and "theme" in err.lower() and "output folder" in err
    assert not file.exists()
    with QueueStore(isolated_home / "data" / "stablenew.db") as store:
        (job,) = store.reads.list_jobs()
        assert job.output_dir.startswith(str(mine))


@pytest.mark.parametrize("raw", [bytes(range(256)) * 4, b"\xff\xfe\x00\x00junk",
                                 "prompt: caf\xe9".encode("latin-1")])
def test_queue_add_of_an_unreadable_file_is_a_clear_error(tmp_path, capsys, raw):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(raw)
    assert main(["queue", "add", str(bad), "--output", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
