"""RunTracker's bookkeeping: failures stay on their cells, a dead node stops the run, and a
saved run's grid is rebuilt from the records of its images."""

from __future__ import annotations

import random
from pathlib import Path

from stablenew.learning.plans import LearningPlan
from stablenew.learning.records import LearningRecord
from stablenew.learning.runs import LearningRunResult, RunState, RunTracker, cell_of
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.records import ImageRecord


def _plan() -> LearningPlan:
    return LearningPlan.create(PipelineConfig(), "steps", [10, 20, 30], images_per_value=2,
                               rng=random.Random(2))


def _record(cell, n: int) -> ImageRecord:
    return ImageRecord(run_id=f"r{n}", image_index=0, config=cell.config, seed=cell.seed,
                       stages=("txt2img",), node="n", node_kind="a1111", path=Path(f"{n}.png"),
                       tags=cell.tags)


def _drive(plan: LearningPlan, outcomes: dict[int, tuple[str, bool]], *, stop_after: int | None = None
           ) -> tuple[RunTracker, list[str], int]:
    """Feed the tracker the images of *plan* in queue order, as the queue reports them: image n
    (1-based) fails with (message, fatal) when listed; the run stops (as the controller does)
    once the tracker says the node is unusable, or after *stop_after* images."""
    tracker = RunTracker(plan)
    progress: list[str] = []
    made = 0
    for n, cell in enumerate(plan.images(), start=1):
        if tracker.fatal or (stop_after is not None and made >= stop_after):
            tracker.skipped(cell.row, cell.column)
            continue
        made += 1
        progress.append(tracker.started(cell.row, cell.column)[0])
        outcome = outcomes.get(n)
        if outcome is None:
            tracker.saved(cell.row, cell.column, _record(cell, n))
        else:
            tracker.failed(cell.row, cell.column, outcome[0], fatal=outcome[1])
    return tracker, progress, made


def test_cells_are_named_by_their_variant_id():
    plan = _plan()
    assert [cell_of(c.tags.variant_id) for c in plan.images()] == [
        (c.row, c.column) for c in plan.images()]
    assert cell_of(None) is None and cell_of("a:b") is None and cell_of("3") is None


def test_one_failed_image_is_marked_and_the_run_carries_on():
    tracker, progress, made = _drive(_plan(), {3: ("The server failed (test).", False)})
    result = tracker.finish()
    assert made == 6 and result.state is RunState.partial
    failed = [c for c in result.cells if c.error]
    assert len(failed) == 1 and failed[0].error == "The server failed (test)." and not failed[0].path
    assert "1 of 6 images could not be made" in result.message
    assert progress[0] == "Learning run: steps — 1 of 3 values"
    assert "Learning run: steps — 2 of 3 values" in progress
    assert tracker.fraction == 1.0
    assert tracker.final_progress() == ("Learning run: steps — partial", 1.0)


def test_a_node_that_stops_answering_ends_the_run_at_once():
    tracker, _progress, made = _drive(_plan(), {2: ("The server stopped answering.", True)})
    result = tracker.finish(cancelled=True)  # the controller cancels the job's other images
    assert made == 2 and result.state is RunState.failed
    assert result.message == "The server stopped answering."


def test_cancel_between_images_and_result_round_trips_as_json():
    tracker, _progress, made = _drive(_plan(), {}, stop_after=3)
    result = tracker.finish(cancelled=True)
    assert result.state is RunState.cancelled and made == 3
    assert sum(1 for c in result.cells if c.path) == 3
    result = result.pick_best(0, 1).with_cell(0, 1, rating=5, tags=("great",))
    result = LearningRunResult.from_json({**result.to_json(), "job_id": "abc", "folder": "/x"})
    again = LearningRunResult.from_json(result.to_json())
    assert again == result and again.job_id == "abc" and again.folder == "/x"
    assert again.scores()[1].picked == 1 and again.scores()[1].mean == 5.0


def test_a_run_stopped_by_a_crash_is_rebuilt_from_its_records():
    plan = _plan()
    tracker, _progress, _made = _drive(plan, {}, stop_after=2)
    saved = tracker.result  # still "running": StableNew stopped before the run ended
    assert saved.state is RunState.running
    records = [LearningRecord.from_image_record(_record(cell, n)).with_rating(4 if n == 5 else None)
               for n, cell in enumerate(plan.images(), start=1) if n != 6]
    other = LearningRecord.from_image_record(_record(plan.images()[5], 99))
    records.append(LearningRecord(**{**other.__dict__, "learning_run_id": "learn-other"}))
    rebuilt = saved.with_records(records).settled()
    assert rebuilt.state is RunState.interrupted and "5 of 6 images were made" in rebuilt.message
    assert [c.path for c in rebuilt.cells] == ["1.png", "2.png", "3.png", "4.png", "5.png", None]
    assert rebuilt.cell(0, 2).rating == 4
    whole = saved.with_records(records[:-1] + [LearningRecord.from_image_record(
        _record(plan.images()[5], 6))]).settled()
    assert whole.state is RunState.completed and all(c.path for c in whole.cells)
    finished = tracker.finish(cancelled=True)
    assert finished.with_records(records).settled().state is RunState.cancelled, \
        "only a run left running is settled"
