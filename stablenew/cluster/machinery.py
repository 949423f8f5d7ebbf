"""RunMachinery: the one place where the queue's workers are put together.

Every way work runs — Run and learning runs in the window, `stablenew run`, `stablenew queue
run` on one node or over the cluster — takes its runners from here, so every saved image goes
through the same steps: the prompt step (local-LLM enhance) before its first stage, the run
log, the learning store's passive record, and the caller's record hooks; and an unfinished
attempt's images that the queue deletes before a re-run are forgotten by the same store that
recorded them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from stablenew.backends.protocol import Backend
    from stablenew.cluster.dispatcher import ClusterDispatcher
    from stablenew.cluster.health import NodeMonitor
    from stablenew.cluster.nodes import NodeConfig
    from stablenew.cluster.queue_events import QueueEventCallback
    from stablenew.cluster.queue_runner import QueueRunner
    from stablenew.cluster.queue_store import QueueStore
    from stablenew.cluster.scheduled_store import WorkerStore
    from stablenew.learning.records import LearningRecord
    from stablenew.learning.store import LearningStore
    from stablenew.pipeline.records import ImageRecord
    from stablenew.pipeline.run_saving import LoraHashes
    from stablenew.pipeline.runner import PipelineRunner, PromptStep
    from stablenew.prompting.step import PromptEnhancer
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import AppSettings

log = logging.getLogger(__name__)

RecordHook = Callable[["ImageRecord"], None]
OutputsRemoved = Callable[[list[Path]], None]


class LearningRecorder:
    """The learning store's passive record of each saved image, written before the queue marks
    the image done (a run killed just after an image is saved never leaves it unrecorded).

    The store is opened with the first image: its modules are not imported before the first
    request goes out. A record that cannot be written raises into the runner, which says so.
    """

    def __init__(self, db: Path) -> None:
        self.path = db
        self._opened: LearningStore | None = None
        self.written = 0

    def _store(self) -> LearningStore:
        if self._opened is None:
            from stablenew.learning.store import LearningStore

            self._opened = LearningStore(self.path)
        return self._opened

    def record(self, image: ImageRecord) -> None:
        _add_record(self._store(), image)
        self.written += 1

    def forget(self, paths: list[Path]) -> None:
        """Called from the queue's database thread; the store serialises its writes."""
        if paths:
            _forget(self._store(), [str(p) for p in paths])

    def close(self) -> None:
        store, self._opened = self._opened, None
        if store is not None:
            store.close()


def _add_record(store: LearningStore, image: ImageRecord) -> LearningRecord:
    from stablenew.learning.records import LearningRecord

    return store.add_record(LearningRecord.from_image_record(image))


def _forget(store: LearningStore, paths: list[str]) -> int:
    from stablenew.learning.errors import LearningError

    forgotten = 0
    for path in paths:
        try:
            store.delete(path)
            forgotten += 1
        except LearningError:  # never recorded (the attempt died before): nothing to forget
            pass
    return forgotten


class WorkerOptions(TypedDict):
    """How the cluster dispatcher makes each node's worker (`ClusterDispatcher(**options)`)."""

    runner_factory: Callable[[str], PipelineRunner]
    runner_kwargs: dict[str, object]


