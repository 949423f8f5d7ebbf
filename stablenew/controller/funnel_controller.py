"""FunnelController: the draft funnel for the window — the funnel under way (kept in
`funnel.json`), the images of the stage the user looks at, and the user's steps as slots.

Every stage is a queue job asking for its node tier (`cluster.funnel`). The funnel is saved
before its job is added, with the job's id, so a crash in between loses nothing: on the next
start a stage whose job is missing from the queue is queued again under the same id. Each stage
after the drafts starts from the picked images of the stage before, copied first into the data
folder's start_images under their content hash (as the gallery's "Use as init image" does), so a
queued stage survives the original moving. The images come from the queue's items as they
finish (read off the Qt thread whenever the queue changes).

A new funnel does not throw the one under way away: it goes to the earlier funnels, which the
user may reopen (their queued stages go on meanwhile). A stage whose images were cancelled or
could not be made can be queued again, under its own job, from the same pictures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from stablenew.cluster.funnel import (
    Funnel,
    FunnelError,
    FunnelSettings,
    FunnelStage,
    FunnelStep,
    StageRun,
    next_step,
    picked_images,
    stage_config,
    start,
)
from stablenew.cluster.funnel_store import FUNNEL_FILE, FunnelFile, FunnelStore
from stablenew.cluster.jobs import ItemState, JobKind, WorkItem
from stablenew.cluster.queue_db import UnknownId
from stablenew.cluster.start_images import START_FOLDER
from stablenew.controller.errors import ErrorInfo
from stablenew.controller.format import plural
from stablenew.controller.funnel_view import (
    THUMB_SIDE,
    UNDER_WAY,
    AgainOffer,
    Crumb,
    FunnelImage,
    PastFunnel,
    past_words,
    with_made,
)
from stablenew.controller.images import DecodedImage, decode_image
from stablenew.controller.tasks import TaskOwner

if TYPE_CHECKING:
    from stablenew.cluster.queue_store import QueueStore
    from stablenew.controller.queue_controller import QueueController
    from stablenew.pipeline.config import PipelineConfig

log = logging.getLogger("stablenew.controller.funnel")



class FunnelController(QObject):
    """The draft funnel as the window sees it: state, signals and slots (see module docstring)."""

    funnel_changed = Signal()  # the stage looked at, its images or the picks changed
    past_changed = Signal()  # the list of earlier funnels changed
    settings_changed = Signal()
    error_changed = Signal(object)  # ErrorInfo | None
    message_changed = Signal(str)
    loaded_changed = Signal(bool)
    thumbnail_ready = Signal(str, object)  # path, DecodedImage

    def __init__(self, data_dir: Path, queue: QueueController, *,
                 base_config: Callable[[], PipelineConfig], output_root: Callable[[], Path],
                 start_queue: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = FunnelStore(data_dir / FUNNEL_FILE)
        self._start_folder = data_dir / START_FOLDER
        self._queue = queue
        self._base_config = base_config
        self._output_root = output_root
        self._start_queue = start_queue
        self._file = FunnelFile()
        self._states: dict[str, list[WorkItem]] = {}  # each stage's queue items, by job id
        self._loaded = False
        self._save_lock = asyncio.Lock()
        self._reading = False
        self._read_again = False
        self._error: ErrorInfo | None = None
        self._thumbs: dict[str, DecodedImage] = {}
        self._thumb_requests: set[str] = set()
        self.tasks = TaskOwner("Funnel", self)
        self.tasks.error_raised.connect(self._set_error)
        queue.jobs_changed.connect(self._queue_changed)

    # --- state ----------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def funnel(self) -> Funnel | None:
        return self._file.funnel

    @property
    def settings(self) -> FunnelSettings:
        return self._file.settings

    @property
    def error(self) -> ErrorInfo | None:
        return self._error

    def crumbs(self) -> list[Crumb]:
        funnel = self.funnel
        made = len(funnel.runs) if funnel else 0
        viewing = funnel.viewing if funnel else -1
        return [Crumb(stage, i < made, i == viewing) for i, stage in enumerate(FunnelStage)]

    def images(self) -> list[FunnelImage]:
        """The images of the stage looked at, in order."""
        funnel = self.funnel
        if funnel is None:
            return []
        run = funnel.current
        items = {i.index: i for i in self._states.get(run.job_id, [])}
        out = []
        for index, (seed, path) in enumerate(zip(run.seeds, run.images, strict=True)):
            item = items.get(index)
            state = ItemState.done if path else (item.state if item else ItemState.queued)
            out.append(FunnelImage(index, seed, path, state, index in run.picks,
                                   (item.error or "") if item else ""))
        return out

    def summary(self) -> str:
        """One line on where the funnel is, for the view's heading."""
        funnel = self.funnel
        if funnel is None:
            return "Start a funnel from the cards' prompt: quick drafts first, then you pick."
        run = funnel.current
        total = len(run.seeds)
        following = run.stage.next
        text = f"{run.stage.label}: {run.ready} of {plural(total, 'image')} ready"
        if following is not None:
            most = funnel.settings.counts.of(following)
            text += f", {len(run.picks)} picked (pick up to {most} to {following.verb.lower()})"
        offer = self.again_offer()
        if offer is not None:
            text += (f". {plural(offer.count, 'image')} "
                     f"{'was' if offer.count == 1 else 'were'} cancelled or could not be made")
        return text + "."

    def next_stage(self) -> FunnelStage | None:
        funnel = self.funnel
        return funnel.current.stage.next if funnel else None

    def replaces_later(self) -> bool:
        """Going on from the stage looked at makes its next stage anew (one was made before)."""
        funnel = self.funnel
        return funnel is not None and funnel.viewing < len(funnel.runs) - 1

    def past_funnels(self) -> list[PastFunnel]:
        """The earlier funnels, the most recently left first."""
        return [PastFunnel(f.id, past_words(f)) for f in self._file.past]

    def new_funnel_question(self) -> str:
        """What a new funnel would put aside, in a sentence, or "" when nothing is at stake
        (no funnel, or one with no picks and nothing still being made)."""
        funnel = self.funnel
        if funnel is None:
            return ""
        picks = sum(len(r.picks) for r in funnel.runs)
        busy = [r.stage.value for r in funnel.runs if self._under_way(r)]
        stages = (f"{' and '.join(busy)} stage{'s' if len(busy) > 1 else ''} "
                  f"{'are' if len(busy) > 1 else 'is'} still being made")
        if picks and busy:
            said = f"This funnel has {plural(picks, 'pick')}, and its {stages}."
        elif picks:
            said = f"This funnel has {plural(picks, 'pick')}."
        elif busy:
            said = f"This funnel's {stages}."
        else:
            return ""
        return f"{said} Start a new one?"

    def again_offer(self) -> AgainOffer | None:
        """The images of the stage looked at that may be queued once more, if any."""
        funnel = self.funnel
        if funnel is None:
            return None
        run = funnel.current
        items = self._states.get(run.job_id)
        if items is None or run.ready == len(run.seeds):
            return None  # all made, or the queue not read yet
        if not items:  # the job is gone from the queue: every image still to come
            return AgainOffer(run.stage, len(run.seeds) - run.ready)
        stopped = sum(i.state in (ItemState.failed, ItemState.cancelled)
                      and 0 <= i.index < len(run.images) and run.images[i.index] is None
                      for i in items)
        return AgainOffer(run.stage, stopped) if stopped else None

    def _under_way(self, run: StageRun) -> bool:
        """Some image of *run* is still queued or being made (or the queue was not read yet)."""
        if run.ready == len(run.seeds):
            return False
        items = self._states.get(run.job_id)
        if items is None:
            return True
        return any(i.state in UNDER_WAY for i in items)

    # --- slots ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Read the funnel file and the queue's state of its stages (off the Qt thread)."""
        self.tasks.spawn(self._load(), name="funnel-load")

    def start_funnel(self) -> None:
        """A new funnel from the cards as they are now: its drafts go to the queue."""
        try:
            funnel, step = start(self._base_config(), self.settings)
        except FunnelError as exc:
            self._set_error(ErrorInfo(str(exc), source="Funnel"))
            return
        self._set_error(None)
        before = self._file
        self.tasks.spawn(self._queue_step(before.started(funnel), step, before=before),
                         name="funnel-start")

    def reopen(self, funnel_id: str) -> None:
        """An earlier funnel under way again, as it was left; the one under way goes to the
        earlier funnels."""
        try:
            self._file = self._file.reopened(funnel_id)
        except KeyError:
            return  # already gone from the list
        self._set_error(None)
        self.past_changed.emit()
        self.funnel_changed.emit()
        self.tasks.spawn(self._save(), name="funnel-save")
        self.tasks.spawn(self._read_images(), name="funnel-read")

    def run_again(self) -> None:
        """Queue once more the images of the stage looked at that were cancelled or could not
        be made: the same job (or, gone from the queue, one under its id), the same pictures."""
        funnel = self.funnel
        if funnel is None or self.again_offer() is None:
            return
        self._set_error(None)
        # Until the queue is read again the stage's state is not known: the offer goes (a
        # second click would queue nothing more).
        self._states.pop(funnel.current.job_id, None)
        self.funnel_changed.emit()
        self.tasks.spawn(self._run_again(funnel, funnel.current), name="funnel-again")

    async def _run_again(self, funnel: Funnel, run: StageRun) -> None:
        store = await self._queue.store()
        if await asyncio.to_thread(_job_exists, store, run.job_id):
            count = await asyncio.to_thread(store.retry_failed, run.job_id,
                                            include_cancelled=True)
            self._queue.refresh()
            if not self._queue.running:
                self._start_queue()
        else:
            step = _step_again(funnel, run)
            await self._add_job(step)
            count = len(step.configs)
        log.info("funnel: stage %s (job %s) queued again: %d images", run.stage.value,
                 run.job_id, count)
        self.message_changed.emit(f"Funnel: {plural(count, 'image')} queued again "
                                  f"({run.stage.label.lower()}).")
        await self._read_images()

    def set_picked(self, index: int, picked: bool) -> None:
        funnel = self.funnel
        if funnel is None:
            return
        picks = set(funnel.current.picks)
        (picks.add if picked else picks.discard)(index)
        self._change(funnel.pick(funnel.viewing, sorted(picks)))

    def go_on(self) -> None:
        """The next stage from the picks of the stage looked at (replacing any made before)."""
        funnel = self.funnel
        if funnel is None:
            return
        try:
            pictures = picked_images(funnel)
        except FunnelError as exc:
            self._set_error(ErrorInfo(str(exc), source="Funnel"))
            return
        self._set_error(None)
        self.tasks.spawn(self._go_on(funnel, pictures), name="funnel-next")

    async def _go_on(self, funnel: Funnel, pictures: Sequence[str]) -> None:
        """Keep copies of the picked *pictures* (off the Qt thread), then queue the stage that
        starts from them."""
        from stablenew.gallery.remake import NothingToRemake  # not needed at start-up

        try:
            sources = await asyncio.to_thread(_keep_copies, pictures, self._start_folder)
            step = next_step(funnel, sources)
        except (NothingToRemake, FunnelError) as exc:
            self._set_error(ErrorInfo(str(exc), source="Funnel"))
            return
        # Stages made before from other picks are replaced: what is left of them stops.
        dropped = [r.job_id for r in funnel.runs[funnel.viewing + 1:] if r.ready < len(r.seeds)]
        before = self._file
        after = before.model_copy(update={"funnel": funnel.advanced(step.run())})
        await self._queue_step(after, step, before=before, dropped=dropped)

    def view_stage(self, index: int) -> None:
        """Go to a stage of the breadcrumb: its images and the picks made there."""
        funnel = self.funnel
        if funnel is None or index == funnel.viewing:
            return
        try:
            self._change(funnel.view(index))
        except FunnelError as exc:
            self._set_error(ErrorInfo(str(exc), source="Funnel"))

    def set_settings(self, settings: FunnelSettings) -> None:
        """The counts and presets the next funnel starts with (and the next stage's limit)."""
        self._file = self._file.model_copy(update={"settings": settings})
        funnel = self.funnel
        if funnel is not None:
            self._file.funnel = funnel.model_copy(update={"settings": settings})
        self.settings_changed.emit()
        self.funnel_changed.emit()
        self.tasks.spawn(self._save(), name="funnel-save")

    def clear_error(self) -> None:
        self._set_error(None)

    def thumbnail(self, path: str) -> DecodedImage | None:
        """The image's thumbnail, or None after asking for it (`thumbnail_ready` brings it)."""
        found = self._thumbs.get(path)
        if found is None and path not in self._thumb_requests:
            self._thumb_requests.add(path)
            self.tasks.spawn(self._decode(path), name="funnel-thumbnail")
        return found

    async def _decode(self, path: str) -> None:
        try:
            decoded = await asyncio.to_thread(decode_image, path, THUMB_SIDE)
        except OSError as exc:  # gone or unreadable: the tile says so, nothing else fails
            log.info("funnel: no thumbnail for %s: %s", path, exc)
            return
        finally:
            self._thumb_requests.discard(path)
        if len(self._thumbs) > 200:
            self._thumbs.clear()
        self._thumbs[path] = decoded
        self.thumbnail_ready.emit(path, decoded)

    # --- the work ------------------------------------------------------------------------------

    def _change(self, funnel: Funnel) -> None:
        self._file.funnel = funnel
        self.funnel_changed.emit()
        self.tasks.spawn(self._save(), name="funnel-save")

    async def _save(self) -> None:
        async with self._save_lock:  # in the order asked: the last change is the one on disk
            await asyncio.to_thread(self._store.save, self._file.model_copy())

    async def _load(self) -> None:
        self._file = await asyncio.to_thread(self._store.load)
        if self._store.problem:
            self.message_changed.emit(self._store.problem)
        self._loaded = True
        self.loaded_changed.emit(True)
        self.settings_changed.emit()
        self.past_changed.emit()
        self.funnel_changed.emit()
        funnel = self.funnel
        if funnel is not None:
            await self._requeue_missing(funnel)
            await self._read_images()

    async def _queue_step(self, after: FunnelFile, step: FunnelStep, *, before: FunnelFile,
                          dropped: Sequence[str] = ()) -> None:
        """Save the funnel file *after* (the funnel with its new stage), then queue the stage;
        a stage that cannot be queued is taken back (and the file saved as it was, *before*).
        The jobs of *dropped* stages are cancelled once the new one is queued."""
        past_moves = after.past is not before.past  # a new funnel: the list changes
        self._file = after
        if past_moves:
            self.past_changed.emit()
        self.funnel_changed.emit()
        await self._save()
        try:
            await self._add_job(step)
        except BaseException:
            self._file = before
            if past_moves:
                self.past_changed.emit()
            self.funnel_changed.emit()
            await self._save()
            raise
        for job_id in dropped:
            if self._queue.model.row_of(job_id) >= 0:  # still in the queue
                self._queue.cancel_job(job_id)
        self.message_changed.emit(f"Funnel: {plural(len(step.configs), 'image')} queued "
                                  f"({step.stage.label.lower()}).")
        await self._read_images()

    async def _add_job(self, step: FunnelStep) -> None:
        store = await self._queue.store()
        root = self._output_root()
        await asyncio.to_thread(store.add_job, list(step.configs), name=step.name,
                                kind=JobKind.plan, expand_batches=False, output_root=root,
                                job_id=step.job_id, tier=step.tier)
        self._queue.refresh()
        if not self._queue.running:
            self._start_queue()

    async def _requeue_missing(self, funnel: Funnel) -> None:
        """A stage saved whose job never reached the queue (a crash in between), or was
        cleared from it before its images were all made: queued again under the same id."""
        store = await self._queue.store()
        for run in funnel.runs:
            if run.ready == len(run.seeds):
                continue
            if await asyncio.to_thread(_job_exists, store, run.job_id):
                continue
            try:
                step = _step_again(funnel, run)
            except FunnelError as exc:  # a stage from a file that kept no pictures to start from
                log.warning("funnel: stage %s (job %s) cannot be queued again: %s",
                            run.stage.value, run.job_id, exc)
                self._set_error(ErrorInfo(str(exc), source="Funnel"))
                continue
            log.info("funnel: stage %s (job %s) was not in the queue; queued again",
                     run.stage.value, run.job_id)
            await self._add_job(step)

    def _funnels(self) -> list[Funnel]:
        """The funnel under way, then the earlier ones (their queued stages go on too)."""
        return [f for f in (self.funnel, *self._file.past) if f is not None]

    def _queue_changed(self) -> None:
        funnel = self.funnel
        if funnel is None or not self._loaded:
            return
        if (any(r.ready < len(r.seeds) for f in self._funnels() for r in f.runs)
                or funnel.current.job_id not in self._states):
            self.tasks.spawn(self._read_images(), name="funnel-read")

    async def _read_images(self) -> None:
        """Bring each unfinished stage's images and states in from the queue, the earlier
        funnels' too (coalesced)."""
        if self._reading:
            self._read_again = True
            return
        self._reading = True
        try:
            while True:
                self._read_again = False
                funnel = self.funnel
                if funnel is None:
                    return
                store = await self._queue.store()
                wanted = [funnel.current.job_id] + [
                    r.job_id for f in self._funnels() for r in f.runs if r.ready < len(r.seeds)]
                states = await asyncio.to_thread(_read_items, store, wanted)
                self._states.update(states)
                if self._take_images(states):
                    await self._save()
                self.funnel_changed.emit()
                if not self._read_again:
                    return
        finally:
            self._reading = False

    def _take_images(self, states: dict[str, list[WorkItem]]) -> bool:
        """Fill in the images the queue has made; True when a funnel changed."""
        if self.funnel is None:
            return False
        current = with_made(self.funnel, states)
        past = [with_made(f, states) for f in self._file.past]
        changed = current is not self.funnel or any(
            new is not old for new, old in zip(past, self._file.past, strict=True))
        if changed:
            self._file = self._file.model_copy(update={"funnel": current, "past": past})
        return changed

    def _set_error(self, info: ErrorInfo | None) -> None:
        self._error = info
        self.error_changed.emit(info)

    async def aclose(self) -> None:
        """Let a save or a queued step under way finish (bounded), then stop."""
        await self.tasks.wait_idle(timeout=5)
        await self.tasks.aclose()


