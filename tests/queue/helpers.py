"""Queue test helpers: small configs (tiny images, a fixed seed) and killing a worker mid-batch."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

from stablenew.pipeline.config import PipelineConfig


def queue_config(count: int = 1, *, steps: int = 4, prompt: str = "a lighthouse", seed: int = 10
                 ) -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.prompt": prompt, "txt2img.batch_count": count, "txt2img.steps": steps,
        "txt2img.width": 64, "txt2img.height": 64, "txt2img.seed": seed,
        "txt2img.sampler": "Euler a", "txt2img.scheduler": "Automatic"})


def done_items(db: Path) -> int:
    """Items the queue database marks done (0 before the queue has made its tables)."""
    if not db.exists():
        return 0
    con = sqlite3.connect(db, timeout=5)
    try:
        return con.execute("SELECT COUNT(*) FROM queue_items WHERE state = 'done'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def kill_after(proc: subprocess.Popen, db: Path, done: int, *, timeout: float, what: str) -> int:
    """SIGKILL *proc* (no clean-up of any kind) once *done* items are done; returns how many were."""
    try:
        deadline = time.monotonic() + timeout
        while done_items(db) < done:
            assert proc.poll() is None, f"{what} stopped early: {proc.communicate()}"
            assert time.monotonic() < deadline, f"{what} made no progress"
            time.sleep(0.005)
        proc.kill()
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    return done_items(db)


def item_prefixes(folder: Path) -> list[str]:
    """The queue item each PNG in *folder* belongs to (`<item prefix>-0000-<prompt>.png`), sorted."""
    return sorted(p.name.rsplit("-0000", 1)[0] for p in folder.glob("*.png"))
