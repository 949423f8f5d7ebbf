"""The acceptance crash test: `stablenew queue run` killed with SIGKILL mid-batch, restarted:
every image exists exactly once, every item is done, no duplicate records, no torn database."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stablenew.cluster.jobs import ItemState
from stablenew.cluster.queue_store import QueueStore
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.paths import AppPaths
from tests.fakes.sdwebui import FakeSDWebUI
from tests.queue.helpers import kill_after

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 60


def _run_queue(url: str, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "STABLENEW_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "stablenew", "queue", "run", "--node", url, "--until-empty",
         "--quiet", "--learn", "--backoff", "0.05"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_mid_batch_then_restart_finishes_every_image_exactly_once(isolated_home):
    paths = AppPaths.default()
    out = isolated_home / "outputs" / "crash"
    config = PipelineConfig().with_changes({
        "txt2img.prompt": "a lighthouse at night", "txt2img.steps": 4, "txt2img.width": 64,
        "txt2img.height": 64, "txt2img.sampler": "Euler a", "txt2img.scheduler": "Automatic"})
    with QueueStore(paths.database_file) as store:
        job = store.add_job(config, count=TOTAL, name="crash", output_dir=out)

    # A few ms per step keeps the batch long enough to kill it in the middle.
    with FakeSDWebUI(step_ms=3).running_in_thread() as fake:
        proc = _run_queue(fake.url, isolated_home)
        killed_at = kill_after(proc, paths.database_file, 20, timeout=30, what="the queue")
        assert 20 <= killed_at < TOTAL, f"killed after {killed_at}: not mid-batch"

        restart = _run_queue(fake.url, isolated_home)
        stdout, stderr = restart.communicate(timeout=60)
        assert restart.returncode == 0, stdout + stderr
        rendered = fake.images_generated

    with QueueStore(paths.database_file) as store:
        assert store.reads.integrity_ok(), "torn database"
        items = store.reads.items(job.id)
        assert len(items) == TOTAL
        assert all(i.state is ItemState.done for i in items), [i for i in items if i.state != "done"]
        outputs = [o for i in items for o in i.outputs]
        assert len(outputs) == TOTAL and len(set(outputs)) == TOTAL
        assert all(Path(o).is_file() for o in outputs)
    assert rendered >= TOTAL
    print(f"killed at {killed_at} done, {rendered} images rendered in all")
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(Path(o).name for o in outputs), "every output exactly once, nothing else"
    assert len(list((out / ".thumbnails").glob("*.jpg"))) == TOTAL
    assert not [p for p in out.rglob(".*") if p.is_file()], "no torn temp files left"
    for path in out.glob("*.png"):
        assert path.read_bytes().endswith(b"IEND\xaeB`\x82"), f"{path.name} is torn"

    con = sqlite3.connect(paths.database_file)
    try:
        rows = con.execute("SELECT path FROM learning_records").fetchall()
        assert sorted(r[0] for r in rows) == sorted(outputs), "one learning record per image"
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="Ctrl+C cannot be sent to a child process this way on Windows")
def test_ctrl_c_stops_cleanly_and_gives_the_running_images_back(isolated_home):
    import signal

    paths = AppPaths.default()
    out = isolated_home / "outputs" / "stop"
    config = PipelineConfig().with_changes({
        "txt2img.prompt": "a slow lighthouse", "txt2img.steps": 40, "txt2img.width": 64,
        "txt2img.height": 64, "txt2img.sampler": "Euler a", "txt2img.scheduler": "Automatic"})
    with QueueStore(paths.database_file) as store:
        job = store.add_job(config, count=3, name="stop", output_dir=out)
    with FakeSDWebUI(step_ms=50).running_in_thread() as fake:
        proc = _run_queue(fake.url, isolated_home)
        try:
            deadline = time.monotonic() + 30
            while fake.current_task is None:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "nothing started"
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        assert proc.returncode == 130, stdout + stderr
        assert "went back in the queue" in stdout
        assert fake.interrupts, "the server's job was interrupted, not left running"
    with QueueStore(paths.database_file) as store:
        items = store.reads.items(job.id)
        assert [(i.state, i.attempts) for i in items] == [(ItemState.queued, 0)] * 3
        assert store.reads.integrity_ok()
    assert not list(out.glob("*.png")), "no partial image of a stopped item stays behind"
