"""TasteController: the "which is better?" mode, the next experiment and the recommended values
of a pack, as Qt state and signals.

Store reads and writes run on this controller's own store thread (`StoreWorker`), images are
decoded in a worker thread and the taste model is fitted there too, so the Qt thread never
waits. A choice made here or in the gallery's compare view (`record_choice`) refits the
model, and the suggestion follows.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QObject, Signal, SignalInstance

from stablenew.controller.errors import ErrorInfo, error_from_exception
from stablenew.controller.images import DecodedImage, decode_image
from stablenew.controller.tasks import TaskOwner
from stablenew.learning.choices import Outcome
from stablenew.learning.errors import LearningError
from stablenew.learning.pairs import ImagePair, pick_pair, record_choice_of_files
from stablenew.learning.store import LearningStore, default_database
from stablenew.learning.suggest import (
    NextExperiment,
    PresetValue,
    next_experiment,
    recommended_values,
)
from stablenew.learning.taste import fit_taste
from stablenew.learning.worker import StoreWorker
from stablenew.storage.settings import LearningMode
from stablenew.storage.words import plural

if TYPE_CHECKING:
    from collections.abc import Sequence

    from stablenew.learning.choices import Choice
    from stablenew.pipeline.config import PipelineConfig

log = logging.getLogger("stablenew.controller.taste")

SHOW_SIDE = 768  # pixels: the longest side an image of a pair is decoded at


class RunStarter(Protocol):
    """What starts a learning run: the learning room's run controller."""

    def start_learning_run(self, parameter: str, values: str | Sequence[object] | None = None, *,
                           images_per_value: int = 1, pack: str | None = None,
                           base: PipelineConfig | None = None) -> bool: ...


class LearningRoom(Protocol):
    """The learning room's controller: its learning runs, its mode, and the error that stopped
    a run."""

    @property
    def runs(self) -> RunStarter: ...

    @property
    def error(self) -> ErrorInfo | None: ...

    @property
    def mode(self) -> LearningMode: ...

    def set_mode(self, mode: LearningMode | str) -> None: ...

    def clear_error(self) -> None: ...

    mode_changed: SignalInstance


@dataclass(frozen=True)
class PairShown:
    """A pair with its pixels, ready for the view (which shows no settings: a blind choice)."""

    pair: ImagePair
    left: DecodedImage
    right: DecodedImage


