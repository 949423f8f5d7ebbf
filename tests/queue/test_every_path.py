"""One way to run work: `stablenew run` is an interactive queue job, and every headless path
(`run`, `queue run` on one node or the cluster) records each saved image for learning."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew.cli import main
from stablenew.cluster.jobs import INTERACTIVE_PRIORITY, ItemState, output_name_prefix
from stablenew.cluster.queue_store import QueueStore
from stablenew.learning.store import LearningStore
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, save_settings
from tests.fakes.sdwebui import FakeSDWebUI


def _config(tmp_path: Path, count: int = 2) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(PipelineConfig().with_changes({
        "txt2img.prompt": "a lighthouse", "txt2img.steps": 2, "txt2img.width": 64,
        "txt2img.height": 64, "txt2img.seed": 5, "txt2img.batch_count": count}).to_yaml(),
        encoding="utf-8")
    return path


def _recorded(db: Path) -> list[str]:
    with LearningStore(db) as store:
        return sorted(str(r.path) for r in store.records())


def test_run_is_an_interactive_queue_job_and_records_each_image(fake_sdwebui_thread, tmp_path,
                                                                 capsys):
    code = main(["run", str(_config(tmp_path)), "--node", fake_sdwebui_thread.url, "--kind", "a1111",
                 "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = sorted(captured.out.split())
    assert len(printed) == 2 and "2 images saved" in captured.err
    assert "Run " in captured.err and "2 images, stages txt2img" in captured.err
    db = AppPaths.default().database_file
    with QueueStore(db) as store:
        (job,) = store.reads.list_jobs()
        items = store.reads.items(job.id)
    assert job.priority == INTERACTIVE_PRIORITY and job.node_pin == fake_sdwebui_thread.url
    assert [i.state for i in items] == [ItemState.done, ItemState.done]
    assert sorted(o for i in items for o in i.outputs) == printed
    assert _recorded(db) == printed


def test_run_records_nothing_when_learning_is_off(fake_sdwebui_thread, tmp_path, capsys):
    paths = AppPaths.default()
    save_settings(paths, AppSettings(learning_mode="off"))
    assert main(["run", str(_config(tmp_path, 1)), "--node", fake_sdwebui_thread.url, "--kind",
                 "a1111", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert capsys.readouterr().out.strip()
    assert _recorded(paths.database_file) == []


def test_run_recovers_what_a_killed_run_left_in_flight(fake_sdwebui_thread, tmp_path, capsys):
    """A run killed mid-image left its item running and a torn file: the next run gives the
    image back to the queue and removes the file (as `queue run` would)."""
    db = AppPaths.default().database_file
    left = tmp_path / "left"
    with QueueStore(db) as store:
        store.add_job(PipelineConfig().with_changes({"txt2img.prompt": "killed"}),
                      output_dir=left, node_pin="elsewhere")
        claim = store.claim_next("elsewhere", start=True)
    assert claim is not None
    left.mkdir()
    torn = left / f"{output_name_prefix(claim.item, claim.job)}-0001.png"
    torn.write_bytes(b"half an image")
    assert main(["run", str(_config(tmp_path, 1)), "--node", fake_sdwebui_thread.url, "--kind",
                 "a1111", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    with QueueStore(db) as store:
        assert store.reads.get_item(claim.item.id).state is ItemState.queued
        jobs = {j.id: j for j in store.reads.list_jobs()}
    assert not torn.exists()
    # Only its own job ran: the recovered image waits for its node, untouched.
    assert jobs[claim.job.id].counts.done == 0


def test_queue_run_records_each_image_without_learn(fake_sdwebui_thread, tmp_path, capsys):
    db = tmp_path / "q.db"
    assert main(["queue", "--db", str(db), "add", str(_config(tmp_path, 3))]) == 0
    assert main(["queue", "--db", str(db), "run", "--node", fake_sdwebui_thread.url, "--until-empty",
                 "--quiet"]) == 0
    with QueueStore(db) as store:
        outputs = sorted(o for i in store.reads.items() for o in i.outputs)
    assert len(outputs) == 3
    assert _recorded(db) == outputs


@pytest.fixture
def two_nodes():
    with FakeSDWebUI().running_in_thread() as one, FakeSDWebUI().running_in_thread() as two:
        yield one, two


def test_queue_run_on_the_cluster_records_each_image(two_nodes, tmp_path, capsys):
    nodes = tmp_path / "nodes.yaml"
    for name, fake in zip(("one", "two"), two_nodes, strict=True):
        assert main(["nodes", "--nodes", str(nodes), "add", name, fake.url, "--no-probe"]) == 0
    db = tmp_path / "q.db"
    assert main(["queue", "--db", str(db), "add", str(_config(tmp_path, 4))]) == 0
    assert main(["queue", "--db", str(db), "run", "--nodes", str(nodes), "--until-empty",
                 "--quiet", "--backoff", "0.01"]) == 0
    with QueueStore(db) as store:
        outputs = sorted(o for i in store.reads.items() for o in i.outputs)
    assert len(outputs) == 4
    assert _recorded(db) == outputs
