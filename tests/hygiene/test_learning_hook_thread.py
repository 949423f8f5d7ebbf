"""The learning record hook does no work on the calling (Qt) thread: building the record (a
full config dump and hash) and storing it both happen on the store's writer thread."""

from __future__ import annotations

import asyncio
import threading
import time

from stablenew.controller.learning_controller import LearningController, LearningMode
from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore
from tests.learning.helpers import image_record


async def test_the_hook_builds_and_stores_the_record_off_the_calling_thread(tmp_path, qapp,
                                                                            monkeypatch):
    built_on: list[threading.Thread] = []
    build = LearningRecord.from_image_record.__func__

    def spying_build(cls, image, **kwargs):
        built_on.append(threading.current_thread())
        return build(cls, image, **kwargs)

    monkeypatch.setattr(LearningRecord, "from_image_record", classmethod(spying_build))
    ctl = LearningController(tmp_path / "db.sqlite", mode=LearningMode.passive,
                             remember_mode=False)
    stored: list[LearningRecord] = []
    ctl.record_stored.connect(stored.append)
    try:
        images = [image_record(tmp_path / "out", i) for i in range(20)]
        started = time.perf_counter()
        for image in images:
            ctl.on_image_record(image)
        per_call_ms = (time.perf_counter() - started) / len(images) * 1000
        await asyncio.wait_for(ctl.wait_idle(10), 10)
        assert len(stored) == 20
        assert built_on and threading.current_thread() not in built_on
        assert per_call_ms < 5, per_call_ms  # only queued here (measured ~0.05 ms)
    finally:
        await ctl.aclose()
    with LearningStore(tmp_path / "db.sqlite") as store:
        assert sorted(r.path for r in store.records()) == sorted(str(i.path) for i in images)


async def test_a_record_that_cannot_be_built_is_logged_not_raised(tmp_path, qapp, monkeypatch,
                                                                  caplog):
    def broken(cls, image, **kwargs):
        raise ValueError("no config")

    monkeypatch.setattr(LearningRecord, "from_image_record", classmethod(broken))
    ctl = LearningController(tmp_path / "db.sqlite", mode=LearningMode.passive,
                             remember_mode=False)
    errors, stored = [], []
    ctl.error_changed.connect(errors.append)
    ctl.record_stored.connect(stored.append)
    try:
        ctl.on_image_record(image_record(tmp_path / "out", 0))
        await asyncio.wait_for(ctl.wait_idle(10), 10)
    finally:
        await ctl.aclose()
    assert stored == [] and errors == []
    assert "learning record for" in caplog.text
