"""execute_plan's bookkeeping: failures stay on their cells, a dead node stops the run."""

from __future__ import annotations

import random
from pathlib import Path

from stablenew.learning.errors import LearningError, NodeUnusable
from stablenew.learning.plans import LearningPlan
from stablenew.learning.runs import LearningRunResult, RunState, execute_plan
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.records import ImageRecord


def _plan() -> LearningPlan:
    return LearningPlan.create(PipelineConfig(), "steps", [10, 20, 30], images_per_value=2,
                               rng=random.Random(2))


def _fake_run_one(fail: dict[int, Exception]):
    calls = []

    async def run_one(cell):
        calls.append((cell.row, cell.column))
        error = fail.get(len(calls))
        if error is not None:
            raise error
        return [ImageRecord(run_id=f"r{len(calls)}", image_index=0, config=cell.config,
                            seed=cell.seed, stages=("txt2img",), node="n", node_kind="a1111",
                            path=Path(f"{len(calls)}.png"))]
    return run_one, calls


async def test_one_failed_image_is_marked_and_the_run_carries_on():
    run_one, calls = _fake_run_one({3: LearningError("The server failed (test).")})
    progress = []
    result = await execute_plan(_plan(), run_one, on_progress=lambda t, f: progress.append(t))
    assert len(calls) == 6 and result.state is RunState.partial
    failed = [c for c in result.cells if c.error]
    assert len(failed) == 1 and failed[0].error == "The server failed (test)." and not failed[0].path
    assert "1 of 6 images could not be made" in result.message
    assert progress[0] == "Learning run: steps — 1 of 3 values"
    assert "Learning run: steps — 2 of 3 values" in progress


async def test_a_node_that_stops_answering_ends_the_run_at_once():
    run_one, calls = _fake_run_one({2: NodeUnusable("The server stopped answering.")})
    result = await execute_plan(_plan(), run_one)
    assert len(calls) == 2 and result.state is RunState.failed
    assert result.message == "The server stopped answering."


async def test_cancel_between_images_and_result_round_trips_as_json():
    run_one, calls = _fake_run_one({})
    result = await execute_plan(_plan(), run_one, is_cancelled=lambda: len(calls) >= 3)
    assert result.state is RunState.cancelled and len(calls) == 3
    result = result.pick_best(0, 1).with_cell(0, 1, rating=5, tags=("great",))
    again = LearningRunResult.from_json(result.to_json())
    assert again == result
    assert again.scores()[1].picked == 1 and again.scores()[1].mean == 5.0
