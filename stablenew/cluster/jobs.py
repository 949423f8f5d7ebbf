"""The queue's model: jobs, their per-image work items, and the item state machine.

Plain frozen dataclasses, no Qt and no SQLite: the store persists them, the runner and the
controller read them. A job says *what* to run (configs already expanded, one per image) and
where it came from; each work item is one image with its own state, attempts and outputs.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stablenew.cluster.tiers import NodeTier
from stablenew.pipeline.config import MAX_SEED, PipelineConfig


class ItemState(StrEnum):
    queued = "queued"  # waiting for a node
    assigned = "assigned"  # claimed by a node, request not sent yet
    running = "running"  # request sent, the node is working on it
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL: frozenset[ItemState] = frozenset({ItemState.done, ItemState.failed, ItemState.cancelled})
ACTIVE: frozenset[ItemState] = frozenset({ItemState.assigned, ItemState.running})

#: Every allowed move of a work item; anything else is a bug or a race and is refused.
TRANSITIONS: dict[ItemState, frozenset[ItemState]] = {
    ItemState.queued: frozenset({ItemState.assigned, ItemState.cancelled}),
    # assigned -> queued: the node gave the item back (shut down, unhealthy, crash recovery).
    # assigned -> failed/queued: the item could not even be sent (invalid config, node down).
    ItemState.assigned: frozenset({ItemState.running, ItemState.queued, ItemState.failed,
                                   ItemState.cancelled}),
    # running -> queued: a transient failure waiting for its retry, or crash recovery.
    ItemState.running: frozenset({ItemState.done, ItemState.failed, ItemState.queued,
                                  ItemState.cancelled}),
    # Done stays done: a finished image is never produced twice.
    ItemState.done: frozenset(),
    ItemState.failed: frozenset({ItemState.queued}),  # retry
    # cancelled -> done: the image was saved before its runner heard of the cancel (under the
    # same lease); the image exists, so it is done work, not deleted.
    ItemState.cancelled: frozenset({ItemState.queued, ItemState.done}),  # retry
}


#: Priority of a Run pressed in a window: ahead of every queued batch, claimable while the
#: queue is paused (a pause holds batches back, never the image the user is waiting for).
INTERACTIVE_PRIORITY = 1000


def can_move(src: ItemState, dst: ItemState) -> bool:
    return dst in TRANSITIONS[src]


class JobState(StrEnum):
    """A job's state as people read it, derived from its items."""

    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"  # finished, some items failed
    cancelled = "cancelled"


class JobKind(StrEnum):
    config = "config"  # one PipelineConfig, one item per image of its batches
    plan = "plan"  # a randomizer plan: one resolved config per item
    pack = "pack"
    learning = "learning"


@dataclass(frozen=True)
class Variant:
    """Which variant of a plan or pack an image belongs to (carried into its RunTags)."""

    id: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class JobOrigin:
    """Where a job came from; carried into every image's RunTags."""

    pack: str | None = None
    preset: str | None = None
    learning_run_id: str | None = None
    variant_label: str | None = None


@dataclass(frozen=True)
class JobCounts:
    """How many of a job's items are in each state."""

    total: int = 0
    queued: int = 0
    assigned: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled

    @property
    def state(self) -> JobState:
        if self.running or self.assigned:
            return JobState.running
        if self.queued:
            return JobState.running if self.finished else JobState.queued
        if self.failed:
            return JobState.failed
        if self.cancelled and not self.done:
            return JobState.cancelled
        return JobState.done


@dataclass(frozen=True)
class Job:
    """One thing the user asked for: a batch of images with a name, origin and priority."""

    id: str
    name: str
    kind: JobKind
    priority: int
    position: float
    created_at: float
    output_dir: str
    origin: JobOrigin = field(default_factory=JobOrigin)
    node_pin: str | None = None  # interactive runs stay on the preferred node
    #: The node tier the job asks for (a funnel step's); None: ordinary work.
    tier: NodeTier | None = None
    counts: JobCounts = field(default_factory=JobCounts)
    nodes: tuple[str, ...] = ()  # nodes currently working on it
    eta_seconds: float | None = None

    @property
    def state(self) -> JobState:
        return self.counts.state


@dataclass(frozen=True)
class WorkItem:
    """One image of a job: what to render, its state, and where its output went."""

    id: int
    job_id: str
    index: int
    state: ItemState
    attempts: int
    seed: int
    node: str | None = None
    error: str | None = None
    error_detail: str | None = None
    outputs: tuple[str, ...] = ()
    not_before: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    lease: str | None = None
    variant: Variant = field(default_factory=lambda: Variant())

    @property
    def label(self) -> str:
        """The id people type: job id, slash, 1-based image number."""
        return f"{self.job_id}/{self.index + 1}"

    @property
    def name_prefix(self) -> str:
        """Deterministic output name: a re-run of this item overwrites its own files only."""
        return item_name_prefix(self.job_id, self.index)


def item_name_prefix(job_id: str, index: int) -> str:
    return f"q{job_id}-{index + 1:05d}"


def output_name_prefix(item: WorkItem, job: Job) -> str:
    """What an item's files are named by: its deterministic prefix, and for a learning run's
    images also the value and seed they compare ("q…-00008 8 steps seed 1001"), so the
    comparison reads in a file browser. The item prefix comes first: clean-up finds its files
    by it, and a long value cut short never makes two items' names alike."""
    if job.kind is JobKind.learning and item.variant.label:
        return f"{item.name_prefix} {item.variant.label} seed {item.seed}"
    return item.name_prefix


@dataclass(frozen=True)
class Claim:
    """A work item handed to a node, with the config it must run and the lease proving it."""

    item: WorkItem
    job: Job
    config: PipelineConfig
    lease: str


def per_image_configs(config: PipelineConfig, *, count: int | None = None,
                      rng: random.Random | None = None) -> Iterator[PipelineConfig]:
    """Split a config's batches (or *count* images) into one config per image, seeds resolved.

    Seeds are fixed when the job is added so a re-run after a crash makes the same picture.
    A fixed seed counts up per image (as A1111 does within a batch); -1 draws one per image.
    """
    t2i = config.txt2img
    if count is None:
        count = t2i.batch_count * t2i.batch_size
    rng = rng or random.SystemRandom()
    for index in range(count):
        seed = rng.randint(0, MAX_SEED) if t2i.seed == -1 else (t2i.seed + index) % (MAX_SEED + 1)
        yield config.with_changes({"txt2img.batch_count": 1, "txt2img.batch_size": 1,
                                   "txt2img.seed": seed})


def expand(configs: Any, *, count: int | None = None) -> Iterator[tuple[PipelineConfig, Variant]]:
    """(config, variant) per image from a single config (*count* images, default its
    batches), or from any lazy iterable of configs or plan items — anything with `config`
    and optionally `tags` / `variant_id` / `label`, as the randomizer's plans and packs
    yield. With *count*, each config of an iterable makes that many images."""
    if isinstance(configs, PipelineConfig):
        for config in per_image_configs(configs, count=count):
            yield config, Variant()
        return
    for entry in configs:
        if isinstance(entry, PipelineConfig):
            config, variant = entry, Variant()
        else:
            config = entry.config
            tags = getattr(entry, "tags", None)
            variant = Variant(getattr(tags, "variant_id", None) or getattr(entry, "variant_id", None),
                              getattr(tags, "variant_label", None) or getattr(entry, "label", None))
        for image in per_image_configs(config, count=count):
            yield image, variant
