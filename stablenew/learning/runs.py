"""LearningRunResult: the grid of a guided learning run, its ratings and picks, and running it.

`execute_plan` drives a plan image by image through a caller-supplied `run_one` (the
controller passes one built on `PipelineRunner`), so this module stays free of Qt and of
any particular backend.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from stablenew.learning.parameters import get_parameter
from stablenew.learning.plans import LearningPlan, PlannedImage
from stablenew.pipeline.records import ImageRecord


class RunState(StrEnum):
    planned = "planned"
    running = "running"
    completed = "completed"
    partial = "partial"  # some cells failed
    cancelled = "cancelled"
    failed = "failed"


@dataclass(frozen=True)
class RunCell:
    """One image of the grid: where it is, what it ran with, and what the user thought."""

    row: int
    column: int
    value: str
    seed: int
    record_key: str | None = None
    path: str | None = None
    thumbnail: str | None = None
    rating: int | None = None
    tags: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class ValueScore:
    value: str
    label: str
    rated: int
    mean: float | None
    picked: int  # times chosen as the best of its row


@dataclass(frozen=True)
class LearningRunResult:
    """The saved outcome of a learning run (stored as JSON in `learning_runs`)."""

    run_id: str
    parameter: str
    values: tuple[str, ...]
    seeds: tuple[int, ...]
    pack: str | None = None
    state: RunState = RunState.planned
    cells: tuple[RunCell, ...] = ()
    best: dict[int, int] = field(default_factory=dict)  # row -> column picked as best
    message: str = ""
    created_at: float = 0.0
    finished_at: float | None = None

    @classmethod
    def from_plan(cls, plan: LearningPlan) -> LearningRunResult:
        cells = tuple(RunCell(c.row, c.column, c.value_text, c.seed) for c in plan.images())
        return cls(run_id=plan.id, parameter=plan.parameter, values=plan.value_texts,
                   seeds=plan.seeds, pack=plan.pack, cells=cells, created_at=time.time())

    @property
    def column_labels(self) -> tuple[str, ...]:
        param = get_parameter(self.parameter)
        return tuple(param.describe(v) for v in self.values)

    def cell(self, row: int, column: int) -> RunCell:
        for cell in self.cells:
            if cell.row == row and cell.column == column:
                return cell
        raise KeyError((row, column))

    def with_cell(self, row: int, column: int, **changes: Any) -> LearningRunResult:
        cells = tuple(replace(c, **changes) if (c.row, c.column) == (row, column) else c
                      for c in self.cells)
        return replace(self, cells=cells)

    def with_cell_for_path(self, path: str, **changes: Any) -> LearningRunResult:
        cells = tuple(replace(c, **changes) if c.path == path else c for c in self.cells)
        return replace(self, cells=cells)

    def pick_best(self, row: int, column: int) -> LearningRunResult:
        return replace(self, best={**self.best, row: column})

    def scores(self) -> list[ValueScore]:
        """Mean rating and best-of-row picks per value, in column order."""
        param = get_parameter(self.parameter)
        out = []
        for column, value in enumerate(self.values):
            ratings = [c.rating for c in self.cells if c.column == column and c.rating]
            picked = sum(1 for col in self.best.values() if col == column)
            mean = sum(ratings) / len(ratings) if ratings else None
            out.append(ValueScore(value, param.describe(value), len(ratings), mean, picked))
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["best"] = {str(k): v for k, v in self.best.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LearningRunResult:
        cells = tuple(RunCell(**{**c, "tags": tuple(c.get("tags", ()))}) for c in data["cells"])
        return cls(run_id=data["run_id"], parameter=data["parameter"],
                   values=tuple(data["values"]), seeds=tuple(data["seeds"]), pack=data.get("pack"),
                   state=RunState(data.get("state", "planned")), cells=cells,
                   best={int(k): int(v) for k, v in (data.get("best") or {}).items()},
                   message=data.get("message", ""), created_at=data.get("created_at", 0.0),
                   finished_at=data.get("finished_at"))


#: Runs one planned image and returns the records of the images it saved.
RunOne = Callable[[PlannedImage], Awaitable[list[ImageRecord]]]


def progress_text(plan: LearningPlan, done_values: int) -> str:
    """ "Learning run: steps — 3 of 5 values" """
    return f"{plan.title()} — {done_values} of {len(plan.values)} values"


async def execute_plan(
    plan: LearningPlan,
    run_one: RunOne,
    *,
    on_progress: Callable[[str, float], None] | None = None,
    on_result: Callable[[LearningRunResult], None] | None = None,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> LearningRunResult:
    """Run every cell of *plan*, value by value; a failed image is marked, not fatal, unless
    the error says the node is unusable (then the run stops as failed)."""
    result = replace(LearningRunResult.from_plan(plan), state=RunState.running)
    cells = plan.images()
    total = len(cells)
    failures = 0
    stopped: RunState | None = None
    for index, cell in enumerate(cells):
        if is_cancelled():
            stopped = RunState.cancelled
            break
        if on_progress is not None:
            on_progress(progress_text(plan, cell.column + 1), index / total)
        try:
            records = await run_one(cell)
        except Exception as exc:  # each failure is recorded on its cell and shown in the grid
            failures += 1
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            result = result.with_cell(cell.row, cell.column, error=message)
            if getattr(exc, "fatal_for_node", False):
                stopped = RunState.failed
                result = replace(result, message=message)
                break
        else:
            if records:
                first = records[0]
                thumb = str(first.thumbnail) if first.thumbnail else None
                result = result.with_cell(cell.row, cell.column, path=str(first.path),
                                          thumbnail=thumb,
                                          record_key=f"{first.run_id}:{first.image_index}")
            elif is_cancelled():
                stopped = RunState.cancelled
                break
            else:
                failures += 1
                result = result.with_cell(cell.row, cell.column, error="No image was saved.")
        if on_result is not None:
            on_result(result)
    if stopped is None:
        stopped = RunState.completed if failures == 0 else (
            RunState.failed if failures == total else RunState.partial)
    if stopped is RunState.cancelled and not result.message:
        result = replace(result, message="The learning run was stopped.")
    elif stopped in (RunState.partial, RunState.failed) and not result.message:
        first = next((c.error for c in result.cells if c.error), "")
        result = replace(result, message=f"{failures} of {total} images could not be made "
                                         f"({first}). The grid shows which.")
    result = replace(result, state=stopped, finished_at=time.time())
    if on_progress is not None:
        done = len({c.column for c in result.cells if c.path})
        on_progress(f"{progress_text(plan, done)} done" if stopped is RunState.completed
                    else f"{plan.title()} — {stopped.value}", 1.0)
    return result