class RunMachinery:
    """Makes the PipelineRunners, QueueRunners and cluster dispatchers of one way of running
    work, all with the same steps (see the module docstring)."""

    def __init__(self, output_root: Path | Callable[[], Path], *, log_dir: Path | None = None,
                 record_hooks: Sequence[RecordHook] = (),
                 on_outputs_removed: OutputsRemoved | None = None,
                 prompt_step: PromptStep | None = None, learning: LearningRecorder | None = None,
                 thumbnails: bool = True, lora_hashes: LoraHashes | None = None) -> None:
        """*output_root* may be a callable (the window's Settings may change it between runs);
        *record_hooks* hear of each saved image after *learning* has recorded it."""
        self._output_root = output_root
        self.log_dir = log_dir
        self.record_hooks = tuple(record_hooks)
        self._on_outputs_removed = on_outputs_removed
        self.prompt_step = prompt_step
        self.learning = learning
        self.thumbnails = thumbnails
        #: `Lora hashes` for servers that do not write them (ComfyUI), from the catalog.
        self.lora_hashes = lora_hashes
        self._owned_step: PromptEnhancer | None = None

    @classmethod
    def headless(cls, paths: AppPaths, settings: AppSettings, *,
                 output_root: Path | None = None, learning_db: Path | None = None,
                 warn: Callable[[str], None] | None = None) -> RunMachinery:
        """The machinery of a command without a window: the settings decide the prompt step
        and whether images are recorded for learning (everything but Learning Off records,
        into *learning_db*, by default the data folder's database)."""
        from stablenew.storage.settings import LearningMode

        learning = None
        if settings.learning_mode is not LearningMode.off:
            learning = LearningRecorder(learning_db or paths.database_file)
        step = None
        if settings.llm_enhance and settings.llm_url:  # off: the prompting room is not imported
            from stablenew.prompting.step import PromptEnhancer

            step = PromptEnhancer.from_settings(settings, paths)
            if step is not None and step.warning and warn is not None:
                warn(step.warning)
        from stablenew.catalog.lookup import CachedLoraHashes

        machinery = cls(output_root or settings.output_path(paths), log_dir=paths.log_dir,
                        prompt_step=step, learning=learning,
                        lora_hashes=CachedLoraHashes(paths.data_dir / "catalog.db"))
        machinery._owned_step = step
        return machinery

    @property
    def output_root(self) -> Path:
        root = self._output_root
        return Path(root() if callable(root) else root)

    def record(self, image: ImageRecord) -> None:
        """Every saved image, once: the learning record first, then the caller's hooks."""
        if self.learning is not None:
            self.learning.record(image)
        for hook in self.record_hooks:
            hook(image)

    def outputs_removed(self, paths: list[Path]) -> None:
        if self.learning is not None:
            self.learning.forget(paths)
        if self._on_outputs_removed is not None:
            self._on_outputs_removed(paths)

    def pipeline_runner(self, node_name: str | None = None) -> PipelineRunner:
        from stablenew.pipeline.runner import PipelineRunner

        return PipelineRunner(self.output_root, record_hooks=(self.record,), log_dir=self.log_dir,
                              thumbnails=self.thumbnails, node_name=node_name,
                              prompt_step=self.prompt_step, lora_hashes=self.lora_hashes)

    def queue_runner(self, store: WorkerStore, backend: Backend, *, node: str | None = None,
                     on_event: QueueEventCallback | None = None, depth: int = 2,
                     backoff_base: float = 2.0, poll_interval: float = 0.25,
                     job: str | None = None) -> QueueRunner:
        """The worker of one node (the single-PC queue, or a Run's own job with *job*)."""
        from stablenew.cluster.queue_runner import QueueRunner

        name = node or str(getattr(backend, "name", "") or getattr(backend, "url", "") or "node")
        return QueueRunner(store, backend, runner=self.pipeline_runner(name), node=name,
                           depth=depth, backoff_base=backoff_base, poll_interval=poll_interval,
                           on_event=on_event, on_outputs_removed=self.outputs_removed, job=job)

    def worker_options(self) -> WorkerOptions:
        """What the cluster dispatcher needs to make each node's worker with these steps."""
        return {"runner_factory": self.pipeline_runner,
                "runner_kwargs": {"on_outputs_removed": self.outputs_removed}}

    def dispatcher(self, store: QueueStore, nodes: Sequence[NodeConfig] | NodeMonitor, *,
                   on_event: QueueEventCallback | None = None, backoff_base: float = 2.0,
                   speeds: dict[str, dict[str, float]] | None = None,
                   on_node_change: Callable[..., None] | None = None,
                   poll_interval: float = 0.25) -> ClusterDispatcher:
        """The cluster's dispatcher over *nodes*, one worker per node made as above."""
        from stablenew.cluster.dispatcher import ClusterDispatcher

        return ClusterDispatcher(store, nodes, on_event=on_event, backoff_base=backoff_base,
                                 speeds=speeds, on_node_change=on_node_change,
                                 poll_interval=poll_interval, **self.worker_options())

    async def aclose(self) -> None:
        """Close the learning store and a prompt step made here."""
        step, self._owned_step = self._owned_step, None
        if step is not None:
            await step.aclose()
        if self.learning is not None:
            self.learning.close()
