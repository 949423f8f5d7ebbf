"""`stablenew gallery scan|search`: the image index, headless."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from stablenew.cli._common import app_settings, fail, show_help
from stablenew.storage.words import plural

if TYPE_CHECKING:
    from stablenew.gallery.index import GalleryIndex, ScanProgress


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "gallery", help="index your images; search them by prompt, model, LoRA and rating",
        description="Keep an index of every image in your output folder and the folders you add "
                    "(prompt, model, LoRAs, seed, size...) so searches answer at once. Images "
                    "that cannot be read are listed with the reason; no image is ever changed.")
    parser.set_defaults(func=show_help(parser))
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    scan = actions.add_parser("scan", help="index a folder (or the output folder and every "
                                           "folder indexed before)")
    scan.add_argument("folder", nargs="?", metavar="DIR",
                      help="a folder of images; omitted: the output folder and every folder "
                           "indexed before")
    scan.add_argument("--json", action="store_true", help="print the outcome as JSON")
    scan.set_defaults(func=_scan)

    find = actions.add_parser("search", help="images whose prompt or file name holds TEXT")
    find.add_argument("text", nargs="?", default="", metavar="TEXT",
                      help="words to look for (every word must match); empty: all images")
    find.add_argument("--min-rating", type=int, metavar="N", help="only images rated N stars or more")
    find.add_argument("--model", metavar="M", help="only images made with this model")
    find.add_argument("--lora", metavar="L", help="only images made with this LoRA")
    find.add_argument("--run", metavar="RUN", help="only images of this run (its folder name)")
    find.add_argument("--pack", metavar="PACK", help="only images of this prompt pack")
    find.add_argument("--sort", choices=("date", "name", "size", "rating"), default="date",
                      help="order (default: newest first)")
    find.add_argument("--limit", type=int, default=50, help="how many to show (default 50)")
    find.add_argument("--json", action="store_true", help="print JSON")
    find.set_defaults(func=_search)


def _open() -> GalleryIndex:
    from stablenew.gallery.index import GalleryIndex

    paths, _settings = app_settings()
    return GalleryIndex(paths.data_dir / "gallery.db", learning_db=paths.database_file)


def _scan(args: argparse.Namespace) -> int:
    import os
    import sqlite3
    from pathlib import Path

    try:
        index = _open()
    except sqlite3.Error as exc:
        return fail("gallery scan", f"the gallery index cannot be opened ({exc}).")
    with index:
        if args.folder:
            folder = Path(args.folder).expanduser()
            if not folder.is_dir():
                return fail("gallery scan", f"{folder} is not a folder.")
            folders = [os.path.abspath(folder)]
        else:
            paths, settings = app_settings()
            output = settings.output_path(paths)
            folders = list(dict.fromkeys(
                ([os.path.abspath(output)] if output.is_dir() else []) + index.roots()))
            if not folders:
                return fail("gallery scan", f"no images to index yet: the output folder {output} "
                                            "does not exist. Run `stablenew gallery scan DIR`.")
        results = [index.scan(f, progress=None if args.json else _progress) for f in folders]
    if not args.json:
        print(file=sys.stderr)
    problems = [p for r in results for p in r.problems]
    images = sum(r.seen for r in results)
    totals = {"images": images, "read": sum(r.read for r in results),
              "unchanged": sum(r.unchanged for r in results),
              "removed": sum(r.removed for r in results), "moved": sum(r.moved for r in results),
              "could_not_read": [{"path": p.path, "reason": p.reason} for p in problems]}
    if args.json:
        print(json.dumps({"folders": folders, **totals}, ensure_ascii=False, indent=2))
        return 0
    print(f"Indexed {plural(images, 'image')} in {plural(len(folders), 'folder')}: "
          f"{totals['read']:,} read, {totals['unchanged']:,} unchanged, "
          f"{totals['removed']:,} gone, {totals['moved']:,} moved.")
    if problems:
        print(f"Could not read {plural(len(problems), 'file')}:")
        for p in problems:
            print(f"  {p.path}: {p.reason}")
    return 0


def _progress(state: ScanProgress) -> None:
    print(f"\rLooked at {plural(state.seen, 'image')}, read {state.read:,}", end="",
          file=sys.stderr, flush=True)


def _search(args: argparse.Namespace) -> int:
    import sqlite3

    from stablenew.gallery.query import GalleryQuery, SortKey, count, search

    if args.min_rating is not None and not 1 <= args.min_rating <= 5:
        return fail("gallery search", "--min-rating takes 1 to 5 stars.")
    query = GalleryQuery(text=args.text, min_rating=args.min_rating, model=args.model or "",
                         lora=args.lora or "", run=args.run or "", pack=args.pack or "",
                         sort=SortKey(args.sort))
    try:
        index = _open()
    except sqlite3.Error as exc:
        return fail("gallery search", f"the gallery index cannot be opened ({exc}).")
    with index:
        rows = search(index, query, limit=max(0, args.limit))
        total = count(index, query)
    if args.json:
        print(json.dumps({"total": total, "images": [
            {"path": str(r.path), "prompt": r.prompt, "model": r.model, "loras": list(r.loras),
             "seed": r.seed, "size": [r.width, r.height], "rating": r.rating, "run": r.run,
             "pack": r.pack, "node": r.node, "mtime": r.mtime} for r in rows]},
            ensure_ascii=False, indent=2))
        return 0
    if not total:
        print("No images match.")
        return 0
    shown = f" (showing {len(rows):,})" if len(rows) < total else ""
    print(f"{plural(total, 'image')} match{'es' if total == 1 else ''}{shown}:")
    for r in rows:
        stars = "★" * r.rating if r.rating else "-"
        prompt = r.prompt.replace("\n", " ")
        print(f"{stars:5} {r.path}  [{r.model or '?'}]  {prompt[:80]}")
    return 0
