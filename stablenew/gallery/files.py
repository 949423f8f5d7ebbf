"""What the gallery does to the user's files: trash, move, copy and export; never a hard delete.

Each image travels with its sidecar (ratings and tags) and the thumbnail the runner wrote beside
it. An image that cannot be handled is reported with the reason and the rest go on.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stablenew.gallery.sidecar import sidecar_path
from stablenew.pipeline.outputs import thumbnail_path


@dataclass
class FileOutcome:
    """Which images were handled (old path → new path, or "" when trashed) and which not, why."""

    done: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def trash(paths: Iterable[str]) -> FileOutcome:
    """Send images (and their sidecars and thumbnails) to the system trash, where the user can
    get them back; an image the trash refuses stays where it is."""
    from send2trash import send2trash  # type: ignore[import-untyped]  # no type hints shipped
    from send2trash.exceptions import TrashPermissionError  # type: ignore[import-untyped]

    outcome = FileOutcome()
    for path in paths:
        try:
            send2trash(path)
        except (OSError, TrashPermissionError) as exc:
            outcome.failed[path] = f"could not be moved to the trash ({exc})"
            continue
        outcome.done[path] = ""
        for extra in (sidecar_path(path), thumbnail_path(Path(path))):
            if extra.exists():
                try:
                    send2trash(str(extra))
                except (OSError, TrashPermissionError):
                    pass  # the image is in the trash; a stray thumbnail is only a cache
    return outcome


def transfer(paths: Iterable[str], folder: str | os.PathLike[str], *, copy: bool) -> FileOutcome:
    """Move (or copy) images into *folder* with their sidecars and thumbnails, never over a
    file already there: a name that is taken gets a number (`name (2).png`)."""
    target = Path(folder)
    outcome = FileOutcome()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for path in paths:
            outcome.failed[path] = f"the folder could not be made ({exc.strerror or exc})"
        return outcome
    for path in paths:
        source = Path(path)
        try:
            dest = _place(source, target, copy=copy)
        except OSError as exc:
            outcome.failed[path] = f"could not be {'copied' if copy else 'moved'} ({exc.strerror or exc})"
            continue
        outcome.done[path] = str(dest)
        for extra, extra_dest in ((sidecar_path(source), sidecar_path(dest)),
                                  (thumbnail_path(source), thumbnail_path(dest))):
            if not extra.exists():
                continue
            try:
                extra_dest.parent.mkdir(exist_ok=True)
                _put(extra, extra_dest, copy=copy)
            except OSError:
                pass  # the marks are in the index too (followed by hash); a thumbnail is a cache
    return outcome


def _place(source: Path, folder: Path, *, copy: bool) -> Path:
    """Put *source* in *folder* under the first free name; a name taken meanwhile (by another
    program) is never overwritten: the next one is tried."""
    if not source.is_file():
        raise FileNotFoundError(2, "the image is gone", str(source))
    if not copy and source.parent.resolve() == folder.resolve():
        return source  # already there
    for _ in range(1000):
        dest = free_name(folder / source.name)
        try:
            _put(source, dest, copy=copy)
        except FileExistsError:
            continue
        return dest
    raise FileExistsError(17, "no free name", str(folder / source.name))


def _put(source: Path, dest: Path, *, copy: bool) -> None:
    """Copy or move one file to *dest*; FileExistsError when *dest* exists (never replaced)."""
    if not copy:
        try:
            os.link(source, dest)  # fails when dest exists: no window to overwrite it
        except FileExistsError:
            raise
        except OSError:
            pass  # another drive, or a file system without links: copy, then remove
        else:
            source.unlink()
            return
    with open(source, "rb") as src, open(dest, "xb") as out:
        try:
            shutil.copyfileobj(src, out, 1024 * 1024)
        except BaseException:
            out.close()
            dest.unlink(missing_ok=True)
            raise
    shutil.copystat(source, dest)
    if not copy:
        source.unlink()


def free_name(path: Path) -> Path:
    """*path*, or `name (2).png`, `name (3).png`… when it (or its sidecar) is taken."""
    candidate, n = path, 1
    while candidate.exists() or sidecar_path(candidate).exists():
        n += 1
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
    return candidate


def export_zip(images: list[tuple[str, dict[str, object]]], dest: str | os.PathLike[str]) -> FileOutcome:
    """A ZIP of the images with `metadata.json` (each image's parameters, rating and tags),
    written to a temporary name first so a failed export leaves no half file."""
    target = Path(dest)
    partial = target.with_name(target.name + ".part")
    outcome = FileOutcome()
    names: set[str] = set()
    metadata = []
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
            for path, facts in images:
                name = Path(path).name
                stem, n = name, 1
                while name in names:  # two runs' "00001.png"
                    n += 1
                    name = f"{Path(stem).stem} ({n}){Path(stem).suffix}"
                try:
                    archive.write(path, name)
                except OSError as exc:
                    outcome.failed[path] = f"could not be read ({exc.strerror or exc})"
                    continue
                names.add(name)
                outcome.done[path] = name
                metadata.append({"file": name, "source": path, **facts})
            archive.writestr("metadata.json", json.dumps(metadata, indent=1, ensure_ascii=False))
        os.replace(partial, target)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    return outcome
