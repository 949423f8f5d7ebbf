"""Ctrl+C stops everything of ours on the server before the CLI exits, and nothing of anyone
else's; `queue run` stops cleanly on SIGINT/SIGTERM in every mode, leaving items queued."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from stablenew.pipeline.config import PipelineConfig
from tests.fakes.sdwebui import FakeSDWebUI

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def cli(*args: str, home: Path) -> subprocess.Popen:
    env = {**os.environ, "STABLENEW_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "stablenew", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def slow_fake():
    with FakeSDWebUI(step_ms=40).running_in_thread() as fake:
        yield fake


def our_task_ids(fake) -> list[str]:
    return [r.payload.get("force_task_id") for r in fake.requests_to("/sdapi/v1/txt2img")
            if r.payload.get("prompt") != "theirs"]


def test_ctrl_c_on_run_interrupts_our_queued_request_and_not_theirs(slow_fake, tmp_path, isolated_home):
    fake = slow_fake
    config = tmp_path / "four.yaml"
    config.write_text(PipelineConfig().with_changes(
        {"txt2img.prompt": "ours", "txt2img.steps": 25, "txt2img.batch_count": 4}).to_yaml(),
        encoding="utf-8")
    proc = cli("run", str(config), "--node", fake.url, "--out", str(tmp_path / "out"), "--quiet",
               home=isolated_home)
    try:
        wait_for(lambda: len(our_task_ids(fake)) >= 2 and fake.current_task is not None,
                 what="one request running and one queued")
        theirs: list[httpx.Response] = []
        other = threading.Thread(target=lambda: theirs.append(httpx.post(
            fake.url + "/sdapi/v1/txt2img", json={"prompt": "theirs", "steps": 25,
                                                   "force_task_id": "task(theirs)"}, timeout=60)))
        other.start()
        wait_for(lambda: "task(theirs)" in fake._pending, what="their request queued")
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    ours = set(our_task_ids(fake)[:2])
    # Before the CLI exited, both of ours were interrupted: the running one and the queued one.
    assert ours <= set(fake.interrupts), (fake.interrupts, ours)
    assert "Stopping 1 request of ours still on the server" in err
    assert "task(theirs)" not in fake.interrupts
    other.join(30)
    assert theirs and theirs[0].status_code == 200 and theirs[0].json()["images"]
    assert len(our_task_ids(fake)) == 2  # nothing more of ours was sent
    # The run is a queue job: what Ctrl+C stopped is cancelled, not left to run later.
    from stablenew.cluster.queue_store import QueueStore
    from stablenew.storage.paths import AppPaths

    with QueueStore(AppPaths.default().database_file) as store:
        states = [i.state.value for i in store.reads.items()]
    assert len(states) == 4 and "queued" not in states and "running" not in states, states


@pytest.mark.parametrize("mode", ["cluster", "single"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_queue_run_stops_cleanly_on_a_signal_in_every_mode(slow_fake, tmp_path, isolated_home, mode, sig):
    from stablenew.cli import main
    from stablenew.cluster.jobs import ItemState
    from stablenew.cluster.queue_store import QueueStore

    fake = slow_fake
    config = tmp_path / "six.yaml"
    config.write_text(PipelineConfig().with_changes(
        {"txt2img.prompt": "ours", "txt2img.steps": 25, "txt2img.batch_count": 6}).to_yaml(),
        encoding="utf-8")
    assert main(["queue", "add", str(config), "--output", str(tmp_path / "out")]) == 0
    assert main(["nodes", "add", "den", fake.url, "--no-probe"]) == 0
    args = ["queue", "run", "--until-empty"] + (["--single"] if mode == "single" else [])
    if mode == "single":
        (isolated_home / "config" / "settings.yaml").write_text(f"version: 2\nserver_url: {fake.url}\n")
    proc = cli(*args, home=isolated_home)
    try:
        wait_for(lambda: fake.current_task is not None, what="the first image running")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert "Stopping…" in err and "went back in the queue" in out
    with QueueStore(isolated_home / "data" / "stablenew.db") as store:
        (job,) = store.reads.list_jobs()
        states = [item.state for item in store.reads.items(job.id)]
    assert ItemState.queued in states
    assert set(states) <= {ItemState.queued, ItemState.done}, states
    wait_for(lambda: fake.current_task is None, timeout=5, what="our running image stopped")


def test_queue_run_until_empty_says_what_it_waits_for_when_every_node_is_down(tmp_path, isolated_home):
    from stablenew.cli import main

    config = tmp_path / "one.yaml"
    config.write_text(PipelineConfig().with_changes({"txt2img.prompt": "ours"}).to_yaml(), encoding="utf-8")
    assert main(["queue", "add", str(config), "--output", str(tmp_path / "out")]) == 0
    assert main(["nodes", "add", "den", "http://127.0.0.1:9", "--no-probe"]) == 0
    proc = cli("queue", "run", "--until-empty", home=isolated_home)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("Waiting for a node" in line for line in lines), timeout=30,
                 what="a word about what the run waits for")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said = next(line for line in lines if "Waiting for a node" in line)
    assert ("Waiting for a node to answer. den: No Stable Diffusion server answers at "
            "http://127.0.0.1:9") in said
    assert "gives up in" in said and "queue is kept" in said
    assert proc.returncode == 130
