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
                "reason": "4.2 stars over 40 images (...)",
                "confidence": 0.93}, ...],   (chance it is the best value; null if unknown)
   "preset": {"txt2img": {"steps": 30}},   (the values as a partial preset)
   "saved": "/path/to/preset.yaml" | null}
The exit code is 1 when there is nothing to recommend yet (then "changes" is empty)."""


NEXT_JSON = """With --json, one object (new keys may be added; none is removed or renamed):
  {"pack": "Portraits" | "" | null, "parameter": "cfg", "label": "CFG scale",
   "values": ["4", "6", "8"], "images_per_value": 3, "images": 9,
   "evidence": "CFG scale 5–7 looks better than CFG scale 9–11, but on only 6 ratings.",
   "text": "... A 9-image run at CFG scale 4, 6 and 8 would settle it.",
   "expected_gain": 0.31,     (stars the best value may still gain, on average)
   "queued": {"job": "ab12cd34", "learning_run": "learn-…", "folder": "…"} | null}"""


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

    p = verbs.add_parser("next", help="the learning run worth doing next, and why",
                         epilog=NEXT_JSON, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", default=None, help="only this pack (default: all packs together)")
    p.add_argument("--json", action="store_true", help="print one JSON object (shape below)")
    p.add_argument("--queue", action="store_true",
                   help="add it to the queue as a learning run (runs with `stablenew queue run`)")
    p.add_argument("--base", type=Path, default=None,
                   help="with --queue: the config or preset YAML to vary (default: the settings "
                        "and prompt of the pack's best-rated recent image)")
    p.add_argument("--output", type=Path, default=None,
                   help="with --queue: folder under which the run's folder is made "
                        "(default: Settings)")
    p.set_defaults(func=_next)

    p = verbs.add_parser("taste", help="what each setting does to your taste, with how sure "
                                       "StableNew is (from ratings, tags and choices)")
    p.add_argument("--pack", default=None, help="only this pack (default: all packs together)")
    p.add_argument("--json", action="store_true", help="print the model as one JSON object")
    p.set_defaults(func=_taste)

    p = verbs.add_parser("report", help="which packs, LoRAs, samplers and models score well or "
                                        "poorly, with counts")
    p.add_argument("--pack", default=None,
                   help="only this pack (default: all packs, and the packs compared)")
    p.add_argument("--all", action="store_true",
                   help="also list values that score about the same or have too few ratings")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list: kind, name, images, mean, others_mean, others, "
                        "verdict, text")
    p.set_defaults(func=_report)

    p = verbs.add_parser("choose", help="record a side-by-side choice: WINNER is better than "
                                        "LOSER (or --same)")
    p.add_argument("winner", help="the better image (file or record id)")
    p.add_argument("loser", help="the other image (file or record id)")
    p.add_argument("--same", action="store_true", help="the two are equally good")
    p.set_defaults(func=_choose)

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
    """The store; with --pack, only when the store has images of that pack (a misspelt pack
    would otherwise give an empty model and "nothing to say" without saying why)."""
    from stablenew.learning.errors import LearningError
    from stablenew.learning.store import LearningStore

    store = LearningStore(args.db)
    pack = getattr(args, "pack", None)
    if pack is not None:
        packs = store.packs()
        if pack not in packs:
            store.close()
            named = ", ".join(f"'{p}'" if p else "'' (images without a pack)" for p in packs)
            raise LearningError(f"There are no images of a pack named '{pack}'. "
                                + (f"Packs with images: {named}." if packs else
                                   "There are no images yet.")
                                + " Leave out --pack for all packs together.")
    return store


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
def _report(args: argparse.Namespace) -> int:
    from stablenew.learning.report import report_for

    with _open(args) as store:
        rows = report_for(store, args.pack)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], ensure_ascii=False, indent=2))
        return 0
    shown = rows if args.all else [r for r in rows if r.verdict in ("scores well", "scores poorly")]
    if not shown:
        print("Nothing stands out yet: rate more images (or see every value with --all).")
    for row in shown:
        print(f"- {row.text}")
    return 0


@_guard
def _recommend(args: argparse.Namespace) -> int:
    from stablenew.learning.suggest import recommend_for

    with _open(args) as store:
        preset = recommend_for(store, args.pack)
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
def _next(args: argparse.Namespace) -> int:
    from stablenew.learning.suggest import next_experiment
    from stablenew.learning.taste import fit_taste

    with _open(args) as store:
        suggestion = next_experiment(fit_taste(store, args.pack))
        base = None
        if args.queue:
            base = _load_base(args.base) if args.base else _recent_best(store, args.pack)
    queued = None
    if args.queue:
        if base is None:
            print("error: there is no rated image to take the settings from; say which config "
                  "to vary with --base CONFIG.yaml.", file=sys.stderr)
            return 1
        plan = suggestion.plan(base)
        queued = _queue_learning_run(plan, args)
        if queued is None:
            return 1
    if args.json:
        print(json.dumps({**suggestion.to_json(), "queued": queued}, ensure_ascii=False, indent=2))
    else:
        print(suggestion.text)
        if queued:
            print(f"Queued as learning run {queued['learning_run']} (job {queued['job']}, "
                  f"{plural(suggestion.image_count, 'image')}); start it with "
                  "`stablenew queue run`.")
    return 0


def _load_base(path: Path):
    from stablenew.cli.queue import _load_job_file

    return _load_job_file(path)[0]


def _recent_best(store, pack: str | None):
    """The config of the pack's best-rated image, the newest of those: what the user likes."""
    sql = "SELECT id FROM learning_records WHERE rating IS NOT NULL"
    args: list[str] = []
    if pack is not None:
        sql += " AND pack = ?"
        args.append(pack)
    rows = store.execute(sql + " ORDER BY rating DESC, created_at DESC LIMIT 1", args)
    return store.get(int(rows[0][0])).config if rows else None


