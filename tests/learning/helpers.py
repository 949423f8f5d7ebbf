"""Builders for learning tests: real PNG files and ImageRecords like the runner makes."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from PIL import Image

from stablenew.learning.records import LearningRecord
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.records import ImageRecord, RunTags


def write_png(path: Path, color: tuple[int, int, int] = (200, 80, 40), size: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path, "PNG")
    return path


def image_record(
    folder: Path,
    index: int,
    *,
    run_id: str = "run-1",
    config: PipelineConfig | None = None,
    pack: str | None = "Portraits",
    seed: int | None = None,
    node: str = "http://127.0.0.1:7860",
    learning_run_id: str | None = None,
    png: bool = True,
) -> ImageRecord:
    config = config or PipelineConfig()
    seed = seed if seed is not None else 1000 + index
    config = config.with_changes({"txt2img.seed": seed})
    path = folder / run_id / f"{index:05d}.png"
    if png:
        write_png(path, (index * 37 % 256, 90, 160))
    return ImageRecord(
        run_id=run_id, image_index=index, config=config, seed=seed,
        stages=tuple(s.value for s in config.enabled_stages()), node=node, node_kind="a1111",
        path=path, tags=RunTags(pack=pack, learning_run_id=learning_run_id),
        timings={"txt2img": 1.5}, created_at=1_700_000_000.0 + index)


def synthetic_records(n: int, *, seed: int = 7, packs: tuple[str, ...] = ("Portraits",),
                      means: dict[int, float] | None = None) -> list[LearningRecord]:
    """Records whose rating depends on steps (by *means*), with noise, for insight tests."""
    rng = random.Random(seed)
    means = means or {15: 2.6, 20: 3.0, 25: 3.4, 30: 4.1, 35: 4.3}
    base = PipelineConfig().with_changes({"txt2img.prompt": "portrait of a woman"})
    steps_values = sorted(means)
    out = []
    for i in range(n):
        steps = steps_values[i % len(steps_values)]
        sampler = rng.choice(["Euler a", "DPM++ 2M"])
        config = base.with_changes({"txt2img.steps": steps, "txt2img.sampler": sampler,
                                    "txt2img.seed": i})
        rating = max(1, min(5, round(rng.gauss(means[steps], 0.7))))
        image = ImageRecord(run_id=f"syn-{i // 100}", image_index=i % 100, config=config, seed=i,
                            stages=("txt2img",), node="node-a", node_kind="a1111",
                            path=Path(f"out/{i}.png"), tags=RunTags(pack=packs[i % len(packs)]),
                            created_at=1_700_000_000.0 + i)
        out.append(LearningRecord.from_image_record(image).with_rating(rating))
    return out


async def until(condition, timeout=10.0):
    """Let the controllers' tasks run (this loop is theirs) until *condition* holds."""
    async def wait():
        while not condition():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(wait(), timeout)
