"""LearningRunResult: the grid of a guided learning run, its ratings and picks, and running it.

A learning run is one queue job (one item per cell); `RunTracker` folds the outcome of each
image into the grid as the queue reports it, and `LearningRunResult.with_records` rebuilds a
grid from the learning records of its run id (a run the queue finished after a crash). The
module stays free of Qt, of the queue and of any particular backend.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from stablenew.learning.parameters import get_parameter
from stablenew.learning.plans import LearningPlan
from stablenew.learning.records import LearningRecord
from stablenew.pipeline.records import ImageRecord


class RunState(StrEnum):
    planned = "planned"
    running = "running"
    completed = "completed"
    partial = "partial"  # some cells failed
    cancelled = "cancelled"
    failed = "failed"
    #: StableNew stopped while it ran; what is left of it waits in the queue
    interrupted = "interrupted"


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
    job_id: str | None = None  # the queue job that makes its images
    folder: str | None = None  # where they are saved

    @classmethod
    def from_plan(cls, plan: LearningPlan) -> LearningRunResult:
        # The cells in the order of `plan.images()` (column by column), without making each
        # image's config: this runs on the Qt thread as a run starts.
        cells = tuple(RunCell(row, column, text, seed) for column, text in enumerate(plan.value_texts)
                      for row, seed in enumerate(plan.seeds))
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
                   finished_at=data.get("finished_at"), job_id=data.get("job_id"),
                   folder=data.get("folder"))

    def with_records(self, records: Iterable[LearningRecord]) -> LearningRunResult:
        """The grid filled from the learning records of this run (each names its cell by its
        variant id), with their ratings and tags: the records are the truth of what was made."""
        result = self
        cells = {(c.row, c.column) for c in self.cells}
        for record in records:
            place = cell_of(record.variant_id)
            if record.learning_run_id != self.run_id or place not in cells:
                continue
            result = result.with_cell(*place, path=record.path, thumbnail=record.thumbnail,
                                      record_key=record.record_key, rating=record.rating,
                                      tags=record.tags, error="")
        return result

    def settled(self) -> LearningRunResult:
        """A run saved as running that nobody runs any more (StableNew stopped meanwhile):
        completed once every image exists, else interrupted, saying where the rest is."""
        if self.state not in (RunState.running, RunState.interrupted):
            return self
        made = sum(1 for c in self.cells if c.path)
        if made == len(self.cells):
            return replace(self, state=RunState.completed, message="",
                           finished_at=self.finished_at or time.time())
        return replace(self, state=RunState.interrupted, message=(
            f"StableNew stopped while this learning run was going: {made} of {len(self.cells)} "
            "images were made. The rest wait in the queue (unless they were cancelled there) "
            "and show here once the queue has made them."))


def progress_text(plan: LearningPlan, done_values: int) -> str:
    """ "Learning run: steps — 3 of 5 values" """
    return f"{plan.title()} — {done_values} of {len(plan.values)} values"


def cell_of(variant_id: str | None) -> tuple[int, int] | None:
    """(row, column) of a planned image from its variant id "column:row" (None if not one)."""
    column, sep, row = (variant_id or "").partition(":")
    if not sep or not column.isdigit() or not row.isdigit():
        return None
    return int(row), int(column)


class RunTracker:
    """Folds what happens to a plan's images into its grid and its progress text.

    The queue runs the images (one job, one item per cell); the controller hands each
    outcome here as it arrives, in whatever order: a failed image is marked on its cell and
    the run carries on, unless the failure says the node is unusable (then it stops as failed).
    """

    def __init__(self, plan: LearningPlan, result: LearningRunResult | None = None) -> None:
        self.plan = plan
        self.result = result or replace(LearningRunResult.from_plan(plan), state=RunState.running)
        self._finished: set[tuple[int, int]] = set()
        self.fatal = ""  # the message of a failure that ends the run

    @property
    def total(self) -> int:
        return len(self.result.cells)

    @property
    def fraction(self) -> float:
        return len(self._finished) / self.total if self.total else 1.0

    def started(self, row: int, column: int) -> tuple[str, float]:
        """Progress text and fraction once the image of (row, column) is being made."""
        return progress_text(self.plan, column + 1), self.fraction

    def saved(self, row: int, column: int, record: ImageRecord) -> LearningRunResult:
        thumb = str(record.thumbnail) if record.thumbnail else None
        self.result = self.result.with_cell(row, column, path=str(record.path), thumbnail=thumb,
                                            record_key=f"{record.run_id}:{record.image_index}",
                                            error="")
        self._finished.add((row, column))
        return self.result

    def failed(self, row: int, column: int, message: str, *, fatal: bool = False
               ) -> LearningRunResult:
        self._finished.add((row, column))
        # The queue removes what an attempt that did not finish saved: nothing to show.
        self.result = self.result.with_cell(row, column, error=message or "No image was saved.",
                                            path=None, thumbnail=None, record_key=None)
        if fatal and not self.fatal:
            self.fatal = message
        return self.result

    def skipped(self, row: int, column: int) -> LearningRunResult:
        """The image was cancelled; one saved just before the queue recorded it as done is
        removed by the queue (and forgotten by the learning store), so the cell is empty."""
        self._finished.add((row, column))
        self.result = self.result.with_cell(row, column, path=None, thumbnail=None,
                                            record_key=None)
        return self.result

    def given_back(self, row: int, column: int) -> LearningRunResult:
        """The image goes back to the queue (to be made again): what it saved was removed."""
        self._finished.discard((row, column))
        self.result = self.result.with_cell(row, column, path=None, thumbnail=None,
                                            record_key=None)
        return self.result

    def finish(self, *, cancelled: bool = False) -> LearningRunResult:
        """The run's end: completed, partial, failed or cancelled, with a message in words."""
        result = self.result
        total = self.total
        made = sum(1 for c in result.cells if c.path)
        if self.fatal:
            state, message = RunState.failed, self.fatal
        elif cancelled:
            state, message = RunState.cancelled, "The learning run was stopped."
        elif made == total:
            state, message = RunState.completed, ""
        else:
            for cell in result.cells:
                if not cell.path and not cell.error:
                    result = result.with_cell(cell.row, cell.column, error="No image was saved.")
            state = RunState.failed if made == 0 else RunState.partial
            first = next((c.error for c in result.cells if c.error), "")
            message = (f"{total - made} of {total} images could not be made ({first}). "
                       "The grid shows which.")
        self.result = replace(result, state=state, message=message, finished_at=time.time())
        return self.result

    def final_progress(self) -> tuple[str, float]:
        done = len({c.column for c in self.result.cells if c.path})
        if self.result.state is RunState.completed:
            return f"{progress_text(self.plan, done)} done", 1.0
        return f"{self.plan.title()} — {self.result.state.value}", 1.0
