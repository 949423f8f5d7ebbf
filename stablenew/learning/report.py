"""Which packs, LoRAs, samplers, checkpoints and enhance styles score well or poorly, with counts.

Each value is compared with everything else of its kind: a sampler with the other samplers'
images, a LoRA with the rated images made without it, a pack with the other packs. A value is
said to score well or poorly only when its images are enough (MIN_IMAGES) and the gap is clear
against the spread of the ratings (Welch's t of at least CLEAR_T); otherwise the report says
"about the same" or "too few ratings" rather than guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from stablenew.learning.parameters import ENHANCE_KEY, LORA_PREFIX, NOT_ENHANCED
from stablenew.learning.store import LearningStore, ValueStats

#: Fewer images than this with a value: no verdict.
MIN_IMAGES = 5
#: The gap must be this many standard errors wide to be called a difference.
CLEAR_T = 2.0
#: Every image has a step count, so the steps' rows together are all rated images.
EVERY_IMAGE_PARAM = "steps"

KINDS = {"sampler": "Sampler", "checkpoint": "Model", "scheduler": "Scheduler",
         "enhance": "Enhance style"}


@dataclass(frozen=True)
class Pool:
    """Ratings summed: how many, their total and their sum of squares."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    @classmethod
    def of(cls, rows: Iterable[ValueStats]) -> Pool:
        n, total, total_sq = 0, 0.0, 0.0
        for row in rows:
            n, total, total_sq = n + row.n, total + row.total, total_sq + row.total_sq
        return cls(n, total, total_sq)

    def __sub__(self, other: Pool) -> Pool:
        return Pool(self.n - other.n, self.total - other.total, self.total_sq - other.total_sq)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        if self.n < 2:
            return 0.0
        return max(0.0, (self.total_sq - self.total * self.total / self.n) / (self.n - 1))


@dataclass(frozen=True)
class ReportRow:
    """One value against the rest of its kind."""

    kind: str  # "Sampler", "Model", "Scheduler", "LoRA", "Pack"
    name: str
    images: int
    mean: float
    others_mean: float
    others: int
    verdict: str  # "scores well", "scores poorly", "about the same", "too few ratings"

    @property
    def text(self) -> str:
        images = f"{self.images} image{'s' if self.images != 1 else ''}"
        if self.verdict == "too few ratings":
            return f"{self.kind} {self.name}: too few ratings yet ({images})."
        return (f"{self.kind} {self.name} {self.verdict}: {self.mean:.1f} stars over {images}, "
                f"against {self.others_mean:.1f} for the other {self.others}.")

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "name": self.name, "images": self.images,
                "mean": round(self.mean, 3), "others_mean": round(self.others_mean, 3),
                "others": self.others, "verdict": self.verdict, "text": self.text}


def verdict(mine: Pool, others: Pool) -> str:
    if mine.n < MIN_IMAGES or others.n < MIN_IMAGES:
        return "too few ratings"
    error = math.sqrt(mine.variance / mine.n + others.variance / others.n)
    gap = mine.mean - others.mean
    if error == 0.0:
        clear = gap != 0.0
    else:
        clear = abs(gap) / error >= CLEAR_T
    if not clear:
        return "about the same"
    return "scores well" if gap > 0 else "scores poorly"


def _row(kind: str, name: str, mine: Pool, everything: Pool) -> ReportRow:
    others = everything - mine
    return ReportRow(kind, name, mine.n, mine.mean, others.mean, others.n, verdict(mine, others))


def build_report(stats: list[ValueStats], packs: dict[str, Pool] | None = None) -> list[ReportRow]:
    """Rows for samplers, models, schedulers and LoRAs in *stats* (one pack's or all), and
    for *packs* (each pack's pooled ratings); the clearest verdicts first within each kind."""
    by_param: dict[str, list[ValueStats]] = {}
    for row in stats:
        by_param.setdefault(row.param, []).append(row)
    everything = Pool.of(by_param.get(EVERY_IMAGE_PARAM, []))
    rows: list[ReportRow] = []
    for param, kind in KINDS.items():
        values = by_param.get(param, [])
        if len(values) < 2:
            continue  # one sampler only: nothing to compare it with
        pooled = Pool.of(values)
        rows += [_row(kind, _name(param, v.value), Pool.of([v]), pooled) for v in values]
    for param, values in by_param.items():
        if param.startswith(LORA_PREFIX) and everything.n:
            rows.append(_row("LoRA", param[len(LORA_PREFIX):], Pool.of(values), everything))
    if packs and len(packs) >= 2:
        all_packs = Pool(sum(p.n for p in packs.values()), sum(p.total for p in packs.values()),
                         sum(p.total_sq for p in packs.values()))
        rows += [_row("Pack", name or "(no pack)", pool, all_packs) for name, pool in packs.items()]
    order = {"scores well": 0, "scores poorly": 1, "about the same": 2, "too few ratings": 3}
    return sorted(rows, key=lambda r: (r.kind, order[r.verdict], -r.images, r.name.casefold()))


def _name(param: str, value: str) -> str:
    if param == ENHANCE_KEY and value == NOT_ENHANCED:
        return "none (sent as written)"
    return value or "the server's current"


def report_for(store: LearningStore, pack: str | None = None) -> list[ReportRow]:
    """The report from the store's aggregates (one pack, or all packs and the packs compared)."""
    packs = None
    if pack is None:
        packs = {name: Pool.of(store.stats(name, EVERY_IMAGE_PARAM)) for name in store.packs()}
        packs = {name: pool for name, pool in packs.items() if pool.n}
    return build_report(store.stats(pack), packs)
