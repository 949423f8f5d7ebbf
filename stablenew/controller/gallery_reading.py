"""Reading outputs for the gallery off the Qt thread: folder listings, thumbnails, details."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.controller.images import DecodedImage, decode_image
from stablenew.pipeline.outputs import thumbnail_path

if TYPE_CHECKING:
    from stablenew.controller.gallery_ratings import RatingBook

log = logging.getLogger("stablenew.controller.gallery")

THUMB_SIDE = 160
LARGE_SIDE = 1280


@dataclass
class GalleryItem:
    """One output image as the gallery lists it."""

    path: Path
    created: float
    thumbnail: Path | None = None
    #: saved by a run of this session (kept in front when the folder is scanned again); its
    #: ImageRecord is not kept: an overnight batch lists tens of thousands of images
    fresh: bool = False
    rating: int | None = None
    tags: tuple[str, ...] = ()
    model: str = ""  # from the gallery index, for the hover tooltip ("" when not indexed yet)
    prompt: str = ""

    @property
    def key(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class ImageDetail:
    """What the large view shows: pixels and the parameters the image carries."""

    path: Path
    image: DecodedImage
    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None
    parameters: str = ""  # the A1111 infotext, as written in the PNG
    settings: dict[str, str] = field(default_factory=dict)
    model: str = ""
    family: str = ""  # the model family's badge ("SDXL"), "" when the model is not known


#: A model family as its badge says it (resources/families/*.yaml give the same labels).
_FAMILY_BADGES = {"sd15": "SD 1.5", "sdxl": "SDXL", "pony": "Pony", "illustrious": "Illustrious",
                  "flux": "Flux", "sd35": "SD 3.5"}


def family_badge(model: str) -> str:
    """The model family the model's name says ("SDXL", "Flux"…), or "" for no model name."""
    if not model.strip():
        return ""
    from stablenew.backends.families import family_from_name

    return _FAMILY_BADGES.get(family_from_name(model).value, "")


def items_with_ratings(found: list[tuple[Path, float, Path | None]], ratings: RatingBook
                        ) -> list[GalleryItem]:
    """Gallery items for scanned outputs, with their stored rating and tags (in a worker thread)."""
    many = getattr(ratings, "ratings", None)  # a book that reads a page at once
    if many is not None:
        known = many([str(path) for path, _created, _thumb in found])
        marks = [known.get(str(path), (None, ())) for path, _created, _thumb in found]
    else:
        marks = [ratings.rating(str(path)) for path, _created, _thumb in found]
    return [GalleryItem(path, created, thumb, rating=stars, tags=tags)
            for (path, created, thumb), (stars, tags) in zip(found, marks, strict=True)]


def scan_outputs(root: Path) -> list[tuple[Path, float, Path | None]]:
    """Every PNG output under *root* (run folders one or two levels deep), newest first.

    Listing and stat-ing are cheap next to rating look-ups and decoding, which happen a page at
    a time, so the whole folder is listed at once and the order holds across pages."""
    found: list[tuple[Path, float, Path | None]] = []
    if not root.is_dir():
        return found
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                # Our thumbnails live in dot folders (.thumbnails), skipped here with any other
                # hidden folder; a run folder's name is the user's prompt and is never filtered.
                if depth < 2 and not entry.name.startswith("."):
                    stack.append((Path(entry.path), depth + 1))
            elif entry.name.lower().endswith(".png") and not entry.name.startswith("."):
                try:
                    path = Path(entry.path)
                    found.append((path, entry.stat().st_mtime, thumbnail_path(path)))
                except OSError:
                    continue
    # Newest first; the path breaks ties so equal times keep one order from scan to scan.
    found.sort(key=lambda t: (t[1], str(t[0])), reverse=True)
    return found


def decode_thumbnail(item: GalleryItem, side: int = THUMB_SIDE) -> DecodedImage:
    """The small JPEG the runner wrote beside the image, or the image itself (worker thread),
    scaled to fit a *side* square (up or down), so the view only has to draw it."""
    if item.thumbnail is not None:
        try:
            return decode_image(item.thumbnail, side, fit=True)
        except (OSError, ValueError):
            pass  # not written (another tool's image) or damaged: the PNG is the source
    return decode_image(item.path, side, fit=True)


def read_detail(path: Path) -> ImageDetail:
    image = decode_image(path, LARGE_SIDE)
    prompt = negative = parameters = ""
    seed: int | None = None
    settings: dict[str, str] = {}
    try:
        from stablenew.pipeline.infotext import read_image_metadata

        meta = read_image_metadata(path)
        parameters = meta.parameters or ""
        parsed = dict(meta.parsed or {})
        prompt = parsed.pop("Prompt", "")
        negative = parsed.pop("Negative prompt", "")
        raw_seed = parsed.get("Seed")
        seed = int(raw_seed) if raw_seed and str(raw_seed).isdigit() else None
        settings = {k: str(v) for k, v in parsed.items()}
    except Exception as exc:  # noqa: BLE001 - an image without our metadata still opens, just without parameters
        log.info("no parameters in %s: %s", path, exc)
    model = settings.get("Model", "")
    if not model or not prompt:  # a ComfyUI, InvokeAI or SwarmUI image: the gallery's reading
        try:
            from stablenew.gallery.metadata import read_facts

            facts = read_facts(path)
            model, prompt, negative = model or facts.model, prompt or facts.prompt, \
                negative or facts.negative
            seed = seed if seed is not None else facts.seed
        except Exception as exc:  # noqa: BLE001 - the pixels opened; the facts are a bonus
            log.info("no facts in %s: %s", path, exc)
    return ImageDetail(path, image, prompt, negative, seed, parameters, settings, model,
                       family_badge(model))