class TasteController(QObject):
    """Pairwise choices, the taste model's next experiment and recommendations for the GUI."""

    pair_changed = Signal(object)  # PairShown | None (None: fewer than two images to compare)
    suggestion_changed = Signal(object)  # NextExperiment | None
    recommendation_changed = Signal(object)  # list[PresetValue]
    choice_recorded = Signal(object)  # Choice
    queued = Signal(str)  # what was queued, in words
    packs_changed = Signal(object)  # list[str]: the packs with images ("": images without one)
    error_changed = Signal(object)  # ErrorInfo | None
    mode_changed = Signal()  # learning's mode changed: whether queuing switches it may differ

    def __init__(self, store: str | Path | LearningStore | None = None, *,
                 learning: LearningRoom | None = None, seed: int | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        if isinstance(store, LearningStore):
            self._worker = StoreWorker(store)
        else:
            path = Path(store) if store is not None else default_database()
            self._worker = StoreWorker(lambda: LearningStore(path))
        self._learning = learning
        self._rng = random.Random(seed)
        self._pack: str | None = None
        self._packs: list[str] = []
        self._pair: PairShown | None = None
        self._suggestion: NextExperiment | None = None
        self._recommendation: list[PresetValue] = []
        self._error: ErrorInfo | None = None
        self._unreadable: set[int] = set()  # records whose image files cannot be decoded
        self._refreshing = False
        self._refresh_again = False
        self.tasks = TaskOwner("Learning", self)
        self.tasks.error_raised.connect(self._set_error)
        if learning is not None:
            learning.mode_changed.connect(lambda _mode: self.mode_changed.emit())

    # --- state ------------------------------------------------------------------------------

    @property
    def pack(self) -> str | None:
        return self._pack

    @property
    def packs(self) -> list[str]:
        """The packs there are images of, the choices besides all packs together."""
        return self._packs

    @property
    def pair(self) -> PairShown | None:
        return self._pair

    @property
    def suggestion(self) -> NextExperiment | None:
        return self._suggestion

    @property
    def recommendation(self) -> list[PresetValue]:
        return self._recommendation

    @property
    def error(self) -> ErrorInfo | None:
        return self._error

    def clear_error(self) -> None:
        self._set_error(None)

    def _set_error(self, info: ErrorInfo | None) -> None:
        self._error = info
        self.error_changed.emit(info)

    def set_pack(self, pack: str | None) -> None:
        """Compare and suggest within one pack ("" for images without a pack), None for all."""
        self._pack = pack
        self.refresh()
        self.next_pair()

    # --- which is better? ---------------------------------------------------------------------

    def next_pair(self) -> None:
        """Load two images to compare (off the Qt thread); `pair_changed` shows them."""
        pack, rng = self._pack, self._rng
        parameter = self._suggestion.parameter if self._suggestion is not None else None

        async def _load() -> None:
            shown = None
            while shown is None:
                pair = await self._worker.call(_pick, pack, parameter, rng, frozenset(self._unreadable))
                if pair is None:
                    break
                try:
                    left, right = await asyncio.gather(
                        asyncio.to_thread(decode_image, pair.left_path, SHOW_SIDE),
                        asyncio.to_thread(decode_image, pair.right_path, SHOW_SIDE))
                except (OSError, ValueError) as exc:
                    # A damaged or half-written file: leave it out and show another pair.
                    log.info("pair not shown, an image is unreadable: %s", exc)
                    bad = await asyncio.to_thread(_unreadable_of, pair)
                    self._unreadable.update(bad or {pair.left_id, pair.right_id})
                    continue
                shown = PairShown(pair, left, right)
            self._pair = shown
            self.pair_changed.emit(shown)
        self.tasks.spawn(_load(), name="taste-pair")

    def choose(self, outcome: Outcome | str) -> asyncio.Task[LearningError | None] | None:
        """The user's answer for the pair shown: "left", "right" or "same"; then the next pair."""
        shown = self._pair
        if shown is None:
            return None
        outcome = Outcome(outcome)
        pair = shown.pair
        winner, loser = ((pair.right_id, pair.left_id) if outcome is Outcome.right
                         else (pair.left_id, pair.right_id))
        self._pair = None  # one answer per pair, however fast the keys come
        task = self.record_choice(winner, loser, same=outcome is Outcome.same,
                                  source="which is better")
        self.next_pair()
        return task

    def record_choice(self, winner: int | str | Path, loser: int | str | Path, *,
                      same: bool = False, source: str = "gallery compare"
                      ) -> asyncio.Task[LearningError | None]:
        """Keep a side-by-side choice (images by record id or path; an image StableNew made
        while learning was off is recorded from its PNG first). The task's result is the
        error that kept it out, or None; the model and its suggestion follow."""
        async def _record() -> LearningError | None:
            try:
                choice: Choice = await self._worker.call(
                    record_choice_of_files, _ref(winner), _ref(loser), same=same, source=source)
            except LearningError as exc:
                info = error_from_exception(exc, "Learning")
                log.warning("choice not kept: %s (%s)", info.message, info.detail)
                self._set_error(info)
                return exc
            self.choice_recorded.emit(choice)
            self.refresh()
            return None
        return self.tasks.spawn(_record(), name="taste-choice")

    # --- the model: next experiment and recommendation ----------------------------------------

    def refresh(self) -> None:
        """Refit the pack's taste model off the Qt thread; bursts of choices coalesce."""
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        self.tasks.spawn(self._refresh(), name="taste-refresh")

    async def _refresh(self) -> None:
        try:
            while True:
                self._refresh_again = False
                pack = self._pack
                suggestion, values, packs = await self._worker.call(_suggest, pack)
                if not self._refresh_again:
                    break
        finally:
            self._refreshing = False
        if packs != self._packs:
            self._packs = packs
            self.packs_changed.emit(packs)
        self._suggestion = suggestion
        self._recommendation = values
        self.suggestion_changed.emit(suggestion)
        self.recommendation_changed.emit(values)

    @property
    def needs_active_mode(self) -> bool:
        """Queuing the suggestion would first switch learning to Active (runs need it)."""
        return self._learning is not None and self._learning.mode is not LearningMode.active

    def queue_suggestion(self, *, switch_to_active: bool = False) -> bool:
        """Queue the suggested experiment as a learning run on the current settings (one
        click); with *switch_to_active* (the button said so) learning is switched to Active
        first. False with a visible error when it cannot start."""
        suggestion = self._suggestion
        if suggestion is None or self._learning is None:
            self._set_error(ErrorInfo("There is no suggestion to queue yet." if suggestion is None
                                      else "Learning runs cannot be started from here.",
                                      source="Learning"))
            return False
        if switch_to_active and self.needs_active_mode:
            log.info("switching learning to active to queue the suggested %s run",
                     suggestion.parameter)
            self._learning.set_mode(LearningMode.active)
        started = self._learning.runs.start_learning_run(
            suggestion.parameter, list(suggestion.values),
            images_per_value=suggestion.images_per_value, pack=suggestion.pack)
        if not started:
            error = self._learning.error
            why = error.message if error is not None else ""
            # Said once, here beside the button, not again at the top of the Learning tab.
            self._learning.clear_error()
            self._set_error(ErrorInfo(f"The learning run did not start. {why}".strip(),
                                      source="Learning"))
            return False
        self.queued.emit(f"Queued: a learning run on {suggestion.label.lower()} "
                         f"({plural(suggestion.image_count, 'image')}); it shows in the Compare tab.")
        return True

    # --- lifecycle ------------------------------------------------------------------------------

    async def wait_idle(self, timeout: float = 10.0) -> None:
        await self.tasks.wait_idle(timeout)

    async def aclose(self) -> None:
        await self.tasks.aclose()
        await asyncio.to_thread(self._worker.close)


def _ref(ref: int | str | Path) -> int | str:
    return ref if isinstance(ref, int) else str(ref)


def _pick(store: LearningStore, pack: str | None, parameter: str | None,
          rng: random.Random, skip: frozenset[int]) -> ImagePair | None:
    """On the store thread: a pair differing in the setting of the next experiment (worked
    out now when no suggestion is in yet)."""
    if parameter is None:
        parameter = next_experiment(fit_taste(store, pack)).parameter
    return pick_pair(store, pack, parameter, rng, skip)


def _unreadable_of(pair: ImagePair) -> set[int]:
    """The records of *pair* whose files do not decode (in a worker thread)."""
    bad = set()
    for record_id, path in ((pair.left_id, pair.left_path), (pair.right_id, pair.right_path)):
        try:
            decode_image(path, 8)
        except (OSError, ValueError):
            bad.add(record_id)
    return bad


def _suggest(store: LearningStore, pack: str | None
             ) -> tuple[NextExperiment, list[PresetValue], list[str]]:
    """On the store thread: fit the pack's model, then what to try next and what to keep, and
    the packs there are to choose from."""
    model = fit_taste(store, pack)
    return next_experiment(model), recommended_values(model), store.packs()