def _queue_learning_run(plan, args: argparse.Namespace) -> dict[str, str] | None:
    """Add *plan* to the persistent queue as a learning job and save its run (state running),
    so the Learning room shows its grid as the queue makes the images."""
    from stablenew.cluster.jobs import JobKind, JobOrigin
    from stablenew.cluster.queue_store import QueueError, QueueStore
    from stablenew.learning.runs import LearningRunResult, RunState
    from stablenew.learning.store import LearningStore

    output_root = args.output
    if output_root is None:
        from stablenew.cli._common import app_settings

        paths, settings = app_settings()
        output_root = settings.output_path(paths)
    try:
        with QueueStore(args.db) as queue:
            job = queue.add_job(plan.images(), name=plan.title(), kind=JobKind.learning,
                                origin=JobOrigin(pack=plan.pack, preset=plan.preset,
                                                 learning_run_id=plan.id),
                                output_root=output_root)
    except QueueError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return None
    from dataclasses import replace

    result = replace(LearningRunResult.from_plan(plan), state=RunState.running, job_id=job.id,
                     folder=job.output_dir)
    with LearningStore(args.db) as store:
        store.save_run(plan.id, pack=plan.pack, parameter=plan.parameter,
                       status=result.state.value, result=result.to_json())
    return {"job": job.id, "learning_run": plan.id, "folder": job.output_dir}


@_guard
def _taste(args: argparse.Namespace) -> int:
    from stablenew.learning.taste import fit_taste

    with _open(args) as store:
        model = fit_taste(store, args.pack)
    if args.json:
        print(json.dumps(model.to_json(), ensure_ascii=False, indent=2))
        return 0
    print(f"From {plural(model.ratings, 'rating')} and {plural(model.choices, 'choice')}"
          + (f" in pack '{args.pack}'" if args.pack else "") + ":")
    if not model.parameters:
        print("- nothing yet: rate or compare images made with different settings.")
    for effect in model.parameters:
        best = effect.bins[effect.best].bin
        print(f"- {effect.label}: best {best.label} ({effect.confidence:.0%} sure); "
              f"{effect.spread:.1f} ± {effect.spread_sd:.1f} stars between best and worst")
        for b in effect.bins:
            print(f"    {b.bin.label:<28} {b.effect:+.2f} ± {b.sd:.2f} stars  "
                  f"({plural(b.evidence, 'rating or choice', 'ratings or choices')})")
    return 0


@_guard
def _choose(args: argparse.Namespace) -> int:
    def ref(text: str) -> int | str:
        return int(text) if text.isdigit() else str(Path(text).resolve())

    with _open(args) as store:
        choice = store.record_choice(ref(args.winner), ref(args.loser), same=args.same,
                                     source="command line")
    if choice.same:
        print(f"Kept: {choice.winner_path} and {choice.loser_path} are equally good.")
    else:
        print(f"Kept: {choice.winner_path} is better than {choice.loser_path}.")
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
