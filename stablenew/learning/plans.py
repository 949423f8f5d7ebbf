"""LearningPlan: one fair comparison — a base config, ONE parameter, its values, shared seeds.

Every image of a plan is the base config with one value of the chosen parameter and one of
the plan's seeds; nothing else differs, so a difference in the pictures (and in their
ratings) comes from that parameter alone. Rows are seeds, columns are values.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from stablenew.learning.errors import PlanInvalid
from stablenew.learning.parameters import Parameter, Value, get_parameter
from stablenew.pipeline.config import MAX_SEED, PipelineConfig
from stablenew.pipeline.records import RunTags
from stablenew.storage.validation import plain_problems

MIN_VALUES = 2
MAX_VALUES = 10
MAX_IMAGES_PER_VALUE = 3


@dataclass(frozen=True)
class PlannedImage:
    """One cell of the comparison grid and the one-image config that fills it."""

    row: int  # seed index
    column: int  # value index
    value: Value
    value_text: str
    seed: int
    config: PipelineConfig
    tags: RunTags


@dataclass(frozen=True)
class LearningPlan:
    """A guided learning run: which parameter, which values, how many seeds, on which base."""

    base: PipelineConfig
    parameter: str
    values: tuple[Value, ...]
    seeds: tuple[int, ...]
    pack: str | None = None
    preset: str | None = None
    id: str = field(default_factory=lambda: f"learn-{uuid.uuid4().hex[:12]}")
    notes: tuple[str, ...] = ()

    @classmethod
    def create(
        cls,
        base: PipelineConfig,
        parameter: str,
        values: Sequence[object] | None = None,
        *,
        images_per_value: int = 1,
        pack: str | None = None,
        preset: str | None = None,
        rng: random.Random | None = None,
    ) -> LearningPlan:
        """Check everything up front and pick the seeds; raises PlanInvalid in plain words."""
        param = get_parameter(parameter)
        raw = list(param.suggested if values is None else values)
        if not raw and param.key == "checkpoint":
            raise PlanInvalid("Name at least two models to compare.")
        coerced: list[Value] = []
        seen: set[str] = set()
        for item in raw:
            value = param.coerce(item)
            text = param.text(value)
            if text in seen:
                raise PlanInvalid(f"{param.label} {text} is listed twice; each value once, please.")
            seen.add(text)
            coerced.append(value)
        if not MIN_VALUES <= len(coerced) <= MAX_VALUES:
            raise PlanInvalid(f"A learning run compares {MIN_VALUES} to {MAX_VALUES} values of "
                              f"{param.label}; {len(coerced)} given.")
        if not 1 <= images_per_value <= MAX_IMAGES_PER_VALUE:
            raise PlanInvalid(f"Make 1 to {MAX_IMAGES_PER_VALUE} images per value "
                              f"({images_per_value} asked).")
        notes: list[str] = []
        if param.requires and not _switch(base, param.requires):
            notes.append(f"{param.label} only matters with its stage on, so this run switches "
                         f"'{param.requires.rsplit('.', 1)[0]}' on for every image.")
        base_seed = base.txt2img.seed
        if base_seed >= 0:
            # A fixed seed in the cards is kept for the first row; more rows count up from it.
            seeds = tuple((base_seed + i) % (MAX_SEED + 1) for i in range(images_per_value))
        else:
            draw = rng or random.SystemRandom()
            seeds = tuple(draw.randrange(0, MAX_SEED) for _ in range(images_per_value))
        plan = cls(base=base, parameter=param.key, values=tuple(coerced), seeds=seeds, pack=pack,
                   preset=preset, notes=tuple(notes))
        plan.images()  # every cell must validate before anything is sent to a server
        return plan

    @property
    def param(self) -> Parameter:
        return get_parameter(self.parameter)

    @property
    def value_texts(self) -> tuple[str, ...]:
        return tuple(self.param.text(v) for v in self.values)

    @property
    def column_labels(self) -> tuple[str, ...]:
        """Plain words for each column: "15 steps", "Sampler Euler a"."""
        return tuple(self.param.describe(t) for t in self.value_texts)

    @property
    def row_labels(self) -> tuple[str, ...]:
        return tuple(f"Seed {seed}" for seed in self.seeds)

    @property
    def image_count(self) -> int:
        return len(self.values) * len(self.seeds)

    def title(self) -> str:
        return f"Learning run: {self.param.label.lower()}"

    def images(self) -> list[PlannedImage]:
        """One-image configs, value by value (column-major) so progress reads "3 of 5 values"."""
        param = self.param
        single = self.base.with_changes({"txt2img.batch_size": 1, "txt2img.batch_count": 1})
        cells: list[PlannedImage] = []
        for column, value in enumerate(self.values):
            try:
                varied = param.apply(single, value)
            except ValidationError as exc:
                problems = "; ".join(p.message for p in plain_problems(exc, PipelineConfig))
                raise PlanInvalid(f"{param.describe(param.text(value))} cannot run with these "
                                  f"settings: {problems}", detail=str(exc)) from None
            text = param.text(value)
            label = param.describe(text)
            for row, seed in enumerate(self.seeds):
                config = varied.with_changes({"txt2img.seed": seed})
                tags = RunTags(pack=self.pack, preset=self.preset, variant_id=f"{column}:{row}",
                               variant_label=label, learning_run_id=self.id)
                cells.append(PlannedImage(row, column, value, text, seed, config, tags))
        return cells


def _switch(config: PipelineConfig, dotted: str) -> bool:
    node: object = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return bool(node)
