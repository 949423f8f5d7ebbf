"""`stablenew nodes` and `stablenew plan` headless, against fake servers over real HTTP."""

from __future__ import annotations

import pytest

from stablenew.cli import main
from stablenew.cluster.jobs import ItemState
from stablenew.cluster.nodes import NodeRegistry
from stablenew.cluster.queue_store import QueueStore
from stablenew.cluster.work import GB
from stablenew.pipeline.config import PipelineConfig
from tests.fakes.sdwebui import FakeSDWebUI

XL = "sd_xl_base_1.0.safetensors"
SD15 = "SD15/dreamshaper_8.safetensors"


def cfg(count: int, checkpoint: str, size: int = 512) -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.prompt": "a lighthouse", "txt2img.batch_count": count, "txt2img.steps": 20,
        "txt2img.width": size, "txt2img.height": size, "txt2img.seed": 1,
        "txt2img.checkpoint": checkpoint, "txt2img.sampler": "Euler a"})


@pytest.fixture
def lab():
    with FakeSDWebUI(vram_total=16 * GB, checkpoints=(XL, SD15)).running_in_thread() as big, \
            FakeSDWebUI(vram_total=6 * GB, checkpoints=(SD15,)).running_in_thread() as small:
        yield big, small


def test_nodes_add_list_probe_remove_without_showing_passwords(lab, tmp_path, capsys, monkeypatch):
    big, small = lab
    nodes = tmp_path / "nodes.yaml"
    monkeypatch.setenv("BIG_PASSWORD", "hunter2")
    assert main(["nodes", "--nodes", str(nodes), "add", "big", big.url, "--user", "me",
                 "--password-env", "BIG_PASSWORD"]) == 0
    assert main(["nodes", "--nodes", str(nodes), "add", "small", small.url, "--tier", "2"]) == 0
    out = capsys.readouterr().out
    assert "big: ok — a1111" in out and "16 GB" in out and "2 checkpoints" in out
    assert NodeRegistry.load(nodes).get("big").auth == ("me", "hunter2")
    assert main(["nodes", "--nodes", str(nodes), "list"]) == 0
    assert main(["nodes", "--nodes", str(nodes), "probe"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "small" in out and "yes" in out
    assert main(["nodes", "--nodes", str(nodes), "add", "big", small.url]) == 1
    assert "already a node called 'big'" in capsys.readouterr().err
    assert main(["nodes", "--nodes", str(nodes), "remove", "small"]) == 0
    assert [n.name for n in NodeRegistry.load(nodes)] == ["big"]


def test_a_node_that_does_not_answer_is_reported_plainly(tmp_path, capsys):
    nodes = tmp_path / "nodes.yaml"
    # Port 9 (discard) on 127.0.0.1: nothing listens there.
    assert main(["nodes", "--nodes", str(nodes), "add", "gone", "http://127.0.0.1:9",
                 "--kind", "a1111"]) == 1
    out = capsys.readouterr().out
    assert "gone: unhealthy" in out


def test_plan_shows_the_table_and_the_unassignable_without_sending_anything(lab, tmp_path, capsys):
    big, small = lab
    nodes = tmp_path / "nodes.yaml"
    for name, fake in (("big", big), ("small", small)):
        assert main(["nodes", "--nodes", str(nodes), "add", name, fake.url, "--no-probe"]) == 0
    db = tmp_path / "q.db"
    with QueueStore(db) as store:
        store.add_job(cfg(2, XL, 1024), name="xl", output_dir=tmp_path / "o")
        store.add_job(cfg(4, SD15), name="sd15", output_dir=tmp_path / "o")
        store.add_job(cfg(1, "flux1-dev.safetensors"), name="flux", output_dir=tmp_path / "o")
    capsys.readouterr()
    assert main(["plan", "--db", str(db), "--nodes", str(nodes)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines()
             if line[:1].strip() and "/" in line.split()[0]]
    assert len(lines) == 6
    assert all(" big " in line for line in lines if " xl " in line)
    assert {line.split()[2] for line in lines if " sd15 " in line} <= {"big", "small"}
    assert "Makespan" in out and "1 image no node can take" in out
    assert "does not have the model 'flux1-dev.safetensors'" in out
    assert big.requests_to("/sdapi/v1/txt2img") == [] == small.requests_to("/sdapi/v1/txt2img")
    with QueueStore(db) as store:
        assert {i.state for i in store.reads.items()} == {ItemState.queued}


def test_the_queue_runs_on_the_cluster_and_keeps_learned_speeds_for_the_plan(lab, tmp_path, capsys):
    from stablenew.cli.nodes import cluster_nodes, run_queue_on_cluster
    from stablenew.cluster.estimates import load_speeds, speeds_file

    big, small = lab
    nodes_file = tmp_path / "nodes.yaml"
    assert cluster_nodes(nodes_file) == []  # no file: single-node mode
    for name, fake in (("big", big), ("small", small)):
        assert main(["nodes", "--nodes", str(nodes_file), "add", name, fake.url, "--no-probe"]) == 0
    events: list = []
    with QueueStore(tmp_path / "q.db") as store:
        store.add_job(cfg(3, XL, 256).with_changes({"txt2img.steps": 2}), output_dir=tmp_path / "o")
        store.add_job(cfg(3, SD15, 64).with_changes({"txt2img.steps": 2}), output_dir=tmp_path / "o")
        summary = run_queue_on_cluster(store, cluster_nodes(nodes_file), until_empty=True,
                                       on_event=events.append, backoff=0.01,
                                       runner_kwargs={"thumbnails": False}, data_dir=tmp_path)
        assert {i.state for i in store.reads.items()} == {ItemState.done}
        assert {i.node for i in store.reads.items() if "xl" in store.reads.config_for(i).txt2img.checkpoint} \
            == {"big"}
    assert summary.done == 6 and not summary.stalled
    out = capsys.readouterr().out
    assert "big: ready" in out and "Per node:" in out
    learned = load_speeds(speeds_file(tmp_path))
    assert learned["big"] and all(v > 0 for v in learned["big"].values())


def test_queue_run_uses_the_cluster_when_the_nodes_file_has_nodes(lab, tmp_path, capsys):
    big, small = lab
    nodes_file = tmp_path / "nodes.yaml"
    for name, fake in (("big", big), ("small", small)):
        assert main(["nodes", "--nodes", str(nodes_file), "add", name, fake.url, "--no-probe"]) == 0
    db = tmp_path / "q.db"
    with QueueStore(db) as store:
        store.add_job(cfg(2, XL, 256).with_changes({"txt2img.steps": 2}), output_dir=tmp_path / "o")
        store.add_job(cfg(4, SD15, 64).with_changes({"txt2img.steps": 2}), output_dir=tmp_path / "o")
        store.add_job(cfg(1, "flux1-dev.safetensors", 64), output_dir=tmp_path / "o")
    capsys.readouterr()
    code = main(["queue", "--db", str(db), "run", "--nodes", str(nodes_file), "--until-empty",
                 "--backoff", "0.01"])
    out = capsys.readouterr().out
    assert code == 1  # the flux image failed: no node has the model
    assert "Running the queue on 2 nodes: big, small" in out
    assert "6 done, 1 failed" in out and "does not have the model 'flux1-dev.safetensors'" in out
    with QueueStore(db) as store:
        states = sorted(i.state.value for i in store.reads.items())
        reads = store.reads
        xl_nodes = {i.node for i in reads.items() if "xl" in reads.config_for(i).txt2img.checkpoint}
    assert states == ["done"] * 6 + ["failed"]
    assert xl_nodes == {"big"}


def test_a_batch_with_the_servers_current_model_does_not_mix_models(tmp_path, capsys):
    """Issue 17 item 4: an A1111 on SDXL and a ComfyUI whose only checkpoint is an SD1.5; 8
    images from one config naming no checkpoint. The model is fixed when the job is added
    (the preferred node's current one, said), and only nodes that have it run the job."""
    from tests.fakes.comfyui import FakeComfyUI

    config = tmp_path / "cfg.yaml"
    config.write_text(PipelineConfig().with_changes({
        "txt2img.prompt": "a lighthouse", "txt2img.steps": 2, "txt2img.width": 64,
        "txt2img.height": 64, "txt2img.seed": 1}).to_yaml(), encoding="utf-8")
    db = tmp_path / "q.db"
    with FakeSDWebUI(step_ms=1, checkpoints=(XL,)).running_in_thread() as sdxl, \
            FakeComfyUI(step_ms=1, checkpoints=("v1-5-pruned-emaonly.safetensors",)
                        ).running_in_thread() as comfy:
        assert main(["nodes", "add", "xl", sdxl.url, "--no-probe"]) == 0
        assert main(["nodes", "add", "comfy", comfy.url, "--kind", "comfyui", "--no-probe"]) == 0
        capsys.readouterr()
        assert main(["queue", "--db", str(db), "add", str(config), "--count", "8"]) == 0
        out = capsys.readouterr().out
        assert f"Model: {XL} (the current model of node 'xl')" in out
        assert main(["queue", "--db", str(db), "run", "--until-empty", "--backoff", "0.01"]) == 0
        with QueueStore(db) as store:
            items = store.reads.items()
            assert {i.state for i in items} == {ItemState.done} and len(items) == 8
            assert {i.node for i in items} == {"xl"}
            assert {store.reads.config_for(i).txt2img.checkpoint for i in items} == {XL}
        assert not comfy.received

