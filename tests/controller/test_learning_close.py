"""Closing learning waits for its queued writes off the event loop (the window's Qt thread):
a write may wait for a database another StableNew holds."""

from __future__ import annotations

import asyncio
import threading
import time

from stablenew.controller.learning_controller import LearningController, LearningMode
from tests.learning.helpers import image_record
from tests.loop_lag import LAG_LIMIT_S, LoopLag, WriteLockHolder


async def test_closing_waits_for_a_write_held_up_by_a_busy_database_off_the_loop(tmp_path, qapp):
    db = tmp_path / "db.sqlite"
    learning = LearningController(db, mode=LearningMode.passive, remember_mode=False)
    made = image_record(tmp_path / "out", 0)
    learning.on_image_record(made)
    await learning.wait_idle(10)
    with WriteLockHolder(db) as holder:
        learning.on_outputs_removed([made.path])  # queued in the store's thread: it waits
        threading.Timer(0.6, holder.release).start()
        async with LoopLag() as lag:
            await asyncio.wait_for(learning.aclose(), 20)
        closed = time.monotonic()
    assert lag.longest < LAG_LIMIT_S, f"the loop stood still {lag.longest:.3f} s"
    assert 0 < holder.released_at <= closed, "closed only after the queued write"
