"""Reference pictures for the cards (stored off the Qt thread) and the fields a family skips."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from stablenew.controller.errors import ErrorInfo
from stablenew.controller.images import decode_image
from stablenew.controller.tasks import TaskOwner

if TYPE_CHECKING:
    from stablenew.controller.field_spec import FieldValue

THUMB_SIDE = 56

log = logging.getLogger(__name__)

#: Family defaults the txt2img card has a field for (others, like SD3.5's shift, the graph uses).
_CARD_DEFAULTS = ("sampler", "scheduler", "steps", "cfg_scale", "guidance", "width", "height", "clip_skip")

#: A family's hidden field (its name in resources/families/*.yaml) -> the card paths it covers.
_FIELD_PATHS = {
    "negative_prompt": ("txt2img.negative_prompt", "img2img.negative_override"),
    "cfg_scale": ("txt2img.cfg_scale", "img2img.cfg_scale"),
    "clip_skip": ("txt2img.clip_skip",),
    "refiner": ("txt2img.refiner.enabled",),
}


@dataclass(frozen=True)
class FamilyView:
    """What the card shows for a model family: its name, the fields it does not use (card
    path -> why) and its defaults as card values."""

    label: str
    hidden: dict[str, str]
    defaults: dict[str, FieldValue]


def family_view(checkpoint: str, choice: str, label: str = "") -> FamilyView:
    """The family of *checkpoint* (or the user's *choice*) as the txt2img card shows it; *label*
    is the catalog's base model of the checkpoint (from its header), which beats its name."""
    from stablenew.backends.families import ModelFamily, detect_family, profile

    try:
        family = detect_family(checkpoint, choice="" if choice in ("", "auto") else choice,
                               label=label)
    except ValueError:
        family = detect_family(checkpoint, label=label)
    prof = profile(family)
    hidden = {path: why for name, why in prof.hidden.items() for path in _FIELD_PATHS.get(name, ())}
    if family is not ModelFamily.flux:
        hidden["txt2img.guidance"] = f"Guidance is for Flux models; {prof.label} uses CFG."
        for path in ("txt2img.vae", "txt2img.text_encoder", "txt2img.text_encoder_2"):
            hidden[path] = f"{prof.label} models carry their own VAE and text encoders."
    defaults = {f"txt2img.{name}": value for name, value in prof.defaults_for(checkpoint).items()
                if name in _CARD_DEFAULTS}
    return FamilyView(prof.label, hidden, defaults)


def kind_choices() -> list[tuple[str, str]]:
    """(value, label) of each reference kind, as the config declares them."""
    from stablenew.pipeline.config import REFERENCE_KIND_LABELS

    return [(k.value, label) for k, label in REFERENCE_KIND_LABELS.items()]


class ReferencesController(QObject):
    """Keeps the pictures a card is given (by content hash, in the data folder) and hands the
    card back what to show: the unit's settings and a thumbnail."""

    #: stage ("txt2img"/"img2img"), the unit's settings (dict), its thumbnail (DecodedImage)
    reference_added = Signal(str, object, object)
    #: stage, what went wrong in plain words (a file that is no picture, one that cannot be read)
    reference_failed = Signal(str, str)
    #: stage, a stored picture's path, its thumbnail (DecodedImage; None: gone or unreadable),
    #: for a unit the card shows from a config (the last session's cards, a preset, an image's)
    thumbnail_ready = Signal(str, str, object)
    #: the stored copy of a picture chosen to start image-to-image from (its path)
    start_image_ready = Signal(str)
    error_changed = Signal(object)

    def __init__(self, folder: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._folder = folder
        self.tasks = TaskOwner("References", self)
        self.tasks.error_raised.connect(self._error)

    def folder(self) -> Path:
        if self._folder is None:
            from stablenew.cluster.start_images import REFERENCE_FOLDER
            from stablenew.storage.paths import AppPaths

            self._folder = AppPaths.default().data_dir / REFERENCE_FOLDER
        return self._folder

    def add_file(self, stage: str, path: str) -> None:
        """Store the picture at *path* for *stage*'s card."""
        self.tasks.spawn(self._add(stage, Path(path)), name="reference-add")

    def add_bytes(self, stage: str, data: bytes) -> None:
        """Store a pasted or dropped picture for *stage*'s card."""
        self.tasks.spawn(self._add(stage, bytes(data)), name="reference-add")

    async def _add(self, stage: str, source: Path | bytes) -> None:
        from stablenew.pipeline.references import ReferenceMissing, store_reference

        try:
            data = source if isinstance(source, bytes) else await asyncio.to_thread(source.read_bytes)
            ref = await asyncio.to_thread(store_reference, data, self.folder())
            thumb = await asyncio.to_thread(decode_image, data, THUMB_SIDE)
        except OSError as exc:
            what = "the pasted picture" if isinstance(source, bytes) else str(source)
            self.reference_failed.emit(stage, f"Cannot read {what}: {exc.strerror or exc}.")
            return
        except ReferenceMissing as exc:
            self.reference_failed.emit(stage, exc.message)
            return
        settings: dict[str, object] = ref.model_dump(mode="json")
        self.reference_added.emit(stage, settings, thumb)

    def choose_start_image(self, path: str) -> None:
        """Keep a copy of the picture at *path* to start image-to-image from (in the data
        folder's start_images, as the gallery's "Use as init image" does): a queued job still
        finds it when the file is moved or deleted. What goes wrong is said on the card."""
        self.tasks.spawn(self._start_image(Path(path)), name="start-image")

    async def _start_image(self, path: Path) -> None:
        from stablenew.cluster.start_images import START_FOLDER
        from stablenew.gallery.remake import NothingToRemake, store_start_image

        folder = self.folder().parent / START_FOLDER
        try:
            stored = await asyncio.to_thread(store_start_image, path, folder)
        except NothingToRemake as exc:
            self.reference_failed.emit("img2img", exc.message)
            return
        self.start_image_ready.emit(str(stored))

    def want_thumbnail(self, stage: str, path: str) -> None:
        """Decode the stored picture at *path* for *stage*'s card, off the Qt thread."""
        self.tasks.spawn(self._thumbnail(stage, path), name="reference-thumbnail")

    async def _thumbnail(self, stage: str, path: str) -> None:
        try:
            thumb = await asyncio.to_thread(decode_image, Path(path), THUMB_SIDE)
        except (OSError, ValueError) as exc:  # gone, or not a picture (PIL's errors are OSErrors)
            log.info("reference %s: no thumbnail: %s", path, exc)
            thumb = None
        self.thumbnail_ready.emit(stage, path, thumb)

    async def wait_idle(self, timeout: float = 5.0) -> None:
        await self.tasks.wait_idle(timeout)

    def _error(self, info: ErrorInfo) -> None:
        self.error_changed.emit(info)
