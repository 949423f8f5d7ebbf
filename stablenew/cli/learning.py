"""`stablenew learning`: insights, recommendations, ratings and export without the window.

Works on the learning tables of the data folder's database (STABLENEW_HOME or the
platform's folder), or on the file given with `--db`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stablenew.storage.words import noun_for, plural

INSIGHTS_JSON = """With --json, one object (new keys may be added; none is removed or renamed):
  {"pack": "Portraits" | "" (no pack) | null (all packs), "rated": 80,
   "parameters": [{"parameter": "cfg", "label": "CFG scale", "conclusive": true,
                   "summary": "For Portraits, CFG scale 10 scores lower than ...",
                   "best_values": ["4", "6", "8"], "recommended": "8", "rated_images": 80,
                   "fair": false,
                   "values": [{"value": "4", "label": "CFG scale 4", "n": 20, "mean": 3.5,
                               "low": 3.1, "high": 3.9}, ...]}, ...],
   "advice": [{"tag": "too noisy", "count": 3, "advice": "Try lowering noise ..."}],
   "lines": ["the same sentences the plain output prints", ...]}
"fair" is true when the numbers come only from learning runs on that setting."""

RECOMMEND_JSON = """With --json, one object (new keys may be added; none is removed or renamed):
  {"pack": "Portraits" | "" | null,
   "changes": [{"parameter": "steps", "label": "Steps", "value": "30",
                "reason": "4.2 stars over 40 images (...)"}, ...],
   "preset": {"txt2img": {"steps": 30}},   (the values as a partial preset)
   "saved": "/path/to/preset.yaml" | null}
