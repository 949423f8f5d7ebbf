"""`stablenew queue` verbs that need no server: add, list, report and the operations."""

from __future__ import annotations

import pytest

from stablenew.cli import main
from stablenew.cluster.jobs import ItemState
from stablenew.cluster.queue_store import QueueStore
from stablenew.pipeline.config import PipelineConfig


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "cat.yaml"
    path.write_text(PipelineConfig().with_changes(
        {"txt2img.prompt": "a cat on a mat", "txt2img.batch_count": 3, "txt2img.seed": 5}).to_yaml(),
        encoding="utf-8")
    return path


def q(*args: str) -> int:
    return main(["queue", *args])


def only_job(store: QueueStore):
    (job,) = store.reads.list_jobs()
    return job


def test_add_list_and_report(config_file, tmp_path, capsys, isolated_home):
    assert q("add", str(config_file), "--output", str(tmp_path / "out")) == 0
    assert "3 images" in capsys.readouterr().out
    assert q("add", str(config_file), "--count", "250", "--name", "many", "--priority", "2") == 0
    with QueueStore(isolated_home / "data" / "stablenew.db") as store:
        jobs = store.reads.list_jobs()
        assert [j.counts.total for j in jobs] == [250, 3]
        assert jobs[0].name == "many" and jobs[0].priority == 2
        assert jobs[1].output_dir.startswith(str(tmp_path / "out"))
        assert [i.seed for i in store.reads.items(jobs[1].id)] == [5, 6, 7]
    capsys.readouterr()
    assert q("list") == 0
    out = capsys.readouterr().out
    assert "0/250" in out and "a cat on a mat" in out and out.index("many") < out.index("a cat")
    assert q("list", jobs[1].id) == 0
    assert f"{jobs[1].id}/3" in capsys.readouterr().out
    assert q("report") == 0
    assert "253 images" in capsys.readouterr().out
    assert q("add", str(config_file), "--count", "1") == 0  # issue 17 item 22: one image
    out = capsys.readouterr().out
    assert ": 1 image," in out and "image(s)" not in out


def test_add_a_preset_file(tmp_path, isolated_home, capsys):
    preset = tmp_path / "portrait.yaml"
    preset.write_text("name: Portrait\nconfig:\n  txt2img:\n    width: 512\n    height: 768\n"
                      "    prompt: a face\n", encoding="utf-8")
    assert q("add", str(preset)) == 0
    with QueueStore(isolated_home / "data" / "stablenew.db") as store:
        job = only_job(store)
        assert job.origin.preset == "Portrait" and job.name == "Portrait"
        assert store.reads.config_for(store.reads.items(job.id)[0]).txt2img.height == 768


def test_bad_file_names_file_line_and_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("txt2img:\n  steps: 9000\n", encoding="utf-8")
    assert q("add", str(bad)) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "line 2" in err and "Steps" in err
    assert q("add", str(tmp_path / "missing.yaml")) == 1
    assert "does not exist" in capsys.readouterr().err
    assert q("add", str(bad), "--count", "0") == 1


def test_operations_from_the_command_line(config_file, isolated_home, capsys):
    q("add", str(config_file))
    q("add", str(config_file), "--name", "second")
    with QueueStore(isolated_home / "data" / "stablenew.db") as store:
        first, second = store.reads.list_jobs()
        assert q("pause") == 0 and store.reads.is_paused()
        assert q("resume") == 0 and not store.reads.is_paused()
        assert q("cancel", f"{first.id}/2") == 0
        assert store.reads.items(first.id)[1].state is ItemState.cancelled
        assert q("cancel", first.id[:6]) == 0
        assert {i.state for i in store.reads.items(first.id)} == {ItemState.cancelled}
        assert q("retry", first.id, "--cancelled") == 0
        assert {i.state for i in store.reads.items(first.id)} == {ItemState.queued}
        assert q("bump", second.id, "--by", "3") == 0
        assert store.reads.list_jobs()[0].id == second.id
        q("cancel", second.id)
        assert q("clear") == 0
        assert [j.id for j in store.reads.list_jobs()] == [first.id]
    capsys.readouterr()
    assert q("cancel", "nothere") == 1
    assert "no job" in capsys.readouterr().err


def test_db_option_and_empty_queue(tmp_path, capsys):
    db = tmp_path / "elsewhere.db"
    assert q("--db", str(db), "list") == 0
    assert "empty" in capsys.readouterr().out
    assert db.exists()


def test_add_a_prompt_pack_keeps_each_prompt_as_a_variant(tmp_path, isolated_home, capsys):
    pack = tmp_path / "animals.txt"
    pack.write_text("# two animals\na red fox\na {small|large} owl\n", encoding="utf-8")
    base = tmp_path / "base.yaml"
    base.write_text(PipelineConfig().with_changes({"txt2img.steps": 12, "txt2img.seed": 9}).to_yaml(),
                    encoding="utf-8")
    assert q("add", str(pack), "--count", "2", "--base", str(base)) == 0, capsys.readouterr().err
    with QueueStore(isolated_home / "data" / "stablenew.db") as store:
        job = only_job(store)
        assert job.origin.pack == "animals" and job.kind.value == "pack"
        items = store.reads.items(job.id)
        configs = [store.reads.config_for(i) for i in items]
        # The owl prompt's {small|large} is expanded by the randomizer: three variants, two
        # images each, seeds counting up within a variant.
        assert [c.txt2img.prompt for c in configs] == [
            "a red fox", "a red fox", "a small owl", "a small owl", "a large owl", "a large owl"]
        assert [i.variant.label for i in items[::2]] == ["a red fox", "a small owl", "a large owl"]
        assert all(i.variant.id.startswith("p") for i in items)
        assert all(b.seed == a.seed + 1 for a, b in zip(items[::2], items[1::2], strict=True))
        assert all(c.txt2img.steps == 12 for c in configs)


def test_a_broken_pack_is_refused_with_where_and_why(tmp_path, capsys):
    pack = tmp_path / "broken.txt"
    pack.write_text("a {fox|\n", encoding="utf-8")
    assert q("add", str(pack)) == 1
    err = capsys.readouterr().err
    assert "broken.txt" in err


def test_a_damaged_database_is_reported_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 500)
    with pytest.raises(SystemExit) as exited:
        q("--db", str(bad), "list")
    assert exited.value.code == 1
    assert "damaged" in capsys.readouterr().err
