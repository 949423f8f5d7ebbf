"""LearningController: learning mode, records from every saved image, ratings, tags and notes —
as Qt state and signals for the learning panels and the gallery. Its learning runs live in
`runs` (LearningRunController), its insights, recommendation and export in `insights`
(InsightsController).

Every store call runs on the learning store's own worker thread (`StoreWorker`), so the Qt
thread never waits on SQLite; every async step runs through a `TaskOwner`, so a failure
becomes `error_changed` instead of vanishing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from stablenew.controller.app_controller import AppController
from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.learning_insights import InsightsController
from stablenew.controller.learning_ratings import LearningRatingBook, known, set_tag_set
from stablenew.controller.learning_runs import LearningRunController
from stablenew.controller.tasks import TaskOwner
from stablenew.learning.errors import LearningError
from stablenew.learning.insights import KNOWN_TAGS
from stablenew.learning.ratings import RecordReader
from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore, StoreWorker, default_database
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.records import ImageRecord
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, LearningMode, peek_settings

if TYPE_CHECKING:
    from stablenew.backends.protocol import Backend
    from stablenew.controller.run_work import RunQueue

log = logging.getLogger("stablenew.controller.learning")


MODE_WORDS = {
    LearningMode.off: "Off — StableNew keeps no learning records.",
    LearningMode.passive: "Passive — every image is recorded; rate the ones you like or dislike.",
    LearningMode.active: "Active — also run guided comparisons of one setting at a time.",
}


class LearningController(QObject):
    """The learning room for the GUI; public methods are sync and never block on disk or HTTP."""

    mode_changed = Signal(str)
    record_stored = Signal(object)  # LearningRecord just written from a saved image
    record_changed = Signal(object)  # LearningRecord after a rating, tag or note
    error_changed = Signal(object)  # ErrorInfo | None
    _stored_elsewhere = Signal(object)  # a record stored from another thread's hook
    _forgotten_elsewhere = Signal(object)  # the Future of forgetting a re-run's old images

    def __init__(
        self,
        store: LearningStore | str | Path | None = None,
        *,
        backend: Callable[[], Awaitable[Backend]] | None = None,
        run_queue: Callable[[], Awaitable[RunQueue]] | None = None,
        output_dir: Callable[[], Path] | None = None,
        base_config: Callable[[], PipelineConfig] | None = None,
        mode: LearningMode | str | None = None,
        remember_mode: bool = True,
        app: AppController | None = None,
        parent: QObject | None = None,
    ) -> None:
        """*run_queue* gives the window's queue for a learning run (a RunQueue, as for Run);
        without it a run works through a queue of its own on *backend*. *app* keeps the mode
        in the settings (the Session passes its own); *mode* with *remember_mode* False gives
        a controller whose mode is its own (tests)."""
        super().__init__(parent)
        if isinstance(store, LearningStore):
            self.worker = StoreWorker(store)
            self._reader = RecordReader(store.path)
        else:
            path = Path(store) if store is not None else default_database()
            self.worker = StoreWorker(lambda: LearningStore(path))
            self._reader = RecordReader(path)
        self._app = app if remember_mode else None
        if mode is not None:
            self._mode = LearningMode(mode)
        elif self._app is not None:
            self._mode = self._app.settings.learning_mode
        else:
            self._mode = peek_settings(AppPaths.default()).learning_mode
        if self._app is not None:
            self._app.settings_changed.connect(self._settings_changed)
        self._thread = threading.current_thread()
        self._error: ErrorInfo | None = None
        self.tasks = TaskOwner("Learning", self)
        self.tasks.error_raised.connect(self.show_error)
        self._stored_elsewhere.connect(self._after_store)
        self._forgotten_elsewhere.connect(self._after_forget)
        base = base_config or PipelineConfig
        self.runs = LearningRunController(
            self, backend=backend, run_queue=run_queue,
            output_dir=output_dir or (lambda: AppPaths.default().default_output_dir),
            base_config=base)
        self.insights = InsightsController(self, base)

    # --- state ------------------------------------------------------------------------------

    @property
    def mode(self) -> LearningMode:
        return self._mode

    @property
    def error(self) -> ErrorInfo | None:
        return self._error

    @property
    def database(self) -> Path:
        """The learning store's file (a run's own queue and the export open it too)."""
        return self._reader.path

    def set_mode(self, mode: LearningMode | str) -> None:
        """Switch the mode now; it is kept in the settings, which are written off the Qt thread."""
        mode = LearningMode(mode)
        if mode == self._mode:
            return
        if self._app is not None:
            # The settings are the one home of the mode: their change brings it back here.
            reason = self._app.apply_settings({"learning_mode": mode.value})
            if reason:
                self.show_error(ErrorInfo(f"The learning mode could not be changed: {reason}",
                                          source="Learning"))
            return
        self._adopt_mode(mode)

    def _settings_changed(self, settings: AppSettings) -> None:
        self._adopt_mode(settings.learning_mode)

    def _adopt_mode(self, mode: LearningMode) -> None:
        if mode == self._mode:
            return
        self._mode = mode
        if mode is not LearningMode.active:
            self.runs.cancel_learning_run()  # Off writes nothing, and Passive offers no runs
        log.info("learning mode: %s", mode.value)
        self.mode_changed.emit(mode.value)

    def clear_error(self) -> None:
        self.show_error(None)

    def show_error(self, info: ErrorInfo | None) -> None:
        """Show *info* (None: no error) in the learning panel's notice."""
        self._error = info
        self.error_changed.emit(info)

    def fail(self, exc: BaseException) -> None:
        """Log *exc* and show it in words."""
        info = error_from_exception(exc, "Learning")
        log.warning("learning: %s (%s)", info.message, info.detail)
        self.show_error(info)

    def writes_allowed(self) -> bool:
        """False, with a visible reason, while learning is Off."""
        if self._mode is LearningMode.off:
            self.show_error(ErrorInfo("Learning is off, so ratings are not kept. Choose Passive "
                                      "or Active in the Learning panel to keep them.",
                                      source="Learning"))
            return False
        return True

    @staticmethod
    def known_tags() -> tuple[str, ...]:
        return KNOWN_TAGS

    @staticmethod
    def mode_words() -> dict[str, str]:
        return {m.value: text for m, text in MODE_WORDS.items()}

    # --- records from the runner --------------------------------------------------------------

    def on_image_record(self, record: ImageRecord) -> None:
        """The pipeline runner's record hook: called for every saved image. Off writes nothing.

        Called on the event loop's (Qt) thread or a queue lane's: it only queues the record.
        Building the learning record (a full config dump and hash) and writing it both happen
        on the store's writer thread.
        """
        if self._mode is LearningMode.off:
            return
        if threading.current_thread() is self._thread:
            self.tasks.spawn(self._store_record(record), name="learning-record")
            return
        # From another thread (a queue lane): the worker is thread-safe; the signal is queued.
        future = self.worker.submit(_add_image_record, record)
        future.add_done_callback(lambda f: self._stored_elsewhere.emit(f))

    async def _store_record(self, record: ImageRecord) -> None:
        stored = await self.worker.call(_add_image_record, record)
        if stored is not None:
            self.record_stored.emit(stored)

    def _after_store(self, future: Future[LearningRecord | None]) -> None:
        exc = future.exception()
        if exc is not None:
            self.fail(exc)
        elif future.result() is not None:
            self.record_stored.emit(future.result())

    def _after_forget(self, future: Future[int]) -> None:
        exc = future.exception()
        if exc is not None:
            self.fail(exc)

    def on_outputs_removed(self, paths: list[Path]) -> None:
        """The queue deleted an unfinished attempt's images before re-running it: forget them
        so a re-run never leaves two records of one file. Safe from any thread."""
        if self._mode is LearningMode.off or not paths:
            return
        future = self.worker.submit(_forget, [str(p) for p in paths])
        # A forget that fails leaves stale records that a re-run would double: say so.
        future.add_done_callback(lambda f: self._forgotten_elsewhere.emit(f))

    # --- ratings, tags, notes -----------------------------------------------------------------

    def rate(self, ref: int | str | Path, stars: int | None) -> asyncio.Task[LearningError | None] | None:
        """Rate an image (by record id, image path or record key): 1–5 stars, 0/None clears.

        Returns the write's task (its result: the error that kept the rating out, or None), or
        None when learning is Off and nothing is written."""
        if self.writes_allowed():
            return self.tasks.spawn(self._change(known(LearningStore.rate), ref, stars),
                                    name="learning-rate")
        return None

    def tag(self, ref: int | str | Path, tag: str, on: bool = True
            ) -> asyncio.Task[LearningError | None] | None:
        """Add or remove one tag; returns the write's task as `rate` does."""
        if self.writes_allowed():
            return self.tasks.spawn(self._change(known(LearningStore.tag), ref, tag, on=on),
                                    name="learning-tag")
        return None

    def set_tags(self, ref: int | str | Path, tags: frozenset[str]
                 ) -> asyncio.Task[LearningError | None] | None:
        """Make the tags exactly *tags* (in one write after those queued before it); returns
        the write's task as `rate` does."""
        if self.writes_allowed():
            return self.tasks.spawn(self._change(known(set_tag_set), ref, tags),
                                    name="learning-tags")
        return None

    def set_note(self, ref: int | str | Path, note: str) -> None:
        if self.writes_allowed():
            self.tasks.spawn(self._change(LearningStore.set_note, ref, note), name="learning-note")

    async def _change(self, fn: Callable[..., LearningRecord], *args: object, **kwargs: object
                      ) -> LearningError | None:
        try:
            record = await self.worker.call(fn, *args, **kwargs)
        except LearningError as exc:
            self.fail(exc)
            return exc
        self.record_changed.emit(record)
        await self.runs.show_record(record)
        self.insights.refresh_insights()
        return None

    # --- the gallery's rating book ------------------------------------------------------------

    def rating_book(self) -> LearningRatingBook:
        """An object the gallery can use for ratings and tags, backed by this store."""
        return LearningRatingBook(self)

    def read_rating(self, path: str) -> tuple[int | None, tuple[str, ...]]:
        """Rating and tags of an image: an indexed read on a read-only connection that never
        waits for the writer (so it is fine on the Qt thread)."""
        return self._reader.rating(path)

    # --- lifecycle ------------------------------------------------------------------------------

    async def wait_idle(self, timeout: float = 10.0) -> None:
        await self.tasks.wait_idle(timeout)

    async def aclose(self) -> None:
        self.runs.cancel_learning_run()
        await self.tasks.wait_idle(timeout=5)
        await self.tasks.aclose()
        # Off the loop (the window): close waits for the writes still queued, and a write may
        # wait for the database another StableNew holds, up to SQLite's busy timeout.
        await asyncio.to_thread(self.worker.close)
        await asyncio.to_thread(self._reader.close)


def _add_image_record(store: LearningStore, image: ImageRecord) -> LearningRecord | None:
    """On the writer thread: build the learning record of a saved image and store it."""
    try:
        learning = LearningRecord.from_image_record(image)
    except Exception as exc:  # noqa: BLE001 - a hook must never break the run that called it
        log.warning("learning record for %s not built: %s", image.path, exc)
        return None
    return store.add_record(learning)


def _forget(store: LearningStore, paths: list[str]) -> int:
    forgotten = 0
    for path in paths:
        try:
            store.delete(path)
            forgotten += 1
        except LearningError:  # never recorded: nothing to forget
            pass
    return forgotten
