"""A Run is a queue item: the window killed with SIGKILL mid-Run, the queue run again — every
image of the Run exists exactly once, never with two learning records, as for any batch."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from stablenew.cluster.jobs import ItemState
from stablenew.cluster.queue_store import QueueStore
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, save_settings
from tests.fakes.sdwebui import FakeSDWebUI
from tests.queue.helpers import kill_after

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 30


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "STABLENEW_HOME": str(home), "PYTHONPATH": str(ROOT),
            "QT_QPA_PLATFORM": "offscreen"}


@pytest.mark.slow
def test_sigkill_mid_run_then_the_queue_finishes_it_exactly_once(isolated_home):
    paths = AppPaths.default()
    with FakeSDWebUI(step_ms=3).running_in_thread() as fake:
        save_settings(paths, AppSettings(server_url=fake.url))
        window = subprocess.Popen([sys.executable, "-m", "tests.queue.session_run", str(TOTAL)],
                                  cwd=ROOT, env=_env(isolated_home), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        killed_at = kill_after(window, paths.database_file, 8, timeout=60, what="the window's Run")
        assert 8 <= killed_at < TOTAL, f"killed after {killed_at}: not mid-Run"
        with QueueStore(paths.database_file) as store:
            (job,) = store.reads.list_jobs()
            before = {o for i in store.reads.items(job.id) if i.state is ItemState.done for o in i.outputs}
        assert job.name.startswith("Run: ") and job.node_pin is not None

        # Restarted like any queue: the Run left behind is recovered and finished.
        restart = subprocess.run(
            [sys.executable, "-m", "stablenew", "queue", "run", "--node", fake.url, "--until-empty",
             "--quiet", "--learn", "--backoff", "0.05"],
            cwd=ROOT, env=_env(isolated_home), capture_output=True, text=True, timeout=90)
        assert restart.returncode == 0, restart.stdout + restart.stderr

    with QueueStore(paths.database_file) as store:
        assert store.reads.integrity_ok(), "torn database"
        items = store.reads.items(job.id)
        recovered = store.reads.get_job(job.id)
    assert recovered.priority == 0 and recovered.node_pin is None, "it finished as a batch"
    assert len(items) == TOTAL and all(i.state is ItemState.done for i in items)
    outputs = [o for i in items for o in i.outputs]
    assert len(outputs) == TOTAL and len(set(outputs)) == TOTAL
    folder = Path(job.output_dir)
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(Path(o).name for o in outputs), \
        "every image exactly once, nothing else"
    assert not [p for p in folder.rglob(".*") if p.is_file()], "no torn temp files left"
    con = sqlite3.connect(paths.database_file)
    try:
        rows = con.execute("SELECT path FROM learning_records").fetchall()
    finally:
        con.close()
    recorded = [r[0] for r in rows]
    assert len(recorded) == len(set(recorded)), "never two records of one image"
    assert set(recorded) <= set(outputs), "no record of a partial image the restart deleted"
    # The window writes records off its thread: the kill may lose those of the images it had
    # just finished. Every image made after the restart has its record.
    assert set(outputs) - before <= set(recorded)