The exit code is 1 when there is nothing to recommend yet (then "changes" is empty)."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("learning", help="insights from your ratings, and export of records",
                            description="The learning store: what your ratings say, and export.")
    parser.add_argument("--db", type=Path, default=None,
                        help="database file (default: the data folder's stablenew.db)")
    verbs = parser.add_subparsers(dest="learning_command", metavar="ACTION")

    p = verbs.add_parser("insights", help="what works best, per setting (and tag advice)",
                         epilog=INSIGHTS_JSON, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", default=None, help="only this pack (default: all packs together)")
    p.add_argument("--values", action="store_true", help="also list every value's numbers")
    p.add_argument("--json", action="store_true", help="print one JSON object (shape below)")
    p.set_defaults(func=_insights)

    p = verbs.add_parser("recommend", help="the recommended settings for a pack, as preset YAML",
                         epilog=RECOMMEND_JSON, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", default=None, help="only this pack (default: all packs together)")
    p.add_argument("--save", metavar="NAME", default=None,
                   help="save the recommendation as a user preset with this name")
    p.add_argument("--json", action="store_true", help="print one JSON object (shape below)")
    p.set_defaults(func=_recommend)

    p = verbs.add_parser("export", help="write records as a zip (JSONL, CSV, README)")
    p.add_argument("out", type=Path, help="the zip file to write")
    p.add_argument("--pack", default=None, help="only this pack")
    p.add_argument("--rated-only", action="store_true", help="only images that have a rating")
    p.add_argument("--copies", action="store_true",
                   help="include small JPEG copies of the images (default: only their paths)")
    p.add_argument("--max-side", type=int, default=512, help="longest side of the copies (px)")
    p.set_defaults(func=_export)

    p = verbs.add_parser("rate", help="rate an image 1–5 (0 clears)")
    p.add_argument("image", help="the image file (or its record id)")
    p.add_argument("stars", type=int, choices=range(0, 6), metavar="STARS")
    p.add_argument("--tag", action="append", default=[], help="also add this tag (repeatable)")
    p.set_defaults(func=_rate)

    p = verbs.add_parser("import", help="record the StableNew images in a folder (rebuild)")
    p.add_argument("folder", type=Path, help="an outputs folder; subfolders are searched too")
    p.set_defaults(func=_import)

    p = verbs.add_parser("summary", help="how many records, ratings and packs")
    p.set_defaults(func=_summary)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _open(args: argparse.Namespace):
    from stablenew.learning.store import LearningStore

    return LearningStore(args.db)


def _guard(fn):
    def run(args: argparse.Namespace) -> int:
        from stablenew.learning.errors import LearningError

        try:
            return fn(args)
        except LearningError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
    return run


@_guard
def _insights(args: argparse.Namespace) -> int:
    from stablenew.learning.insights import insights_for

    with _open(args) as store:
        insights = insights_for(store, args.pack)
    if args.json:
        print(json.dumps(insights.to_json(), ensure_ascii=False, indent=2))
        return 0
    print(f"{plural(insights.rated, 'rated image')}" + (f" in pack '{args.pack}'" if args.pack else ""))
    for line in insights.lines():
        print(f"- {line}")
    if args.values:
        for param in insights.parameters:
            print(f"\n{param.label}{'  (conclusive)' if param.conclusive else ''}")
            for v in param.values:
                print(f"  {v.label:<28} {v.n:>6} images  {v.mean:4.2f} stars  "
                      f"({v.low:.1f}–{v.high:.1f})")
    return 0


@_guard
def _recommend(args: argparse.Namespace) -> int:
    from stablenew.learning.insights import insights_for, recommend

    with _open(args) as store:
        preset = recommend(insights_for(store, args.pack))
    if not args.json:
        for line in preset.describe():
            print(f"# {line}")
    if preset.empty:
        if args.json:
            print(json.dumps({**preset.to_json(), "saved": None}, ensure_ascii=False, indent=2))
        return 1
    name = args.save or (f"Learned — {args.pack}" if args.pack else "Learned settings")
    item = preset.to_preset(name)
    if not args.json:
        print(item.to_yaml(), end="")
    saved = None
    if args.save:
        from stablenew.pipeline.presets import LibraryError, PresetStore

        try:
            saved = str(PresetStore().save(item, replace=False))
        except LibraryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"Saved as {saved}", file=sys.stderr)
    if args.json:
        print(json.dumps({**preset.to_json(), "saved": saved}, ensure_ascii=False, indent=2))
    return 0


@_guard
def _export(args: argparse.Namespace) -> int:
    from stablenew.learning.export import ImageMode, export_bundle

    with _open(args) as store:
        summary = export_bundle(store, args.out, pack=args.pack, rated_only=args.rated_only,
                                images=ImageMode.copies if args.copies else ImageMode.paths,
                                max_side=args.max_side)
    extra = f", {plural(summary.images_copied, 'image copy', 'image copies')}" if args.copies else ""
    missing = (f"; {plural(summary.images_missing, 'image')} {noun_for(summary.images_missing, 'was')} "
               "missing") if summary.images_missing else ""
    print(f"Exported {plural(summary.records, 'record')}{extra} to {summary.path}{missing}.")
    return 0


@_guard
def _rate(args: argparse.Namespace) -> int:
    ref: int | str = int(args.image) if args.image.isdigit() else str(Path(args.image).resolve())
    with _open(args) as store:
        record = store.rate(ref, args.stars or None)
        for tag in args.tag:
            record = store.tag(record.id, tag)
    stars = f"{record.rating} stars" if record.rating else "no rating"
    tags = f", tags: {', '.join(record.tags)}" if record.tags else ""
    print(f"{record.path}: {stars}{tags}")
    return 0


@_guard
def _import(args: argparse.Namespace) -> int:
    from stablenew.learning.rebuild import rebuild_from_folder

    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder.", file=sys.stderr)
        return 1
    with _open(args) as store:
        summary = rebuild_from_folder(store, args.folder)
    print(f"Recorded {summary.recorded} of {plural(summary.scanned, 'image')}; {summary.skipped} skipped "
          "(not made by StableNew, or unreadable).")
    for problem in summary.problems:
        print(f"  {problem}", file=sys.stderr)
    return 0


@_guard
def _summary(args: argparse.Namespace) -> int:
    with _open(args) as store:
        summary = store.summary()
        runs = store.runs()
    packs = ", ".join(p or "(no pack)" for p in summary.packs) or "none"
    print(f"{summary.records} records, {summary.rated} rated; packs: {packs}; "
          f"{len(runs)} learning runs")
    if args.db is None:  # the mode belongs to the window's own database, as set in Settings
        from stablenew.cli._common import app_settings

        mode = app_settings()[1].learning_mode
        print(f"Learning mode: {mode.value}" + (" (new images are not recorded)" if mode == "off" else ""))
    return 0
