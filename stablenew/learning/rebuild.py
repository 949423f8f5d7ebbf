"""Rebuild learning records from output images: every PNG StableNew writes carries a JSON
chunk with its full config, seed, stages, run and tags, so a lost or new database can be
filled again from the outputs folder. Ratings live only in the database and are kept for
images it already knows."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore
from stablenew.pipeline.config import PipelineConfig, migrate_config
from stablenew.pipeline.infotext import ImageMetadataError, read_image_metadata
from stablenew.pipeline.outputs import THUMBNAIL_DIR, thumbnail_path
from stablenew.pipeline.records import ImageRecord, RunTags

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_TAG_FIELDS = set(RunTags.__dataclass_fields__)


@dataclass(frozen=True)
class RebuildSummary:
    scanned: int
    recorded: int
    skipped: int  # images without StableNew's metadata (other tools, edited copies)
    problems: tuple[str, ...] = ()  # plain sentences, one per unreadable file (first 20)


def image_record_from_file(path: Path) -> ImageRecord | None:
    """The ImageRecord a StableNew image describes, or None when it has no StableNew chunk.

    Raises ValueError (plain words) for a StableNew chunk that cannot be understood."""
    meta = read_image_metadata(path)
    ours = meta.stablenew
    if not ours:
        return None
    try:
        config = PipelineConfig.model_validate(migrate_config(dict(ours["config"])))
        tags = RunTags(**{k: v for k, v in (ours.get("tags") or {}).items() if k in _TAG_FIELDS})
        thumb = thumbnail_path(path)
        return ImageRecord(
            run_id=str(ours["run_id"]), image_index=int(ours["image_index"]), config=config,
            seed=int(ours["seed"]), stages=tuple(ours.get("stages") or ()),
            node=str(ours.get("node", "")), node_kind=str(ours.get("node_kind", "")),
            path=path, thumbnail=thumb if thumb.exists() else None, tags=tags,
            timings={k: float(v) for k, v in (ours.get("timings") or {}).items()},
            created_at=float(ours.get("created_at") or path.stat().st_mtime))
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise ValueError(f"{path.name}: its StableNew settings cannot be read ({exc}).") from None


def _images(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != THUMBNAIL_DIR and not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                yield Path(root) / name


def rebuild_from_folder(store: LearningStore, folder: str | os.PathLike[str], *,
                        batch: int = 500,
                        on_progress: Callable[[int], None] | None = None) -> RebuildSummary:
    """Record every StableNew image under *folder* (known images keep their ratings)."""
    scanned = recorded = skipped = 0
    problems: list[str] = []
    pending: list[LearningRecord] = []
    for path in _images(Path(folder).resolve()):
        scanned += 1
        try:
            image = image_record_from_file(path)
        except (ValueError, ImageMetadataError) as exc:
            skipped += 1
            if len(problems) < 20:
                problems.append(getattr(exc, "message", None) or str(exc))
            continue
        if image is None:
            skipped += 1
            continue
        pending.append(LearningRecord.from_image_record(image))
        if len(pending) >= batch:
            recorded += store.add_records(pending)
            pending.clear()
            if on_progress is not None:
                on_progress(scanned)
    if pending:
        recorded += store.add_records(pending)
    return RebuildSummary(scanned, recorded, skipped, tuple(problems))


def record_image_file(store: LearningStore, ref: str | Path, *, refused: str) -> None:
    """Record the image file *ref*, made by StableNew while learning was off (or before this
    database existed), from its own PNG metadata, so it can be rated or chosen. RecordNotFound,
    ending in *refused* ("it cannot be rated for learning"), when it carries no such metadata."""
    from stablenew.learning.errors import RecordNotFound

    try:
        image = image_record_from_file(Path(ref))
    except (ValueError, OSError):
        image = None
    if image is None:
        raise RecordNotFound("This image has no StableNew settings in it (another tool made it, "
                             f"or it was edited), so {refused}.", detail=str(ref))
    store.add_record(LearningRecord.from_image_record(image))