def _job_exists(store: QueueStore, job_id: str) -> bool:
    try:
        store.reads.get_job(job_id)
    except UnknownId:
        return False
    return True


def _read_items(store: QueueStore, job_ids: Sequence[str]) -> dict[str, list[WorkItem]]:
    return {job_id: store.reads.items(job_id) for job_id in dict.fromkeys(job_ids)}


def _step_again(funnel: Funnel, run: StageRun) -> FunnelStep:
    """The step that makes *run* (its seeds, its job id) once more."""
    sources = run.sources or [""] * len(run.seeds)
    configs = tuple(stage_config(funnel.base, run.stage, seed, funnel.settings, source)
                    for seed, source in zip(run.seeds, sources, strict=True))
    name = f"Funnel {run.stage.label.lower()}: {funnel.name}"
    return FunnelStep(run.stage, run.job_id, name, configs, tuple(run.sources))


def _keep_copies(pictures: Sequence[str], folder: Path) -> list[str]:
    """Copies of *pictures* in *folder* under their content hash (blocking file I/O)."""
    from stablenew.gallery.remake import store_start_image

    return [str(store_start_image(Path(p), folder)) for p in pictures]


__all__ = ["START_FOLDER", "THUMB_SIDE", "AgainOffer", "Crumb", "FunnelController", "FunnelImage",
           "FunnelSettings", "FunnelStage", "PastFunnel"]
