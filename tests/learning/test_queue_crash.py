"""A learning run is a queue job: the window killed with SIGKILL mid-run, `stablenew queue run`
finishes it like any batch, every image keeps its learning run id, and opening the run shows
the whole grid — recorded once per image, no longer "running"."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from stablenew.cluster.jobs import ItemState, JobKind
from stablenew.cluster.queue_store import QueueStore
from stablenew.learning.runs import RunState
from stablenew.learning.store import LearningStore
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, save_settings
from tests.fakes.sdwebui import FakeSDWebUI
from tests.queue.helpers import kill_after

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 12  # 4 values x 3 seeds


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "STABLENEW_HOME": str(home), "PYTHONPATH": str(ROOT),
            "QT_QPA_PLATFORM": "offscreen"}


def _learning_rows(db: Path, run_id: str) -> list[tuple[str, str]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT path, variant_id FROM learning_records WHERE "
                           "learning_run_id = ?", (run_id,)).fetchall()
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.parametrize("learn", [True, False], ids=["queue-run-records", "records-from-pngs"])
def test_sigkill_mid_learning_run_then_the_queue_finishes_it(isolated_home, qtbot, qloop, learn):
    paths = AppPaths.default()
    with FakeSDWebUI(step_ms=3).running_in_thread() as fake:
        save_settings(paths, AppSettings(server_url=fake.url, learning_mode="active"))
        window = subprocess.Popen([sys.executable, "-m", "tests.learning.session_learning_run"],
                                  cwd=ROOT, env=_env(isolated_home), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        killed_at = kill_after(window, paths.database_file, 4, timeout=60,
                               what="the window's learning run")
        assert 4 <= killed_at < TOTAL, f"killed after {killed_at}: not mid-run"
        with QueueStore(paths.database_file) as store:
            (job,) = store.reads.list_jobs()
        assert job.kind is JobKind.learning and job.origin.pack == "Crash"
        run_id = job.origin.learning_run_id
        assert run_id and run_id.startswith("learn-")
        with LearningStore(paths.database_file) as store:
            assert store.load_run(run_id)["state"] == "running", "the kill left it running"

        # Restarted like any queue: the learning run left behind is recovered and finished.
        restart = subprocess.run(
            [sys.executable, "-m", "stablenew", "queue", "run", "--node", fake.url,
             "--until-empty", "--quiet", "--backoff", "0.05", *(["--learn"] if learn else [])],
            cwd=ROOT, env=_env(isolated_home), capture_output=True, text=True, timeout=90)
        assert restart.returncode == 0, restart.stdout + restart.stderr

    with QueueStore(paths.database_file) as store:
        items = store.reads.items(job.id)
    assert len(items) == TOTAL and all(i.state is ItemState.done for i in items)
    outputs = sorted(o for i in items for o in i.outputs)
    assert len(set(outputs)) == TOTAL
    assert sorted(str(p) for p in Path(job.output_dir).glob("*.png")) == outputs

    # The Learning panel opens the run: its grid comes from the records of its images (those
    # the kill kept from being recorded are recorded from their PNGs), and it is settled.
    from stablenew.controller.learning_controller import LearningController

    learning = LearningController(paths.database_file, mode="passive", remember_mode=False)
    shown = []
    learning.runs.run_changed.connect(shown.append)
    try:
        learning.runs.open_run(run_id)
        qtbot.waitUntil(lambda: bool(shown), timeout=10000)
        result = shown[-1]
        assert result.state is RunState.completed, result.message
        assert sorted(c.path for c in result.cells) == outputs
        for cell in result.cells:
            assert f"-{cell.value}-steps-seed-{cell.seed}-" in Path(cell.path).name
    finally:
        closing = asyncio.ensure_future(learning.aclose())
        qtbot.waitUntil(closing.done, timeout=10000)
    rows = _learning_rows(paths.database_file, run_id)
    assert sorted(r[0] for r in rows) == outputs, "every image recorded once, with its run id"
    assert {r[1] for r in rows} == {f"{c}:{r}" for c in range(4) for r in range(3)}
    with LearningStore(paths.database_file) as store:
        assert store.load_run(run_id)["state"] == "completed"
