"""GalleryActions: what the gallery does to several images at once (trash, move, copy, export,
queue again, collections) and the compare pick, each off the Qt thread with its outcome said."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QObject, Signal

from stablenew.controller.errors import error_from_exception
from stablenew.controller.tasks import TaskOwner
from stablenew.errors import StableNewError

if TYPE_CHECKING:
    from stablenew.controller.gallery_controller import GalleryController
    from stablenew.controller.gallery_index import IndexedOutputs
    from stablenew.gallery.files import FileOutcome
    from stablenew.pipeline.config import PipelineConfig

log = logging.getLogger("stablenew.controller.gallery")


class ChoiceBook(Protocol):
    """Where a compare pick is kept: the learning store's pairwise choices (TasteController);
    the call may return an awaitable whose result is the error that kept the choice out."""

    def record_choice(self, winner: str, loser: str) -> Awaitable[Exception | None] | None: ...


class GalleryActionError(StableNewError):
    """A gallery action that could not be done as a whole (no index, no learning room)."""


def images(n: int) -> str:
    return f"{n:,} image{'s' if n != 1 else ''}"


class GalleryActions(QObject):
    """Batch actions on the gallery's selection; `message_changed` says what happened."""

    message_changed = Signal(str)
    collections_changed = Signal(object)  # list[tuple[str, int]]: name, images in it
    choices_changed = Signal(object)  # dict[str, list[str]]: what each filter can offer
    choice_recorded = Signal(str, str)  # winner, loser

    def __init__(self, gallery: GalleryController, outputs: IndexedOutputs | None) -> None:
        super().__init__(gallery)
        self.gallery = gallery
        self._outputs = outputs
        #: Queues a PipelineConfig (the session's add_to_queue), for "Queue again".
        self.enqueue: Callable[[PipelineConfig], None] | None = None
        #: The learning store's pairwise choices, for the compare pick (set when it opens).
        self.choice_book: ChoiceBook | None = None
        self.tasks = TaskOwner("Gallery", self)
        self.tasks.error_raised.connect(gallery.error_changed)

    def _index(self) -> IndexedOutputs:
        if self._outputs is None or not hasattr(self._outputs, "trash"):
            raise GalleryActionError("The gallery index is not open, so this cannot be done now.",
                                     detail="no IndexedOutputs")
        return self._outputs

    def _say(self, verb: str, outcome: FileOutcome) -> None:
        text = f"{verb} {images(len(outcome.done))}."
        if outcome.failed:
            path, reason = next(iter(outcome.failed.items()))
            more = len(outcome.failed) - 1
            text += (f" {images(len(outcome.failed))} not: {Path(path).name} {reason}"
                     + (f" (and {more} more)" if more else "") + ".")
            for path, reason in outcome.failed.items():
                log.warning("gallery %s: %s %s", verb.lower(), path, reason)
        self.message_changed.emit(text)

    def _working(self, verb: str, keys: list[str], where: str) -> None:
        """Said at once: the files wait for a gallery scan under way (a few seconds at 100,000
        images), and a large copy or export takes its own time."""
        self.message_changed.emit(f"{verb} {images(len(keys))}{where}…")

    # --- files ----------------------------------------------------------------------------------

    def trash(self, keys: list[str]) -> None:
        """Send the images to the system trash (the user can restore them from there)."""
        if keys:
            self.tasks.spawn(self._trash(list(keys)), name="gallery-trash")

    async def _trash(self, keys: list[str]) -> None:
        self._working("Moving", keys, " to the trash")
        outcome = await asyncio.to_thread(self._index().trash, keys)
        self.gallery.forget(list(outcome.done))
        self._say("Moved to the trash:", outcome)

    def transfer(self, keys: list[str], folder: str, *, copy: bool) -> None:
        """Move (or copy) the images into *folder*; moved ones keep their ratings."""
        if keys and folder:
            self.tasks.spawn(self._transfer(list(keys), folder, copy), name="gallery-move")

    async def _transfer(self, keys: list[str], folder: str, copy: bool) -> None:
        self._working("Copying" if copy else "Moving", keys, f" to {Path(folder).name}")
        outcome = await asyncio.to_thread(self._index().transfer, keys, folder, copy=copy)
        if not copy:
            self.gallery.forget(list(outcome.done))
        self._say("Copied" if copy else "Moved", outcome)
        self.gallery.refresh()

    def add_folder(self, folder: str) -> None:
        """Index a folder of the user's (other tools' images too) and list it with the outputs."""
        if folder:
            self.tasks.spawn(self._add_folder(folder), name="gallery-add-folder")

    async def _add_folder(self, folder: str) -> None:
        self.message_changed.emit(f"Reading the images in {Path(folder).name}…")
        found = await asyncio.to_thread(self._index().add_folder, folder)
        text = f"Added the folder {Path(folder).name}: {images(found.seen - len(found.problems))}."
        if found.problems:
            text += f" {images(len(found.problems))} could not be read ({found.problems[0].reason})."
        self.message_changed.emit(text)
        self.gallery.refresh()

    def export_zip(self, keys: list[str], dest: str) -> None:
        """A ZIP of the images with their parameters, ratings and tags in metadata.json."""
        if keys and dest:
            self.tasks.spawn(self._export(list(keys), dest), name="gallery-export")

    async def _export(self, keys: list[str], dest: str) -> None:
        self._working("Exporting", keys, f" to {Path(dest).name}")
        outcome = await asyncio.to_thread(self._index().export, keys, dest)
        self._say(f"Exported to {Path(dest).name}:", outcome)

    def queue_again(self, keys: list[str]) -> None:
        """Each image's settings (same seed) as a new queue job."""
        if keys:
            self.tasks.spawn(self._queue_again(list(keys)), name="gallery-queue-again")

    async def _queue_again(self, keys: list[str]) -> None:
        from stablenew.pipeline.infotext_config import config_from_image

        if self.enqueue is None:
            raise GalleryActionError("The queue is not open yet; try again in a moment.",
                                     detail="no enqueue hook")
        queued, failed = 0, []
        for key in keys:
            try:
                config, _loaded, _unknown = await asyncio.to_thread(config_from_image, Path(key))
            except Exception as exc:  # noqa: BLE001 - an image without settings is reported, the rest go on
                failed.append(f"{Path(key).name} ({exc})")
                continue
            self.enqueue(config)
            queued += 1
        text = f"Queued {images(queued)} again."
        if failed:
            text += f" Not queued (no settings could be read): {', '.join(failed[:3])}."
        self.message_changed.emit(text)

    # --- collections and filter choices ----------------------------------------------------------

    def load_collections(self) -> None:
        if self._outputs is not None and hasattr(self._outputs, "collections"):
            self.tasks.spawn(self._collections(), name="gallery-collections")

    async def _collections(self) -> None:
        self.collections_changed.emit(await asyncio.to_thread(self._index().collections))

    def add_to_collection(self, name: str, keys: list[str]) -> None:
        """Put the images in the album *name* (made when new); an empty selection only makes it."""
        name = name.strip()
        if not name:
            self.message_changed.emit("A collection needs a name.")
            return
        self.tasks.spawn(self._add_to_collection(name, list(keys)), name="gallery-collect")

    async def _add_to_collection(self, name: str, keys: list[str]) -> None:
        added = await asyncio.to_thread(self._index().add_to_collection, name, keys)
        self.message_changed.emit(f"Added {images(added)} to “{name}”." if keys
                                  else f"Made the collection “{name}”.")
        await self._collections()

    def load_choices(self) -> None:
        if self._outputs is not None and hasattr(self._outputs, "choices"):
            self.tasks.spawn(self._choices(), name="gallery-choices")

    async def _choices(self) -> None:
        self.choices_changed.emit(await asyncio.to_thread(self._index().choices))

    # --- compare ---------------------------------------------------------------------------------

    def pick(self, winner: str, loser: str) -> None:
        """The user found *winner* better than *loser*: kept as a pairwise choice for learning."""
        book = self.choice_book
        if book is None:
            self.gallery.report(error_from_exception(GalleryActionError(
                "Your pick cannot be kept: the learning part of StableNew is not open.",
                detail="no choice book"), "Gallery"))
            return
        self.tasks.spawn(self._pick(book, winner, loser), name="gallery-pick")

    async def _pick(self, book: ChoiceBook, winner: str, loser: str) -> None:
        outcome = book.record_choice(winner, loser)
        # The taste controller's task ends with the reason a choice was not kept (it says so
        # in the learning room too), or None.
        result = await outcome if inspect.isawaitable(outcome) else outcome
        if isinstance(result, Exception):
            raise result
        self.choice_recorded.emit(winner, loser)

    async def aclose(self) -> None:
        await self.tasks.aclose()
