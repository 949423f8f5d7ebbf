"""LearningController over the real runner and a fake server: records, ratings, learning runs."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from stablenew.controller.learning_controller import LearningController, LearningMode
from stablenew.learning.runs import RunState
from stablenew.learning.store import LearningStore
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.records import RunTags
from stablenew.pipeline.runner import PipelineRunner
from tests.learning.conftest import small_config
from tests.learning.test_plans import _diff


async def _settle(controller: LearningController, until=lambda: True, timeout: float = 10.0):
    async def _loop():
        while True:
            await controller.wait_idle(timeout)
            if until():
                return
            await asyncio.sleep(0.01)
    await asyncio.wait_for(_loop(), timeout)


@pytest.fixture
async def controller(tmp_path, sd_backend, qapp):
    async def backend():
        return sd_backend

    ctl = LearningController(tmp_path / "db.sqlite", backend=backend,
                             output_dir=lambda: tmp_path / "out", base_config=small_config,
                             mode=LearningMode.passive, remember_mode=False)
    errors = []
    ctl.error_changed.connect(errors.append)
    ctl.errors_seen = errors
    yield ctl
    await ctl.aclose()


def _store(tmp_path) -> LearningStore:
    return LearningStore(tmp_path / "db.sqlite")


async def test_records_are_written_for_each_output_of_a_run(controller, sd_backend, tmp_path):
    runner = PipelineRunner(tmp_path / "out", record_hooks=[controller.on_image_record])
    config = small_config(**{"txt2img.batch_count": 3, "txt2img.seed": 500})
    result = await asyncio.wait_for(runner.run(config, sd_backend, CancelToken(), None,
                                               tags=RunTags(pack="Foxes")), 20)
    assert len(result.records) == 3
    stored_signals = []
    controller.record_stored.connect(stored_signals.append)
    await _settle(controller)
    with _store(tmp_path) as store:
        records = store.records()
    assert sorted(r.path for r in records) == sorted(str(r.path) for r in result.records)
    assert {r.seed for r in records} == {r.seed for r in result.records}
    for record in records:
        assert record.pack == "Foxes" and record.stages == ("txt2img",)
        assert record.config.txt2img.prompt == "a red fox in the snow"
        assert record.rating is None and record.node
    assert controller.errors_seen == []


async def test_off_writes_nothing(controller, sd_backend, tmp_path):
    controller.set_mode(LearningMode.off)
    runner = PipelineRunner(tmp_path / "out", record_hooks=[controller.on_image_record])
    result = await asyncio.wait_for(runner.run(small_config(), sd_backend, CancelToken()), 20)
    await _settle(controller)
    controller.rate(result.records[0].path, 4)
    await _settle(controller)
    with _store(tmp_path) as store:
        assert store.summary().records == 0
    assert "Learning is off" in controller.errors_seen[-1].message


async def test_rating_and_tagging_through_the_controller_update_the_store(controller, sd_backend,
                                                                          tmp_path):
    runner = PipelineRunner(tmp_path / "out", record_hooks=[controller.on_image_record])
    result = await asyncio.wait_for(runner.run(small_config(), sd_backend, CancelToken()), 20)
    await _settle(controller)
    changed, insights = [], []
    controller.record_changed.connect(changed.append)
    controller.insights.insights_changed.connect(insights.append)
    path = result.records[0].path
    controller.rate(path, 4)
    controller.tag(path, "Too Noisy")
    await _settle(controller, lambda: insights)
    with _store(tmp_path) as store:
        record = store.get(path)
    assert record.rating == 4 and record.tags == ("too noisy",)
    assert changed[-1].rating == 4
    assert insights[-1].rated == 1
    controller.rate(path, 9)
    await _settle(controller)
    assert "1 to 5 stars" in controller.errors_seen[-1].message


async def test_a_record_hook_from_another_thread_is_stored(controller, tmp_path, qtbot):
    from tests.learning.helpers import image_record

    image = image_record(tmp_path / "out", 0)
    stored = []
    controller.record_stored.connect(stored.append)
    worker = threading.Thread(target=controller.on_image_record, args=(image,))
    worker.start()
    worker.join(5)
    qtbot.waitUntil(lambda: bool(stored), timeout=5000)
    assert stored[0].path == str(image.path)


async def test_learning_run_five_values_two_seeds(controller, tmp_path):
    controller.set_mode(LearningMode.active)
    progress, runs = [], []
    controller.runs.progress_changed.connect(lambda text, _f: progress.append(text))
    controller.runs.run_changed.connect(runs.append)
    assert controller.runs.start_learning_run("steps", "4, 6, 8, 10, 12", images_per_value=2, pack="Foxes")
    assert controller.runs.running
    await _settle(controller, lambda: not controller.runs.running, timeout=30)
    result = controller.runs.run_result
    assert result.state is RunState.completed, (result.message, controller.errors_seen)
    assert len(result.cells) == 10 and all(c.path for c in result.cells)
    assert "Learning run: steps — 3 of 5 values" in progress
    with _store(tmp_path) as store:
        records = store.records(learning_run_id=result.run_id)
        saved = store.load_run(result.run_id)
    assert len(records) == 10 and len({r.path for r in records}) == 10
    # One folder for the comparison, each file named by its value and seed.
    folders = {Path(r.path).parent for r in records}
    assert len(folders) == 1 and "learning-steps" in folders.pop().name
    assert f"-8-steps-seed-{result.seeds[1]}-" in Path(result.cell(1, 2).path).name
    assert all(f"-{c.value}-steps-seed-{c.seed}-" in Path(c.path).name for c in result.cells)
    by_path = {r.path: r for r in records}
    for row in range(2):
        row_configs = [by_path[result.cell(row, col).path].config for col in range(5)]
        assert {c.txt2img.seed for c in row_configs} == {result.seeds[row]}
        first = row_configs[0].model_dump(mode="json")
        for other in row_configs[1:]:
            assert _diff(first, other.model_dump(mode="json")) == {"txt2img.steps"}
    assert [by_path[result.cell(0, c).path].config.txt2img.steps for c in range(5)] == [4, 6, 8, 10, 12]
    assert saved["state"] == "completed" and len(saved["cells"]) == 10
    # Rating a grid image shows up in the grid, the store and the run's scores.
    controller.runs.pick_best(1, 3)
    await _settle(controller, lambda: controller.runs.run_result.cell(1, 3).rating == 5)
    assert controller.runs.run_result.best == {1: 3}
    assert controller.runs.run_result.scores()[3].picked == 1


async def test_learning_runs_need_active_mode_and_a_valid_plan(controller):
    assert not controller.runs.start_learning_run("steps")
    assert "Active" in controller.errors_seen[-1].message
    controller.set_mode("active")
    assert not controller.runs.start_learning_run("steps", "20, 20")
    assert "listed twice" in controller.errors_seen[-1].message
    assert not controller.runs.running


@pytest.mark.parametrize("how", ["stop", "learning off"])
async def test_cancelling_a_learning_run_stops_it(controller, sd_backend, tmp_path, how):
    controller.set_mode(LearningMode.active)
    assert controller.runs.start_learning_run("cfg", "3, 5, 7, 9", images_per_value=3)
    await asyncio.sleep(0.05)
    if how == "stop":
        controller.runs.cancel_learning_run()
    else:
        controller.set_mode(LearningMode.off)
    await _settle(controller, lambda: not controller.runs.running, timeout=20)
    assert controller.runs.run_result.state is RunState.cancelled
    assert sum(1 for c in controller.runs.run_result.cells if c.path) < 12


async def test_the_mode_lives_in_the_settings_written_off_the_qt_thread(tmp_path, qapp, monkeypatch):
    from stablenew.controller import app_controller
    from tests.storage.helpers import app_controller_for, saved_settings

    writers = []
    real_save = app_controller.save_settings

    def save(paths, settings):
        writers.append(threading.current_thread())
        return real_save(paths, settings)

    monkeypatch.setattr(app_controller, "save_settings", save)
    app = app_controller_for()
    ctl = LearningController(tmp_path / "db.sqlite", app=app)
    assert ctl.mode is LearningMode.passive
    shown = []
    ctl.mode_changed.connect(shown.append)
    ctl.set_mode("active")  # what the Learning panel's switch calls
    assert ctl.mode is LearningMode.active and app.settings.learning_mode is LearningMode.active
    assert shown == ["active"]
    await app.tasks.wait_idle(5)
    assert writers and threading.main_thread() not in writers
    assert saved_settings(app.paths).learning_mode is LearningMode.active
    assert not (app.paths.config_dir / "learning.yaml").exists()

    # A change made in the Settings dialog reaches the room; the next start reads it back.
    assert app.apply_settings({"learning_mode": "off"}) == ""
    assert ctl.mode is LearningMode.off and shown == ["active", "off"]
    await app.tasks.wait_idle(5)
    again = LearningController(tmp_path / "db.sqlite", app=app_controller_for())
    assert again.mode is LearningMode.off
    await ctl.aclose()
    await again.aclose()


async def test_the_mode_is_kept_in_the_settings_of_the_app_it_is_given(tmp_path, qapp):
    from tests.storage.helpers import app_controller_for

    app = app_controller_for()  # what the Session passes to every room
    ctl = LearningController(tmp_path / "db.sqlite", app=app)
    ctl.set_mode("active")
    assert app.settings.learning_mode is LearningMode.active
    await app.tasks.wait_idle(5)
    await ctl.aclose()


async def test_outputs_removed_by_the_queue_are_forgotten(controller, tmp_path):
    from tests.learning.helpers import image_record

    images = [image_record(tmp_path / "out", i) for i in range(3)]
    for image in images:
        controller.on_image_record(image)
    await _settle(controller)
    controller.on_outputs_removed([images[0].path, tmp_path / "never-recorded.png"])
    controller.worker.submit(lambda store: None).result(timeout=5)  # queued work is done
    with _store(tmp_path) as store:
        assert sorted(r.path for r in store.records()) == sorted(str(i.path) for i in images[1:])


async def test_the_gallery_rating_book_reads_and_writes_the_store(controller, tmp_path):
    from tests.learning.helpers import image_record

    image = image_record(tmp_path / "out", 0)
    book = controller.rating_book()
    assert book.rating(str(image.path)) == (None, ())  # nothing recorded yet: no error
    controller.on_image_record(image)
    await _settle(controller)
    book.rate(str(image.path), 3)
    book.set_tags(str(image.path), ("Blurry", "too dark"))
    await _settle(controller)
    assert book.rating(str(image.path)) == (3, ("blurry", "too dark"))
    book.set_tags(str(image.path), ("too dark",))
    await _settle(controller)
    assert book.rating(str(image.path)) == (3, ("too dark",))
    assert book.rating(str(tmp_path / "unknown.png")) == (None, ())


async def test_an_unreachable_server_fails_the_run_visibly(tmp_path, qapp):
    from stablenew.backends.errors import ServerUnreachable

    async def backend():
        raise ServerUnreachable("Nothing answers at http://127.0.0.1:9. Is the server running?")

    ctl = LearningController(tmp_path / "db.sqlite", backend=backend, base_config=small_config,
                             mode="active", remember_mode=False)
    try:
        assert ctl.runs.start_learning_run("cfg", "5, 7")
        await _settle(ctl, lambda: not ctl.runs.running)
        assert ctl.runs.run_result.state is RunState.failed
        assert "Nothing answers" in ctl.error.message
    finally:
        await ctl.aclose()


async def test_rating_an_image_made_while_learning_was_off_records_it_from_its_png(
        controller, sd_backend, tmp_path):
    from tests.learning.helpers import write_png

    runner = PipelineRunner(tmp_path / "out")  # no record hook: as if learning had been off
    result = await asyncio.wait_for(runner.run(small_config(), sd_backend, CancelToken(),
                                               tags=RunTags(pack="Foxes")), 20)
    path = result.records[0].path
    controller.rate(path, 5)
    await _settle(controller)
    with _store(tmp_path) as store:
        record = store.get(str(path))
    assert record.rating == 5 and record.pack == "Foxes" and record.config == result.records[0].config
    foreign = write_png(tmp_path / "foreign.png")
    controller.rate(foreign, 3)
    await _settle(controller)
    assert "no StableNew settings" in controller.error.message


async def test_a_forget_that_fails_is_an_error_not_silence(controller, tmp_path, monkeypatch):
    """Issue 18: the records of images a re-run replaces are forgotten on the store's thread;
    its failure was dropped, so stale records stayed and a re-run counted twice, unsaid."""
    import sqlite3

    def locked(self, ref):
        raise sqlite3.OperationalError("database is locked")

    from PySide6.QtWidgets import QApplication

    monkeypatch.setattr(LearningStore, "delete", locked)
    controller.on_outputs_removed([tmp_path / "out" / "a-0000-fox.png"])

    def reported() -> bool:
        QApplication.processEvents()  # the worker thread's signal is queued to this thread
        return controller.error is not None

    await _settle(controller, reported)
    assert "locked" in controller.error.detail or "locked" in controller.error.message
