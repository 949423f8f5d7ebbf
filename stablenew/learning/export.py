"""Export: a zip of learning records (JSONL + CSV + README) for analysis elsewhere.

Made for handing to a spreadsheet or an external LLM: every field is described in the
README, images travel either as their paths or as small JPEG copies, and nothing secret
goes in — node addresses lose any user name, password or token, and settings files (where
credentials live) are never read.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stablenew.learning.errors import LearningError
from stablenew.learning.parameters import PARAMETERS
from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore


class ImageMode(StrEnum):
    paths = "paths"  # only the image paths on this computer
    copies = "copies"  # downscaled JPEG copies inside the zip


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    records: int
    images_copied: int
    images_missing: int


CSV_FIELDS = (
    "id", "record_key", "run_id", "image_index", "pack", "preset", "prompt", "negative_prompt",
    "seed", "rating", "tags", "note", "learning_run_id", "variant_id", "variant_label",
    "stages", "node", "node_kind", "config_hash", "created_at", "path", "image",
    *PARAMETERS, "loras",
)

README = """# StableNew learning export

Exported {when} by StableNew: {count} image records{scope}.

Files:
- `records.jsonl`: one JSON object per line, one per image, with every field below and the
  full generation settings under `config`.
- `records.csv`: the same records as a table (no full `config`; the main settings have their
  own columns), for spreadsheets.
- `choices.jsonl`: the side-by-side choices ("which is better?"), one per line: `winner` and
  `loser` are record keys (with `winner_path`, `loser_path`); `same` is true when the user
  found the two equally good (then winner and loser are only left and right).
- `images/`: {images_note}

Fields:
- `id`: row number in StableNew's database. `record_key`: "<run_id>:<image_index>", unique.
- `run_id`, `image_index`: the run that made the image and its position in it (from 0).
- `pack`, `preset`: the prompt pack and preset used, if any.
- `prompt`, `negative_prompt`: the prompts exactly as sent (wildcards already resolved).
- `seed`: the seed used. With the same settings and model it reproduces the image.
- `rating`: the user's rating, 1 (worst) to 5 (best) stars; empty when not rated.
- `tags`: the user's words about the image, e.g. "too noisy" (CSV: separated by "; ").
- `note`: the user's free-text note.
- `learning_run_id`, `variant_id`, `variant_label`: set when the image is part of a guided
  learning run, which varies ONE setting (`variant_label`, e.g. "30 steps") across shared
  seeds; `variant_id` is "<column>:<row>" of the comparison grid.
- `stages`: the stages applied in order (txt2img, img2img, adetailer, upscale).
- `node`, `node_kind`: the server that made it (credentials removed) and its kind.
- `config_hash`: a stable hash of the full settings; equal hashes mean equal settings.
- `created_at`: when the image was saved (Unix time, seconds).
- `path`: where the image is on the exporting computer. `image`: the copy in this zip, if any.
- `timings` (JSONL): seconds spent per stage. `warnings` (JSONL): what the server changed.
- `parameters` (JSONL) and the setting columns (CSV) — `steps`, `cfg` (CFG scale),
  `sampler`, `scheduler`, `denoise` (img2img), `hires_scale`, `hires_denoise`,
  `checkpoint` (model; empty = the server's current one), `adetailer_denoise`, `clip_skip`,
  `loras` ("name:weight; ...") — are empty when the stage was off.
- `config` (JSONL): the complete StableNew PipelineConfig the image ran with.

Ratings are one person's taste: compare values within one pack and one learning run first.
"""


def export_bundle(
    store: LearningStore,
    out: str | os.PathLike[str],
    *,
    pack: str | None = None,
    rated_only: bool = False,
    images: ImageMode | str = ImageMode.paths,
    max_side: int = 512,
) -> ExportSummary:
    """Write the zip atomically (a reader never sees half a file); returns what went in."""
    mode = ImageMode(images)
    target = Path(out)
    if target.suffix.lower() != ".zip":
        target = target.with_name(target.name + ".zip")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise LearningError(f"StableNew cannot write to {target.parent}. Choose another folder.",
                            detail=repr(exc)) from exc
    count = copied = missing = 0
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as zf:
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            # Spooled aside: a zip takes one open member at a time and images go in meanwhile.
            with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as jsonl:
                for record in store.iter_records(pack=pack, rated_only=rated_only):
                    image_name = ""
                    if mode is ImageMode.copies:
                        image_name = f"images/{record.id}.jpg"
                        if _copy_image(zf, record, image_name, max_side):
                            copied += 1
                        else:
                            image_name = ""
                            missing += 1
                    elif not Path(record.path).exists():
                        missing += 1
                    row = record.to_json()
                    row["image"] = image_name or None
                    jsonl.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
                    writer.writerow(_csv_row(row))
                    count += 1
                jsonl.seek(0)
                with zf.open("records.jsonl", "w") as member:
                    shutil.copyfileobj(jsonl, member)
            zf.writestr("records.csv", "\ufeff" + text.getvalue())  # BOM: Excel reads UTF-8
            zf.writestr("choices.jsonl", "".join(
                json.dumps(c.to_json(), ensure_ascii=False) + "\n" for c in store.choices(pack)))
            scope = f" from pack '{pack}'" if pack else ""
            if rated_only:
                scope += " (rated images only)"
            note = ("small JPEG copies of the images (longest side "
                    f"{max_side} px), named <id>.jpg." if mode is ImageMode.copies else
                    "not included; `path` says where each image is on the exporting computer.")
            zf.writestr("README.md", README.format(
                when=time.strftime("%Y-%m-%d %H:%M"), count=count, scope=scope, images_note=note))
        os.replace(tmp_name, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise LearningError(f"The export could not be written to {target} ({exc.strerror}).",
                                detail=repr(exc)) from exc
        raise
    return ExportSummary(target, count, copied, missing)


def _csv_row(row: dict) -> dict:
    flat = {k: row.get(k) for k in CSV_FIELDS if k in row}
    flat["tags"] = "; ".join(row.get("tags") or [])
    flat["stages"] = " > ".join(row.get("stages") or [])
    params = row.get("parameters") or {}
    for key in PARAMETERS:
        flat[key] = params.get(key, "")
    flat["loras"] = "; ".join(f"{k[5:]}:{v}" for k, v in params.items() if k.startswith("lora:"))
    return flat


def _copy_image(zf: zipfile.ZipFile, record: LearningRecord, name: str, max_side: int) -> bool:
    from PIL import Image, UnidentifiedImageError

    source = Path(record.thumbnail) if record.thumbnail and Path(record.thumbnail).exists() \
        else Path(record.path)
    try:
        with Image.open(source) as img:
            img.thumbnail((max_side, max_side))
            buffer = io.BytesIO()
            # A fresh JPEG carries no PNG text chunks, so nothing beyond the record leaks.
            img.convert("RGB").save(buffer, "JPEG", quality=85)
    except (OSError, UnidentifiedImageError, ValueError):
        return False
    zf.writestr(name, buffer.getvalue())
    return True
