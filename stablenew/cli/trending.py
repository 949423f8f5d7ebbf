"""`stablenew trending fetch|list|use`: CivitAI's trending combos, headless."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.cli._common import fail

if TYPE_CHECKING:
    from stablenew.catalog.index import Catalog
    from stablenew.community.combos import Combo
    from stablenew.community.pool import Pool

SORTS = {"reactions": "Most Reactions", "comments": "Most Comments", "collected": "Most Collected",
         "newest": "Newest"}
PERIODS = {"day": "Day", "week": "Week", "month": "Month", "year": "Year", "all": "AllTime"}
#: --rating: every browsing level up to and including this one.
RATINGS = {"pg": 1, "pg13": 3, "r": 7, "x": 15, "xxx": 31}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "trending", help="CivitAI's trending images and the LoRA combos behind them",
        description="Fetch the community's top images from CivitAI with their prompts and LoRAs, "
                    "keep the combos you can run with the LoRAs you have, and use one as a config "
                    "or queue a batch of them. Answers are cached for a few hours; offline, the "
                    "cached list is used and its age said.")
    # `stablenew trending [options]` is `list`, as the short form has it.
    _query_options(parser)
    parser.add_argument("--all", action="store_true", help="also the combos left out, with the reason")
    parser.set_defaults(func=_list)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    fetch = actions.add_parser("fetch", help="ask CivitAI now (the cache is refreshed)")
    _query_options(fetch)
    fetch.set_defaults(func=_fetch)

    lst = actions.add_parser("list", help="the combos, with where each LoRA is (cache while fresh)")
    _query_options(lst)
    lst.add_argument("--all", action="store_true",
                     help="also the combos left out, each with the reason")
    lst.set_defaults(func=_list)

    use = actions.add_parser("use", help="a combo as a config (printed, saved, or queued)")
    use.add_argument("image", nargs="+", type=int, metavar="IMAGE_ID", help="CivitAI image id(s)")
    _query_options(use)
    use.add_argument("--settings", action="store_true",
                     help="also take the image's sampler, steps, CFG, clip skip and size")
    use.add_argument("--base", type=Path, metavar="CONFIG.yaml",
                     help="the config the combo fills in (default: StableNew's defaults)")
    use.add_argument("--save", type=Path, metavar="FILE.yaml", help="write the config here")
    use.add_argument("--queue", action="store_true",
                     help="add a queue job \"N trending combos\" (one image each)")
    use.set_defaults(func=_use)

    download = actions.add_parser("download", help="download a combo's missing LoRAs (asks first)")
    download.add_argument("image", type=int, metavar="IMAGE_ID", help="CivitAI image id")
    _query_options(download)
    download.add_argument("--into", type=Path, metavar="DIR",
                          help="the LoRA folder (default: the first LoRA folder scanned)")
    download.add_argument("--yes", action="store_true", help="do not ask before each download")
    download.set_defaults(func=_download, runnable=False, lookup=True)


def _query_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sort", choices=sorted(SORTS), default="reactions")
    parser.add_argument("--period", choices=list(PERIODS), default="week")
    parser.add_argument("--count", type=int, default=100, help="images to fetch (default 100)")
    parser.add_argument("--rating", choices=list(RATINGS), default="pg",
                        help="the most mature images to include (default pg: safe only)")
    parser.add_argument("--nsfw-loras", action="store_true", help="keep LoRAs marked NSFW")
    parser.add_argument("--base-model", action="append", default=[], metavar="NAME",
                        help="only images of this CivitAI base model (\"SD 1.5\", \"SDXL 1.0\", "
                             "\"Pony\"…); repeatable")
    parser.add_argument("--checkpoint", metavar="NAME",
                        help="only combos that fit this checkpoint (a name in the catalog, or "
                             "SD1, SDXL, Pony…)")
    parser.add_argument("--runnable", action="store_true", default=True,
                        help="only combos whose LoRAs are all here (the default)")
    parser.add_argument("--any", dest="runnable", action="store_false",
                        help="also combos with LoRAs you do not have")
    parser.add_argument("--lookup", action="store_true",
                        help="ask CivitAI about LoRAs not found here (name, base model, size, page)")
    parser.add_argument("--base-url", metavar="URL", help="CivitAI or a mirror (default: Settings)")
    parser.add_argument("--api-key-env", metavar="NAME",
                        help="read the API key from this environment variable (default: Settings)")
    parser.add_argument("--refresh", action="store_true", help="ask CivitAI even if the cache is fresh")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _catalog() -> Catalog:
    from stablenew.catalog.cache import CatalogCache, default_cache_path
    from stablenew.catalog.entry import ModelKind
    from stablenew.catalog.index import Catalog, scan

    cache = CatalogCache(default_cache_path())
    try:
        roots = cache.roots()
        if not roots:
            print("No LoRA folder has been scanned yet, so no combo can run here: "
                  "`stablenew lora scan DIR` first.", file=sys.stderr)
            return Catalog()
        catalog = scan([(root, ModelKind(kind)) for root, kind in roots], cache)
    finally:
        cache.close()
    for problem in catalog.problems:
        print(problem, file=sys.stderr)
    return catalog


def _pool(args: argparse.Namespace, *, refresh: bool) -> Pool:
    import asyncio

    from stablenew.catalog.derive import base_from_label
    from stablenew.catalog.entry import BaseModel, ModelKind
    from stablenew.cli._common import app_settings
    from stablenew.community.cache import CommunityCache
    from stablenew.community.client import ImageQuery, Period, Sort
    from stablenew.community.combos import ComboFilter
    from stablenew.community.pool import gather
    from stablenew.community.trending import TrendingSource

    if not 1 <= args.count <= 2000:
        raise SystemExit(fail("trending", "--count must be between 1 and 2000."))
    paths, settings = app_settings()
    base_url = args.base_url or settings.civitai_url
    key = settings.civitai_api_key.get_secret_value()
    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "")
        if not key:
            print(f"The environment variable {args.api_key_env} is empty: no API key is sent.",
                  file=sys.stderr)
    catalog = _catalog()
    checkpoint = BaseModel.unknown
    if args.checkpoint:
        entry = catalog.find(args.checkpoint, ModelKind.checkpoint)
        checkpoint = entry.base_model if entry else base_from_label(args.checkpoint)
        if checkpoint is BaseModel.unknown:
            print(f"Not a checkpoint in the catalog nor a family: {args.checkpoint}; every base "
                  "model is kept.", file=sys.stderr)
    query = ImageQuery(Sort(SORTS[args.sort]), Period(PERIODS[args.period]), RATINGS[args.rating],
                       tuple(args.base_model), limit=min(args.count, 200))
    rules = ComboFilter(runnable_only=args.runnable, browsing_level=RATINGS[args.rating],
                        allow_nsfw_loras=args.nsfw_loras, checkpoint=checkpoint)
    source = TrendingSource(CommunityCache(paths.data_dir / "community"), base_url, key)
    return asyncio.run(gather(source, query, args.count, catalog, rules, refresh=refresh or args.refresh,
                              lookup=args.lookup))


def _run_pool(args: argparse.Namespace, *, refresh: bool) -> Pool | int:
    from stablenew.community.errors import CivitaiError

    try:
        return _pool(args, refresh=refresh)
    except CivitaiError as exc:
        return fail("trending", exc.message)


def _fetch(args: argparse.Namespace) -> int:
    pool = _run_pool(args, refresh=True)
    if isinstance(pool, int):
        return pool
    if args.json:
        print(json.dumps(_pool_json(pool, dropped=False), indent=2, ensure_ascii=False))
    else:
        print(pool.summary())
        for problem in pool.problems:
            print(problem, file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    pool = _run_pool(args, refresh=False)
    if isinstance(pool, int):
        return pool
    if args.json:
        print(json.dumps(_pool_json(pool, dropped=args.all), indent=2, ensure_ascii=False))
        return 0
    print(pool.summary())
    for combo in pool.filtered.kept:
        _print_combo(combo)
    if args.all:
        for combo, reason in pool.filtered.dropped:
            _print_combo(combo, reason)
    elif pool.filtered.dropped:
        print(f"({_plural(len(pool.filtered.dropped), 'combo')} left out: --all shows why.)")
    for problem in pool.problems:
        print(problem, file=sys.stderr)
    return 0


def _print_combo(combo: Combo, left_out: str = "") -> None:
    image = combo.image
    head = f"#{image.id}  {_plural(image.stats.reactions, 'reaction')}  {image.base_model or '?'}"
    if image.username:
        head += f"  by {image.username}"
    print(f"\n{head}" + (f"  — left out: {left_out}" if left_out else ""))
    if image.prompt:
        print(f"  {image.prompt[:200]}")
    for lora in combo.loras:
        where = f"on {', '.join(lora.nodes)}" if lora.state.value == "elsewhere" else lora.state.value
        how = f", by {lora.matched_by}" if lora.matched_by else ""
        extra = ""
        if lora.info is not None and lora.entry is None:
            extra = f" — {lora.info.base_model}, {lora.info.page_url}"
        print(f"  LoRA {lora.name} {lora.weight:g} ({where}{how}){extra}")


def _pool_json(pool: Pool, *, dropped: bool) -> dict[str, object]:
    result = pool.result
    out: dict[str, object] = {
        "status": pool.summary(), "fetched_at": result.fetched_at, "from_cache": result.from_cache,
        "offline": result.offline_reason or None, "images": len(result.images),
        "combos": [c.to_json(pool.base_url) for c in pool.filtered.kept],
        "skipped": result.skipped, "problems": pool.problems,
    }
    if dropped:
        out["left_out"] = [{"id": c.image.id, "reason": why} for c, why in pool.filtered.dropped]
    return out


def _use(args: argparse.Namespace) -> int:
    from stablenew.community.combos import batch_items, combo_changes
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.storage.atomic import atomic_write_text
    from stablenew.storage.documents import DocumentError

    if args.save and (args.queue or len(args.image) > 1):
        return fail("trending", "--save writes one combo's config; use --queue for several.")
    try:
        base = _base_config(args.base) if args.base else PipelineConfig()
    except DocumentError as exc:
        return fail("trending", str(exc))
    pool = _run_pool(args, refresh=False)
    if isinstance(pool, int):
        return pool
    combos = []
    for image_id in args.image:
        combo = pool.find(image_id)
        if combo is None:
            return fail("trending", f"Image {image_id} is not among the {_plural(len(pool.combos), 'image')} "
                        "fetched for these options (same --sort, --period and --count as the list).")
        reason = next((why for c, why in pool.filtered.dropped if c is combo), None)
        if reason is not None:
            return fail("trending", f"Image {image_id} cannot be used: {reason}.")
        combos.append(combo)
    for combo in combos:
        for note in combo_changes(combo, settings=args.settings)[1]:
            print(f"Image {combo.image.id}: {note}", file=sys.stderr)
    items = batch_items(combos, base, settings=args.settings)
    if args.queue:
        return _queue(items, args)
    config = items[0].config
    if args.save:
        atomic_write_text(args.save, config.to_yaml())
        print(f"Saved the config of image {combos[0].image.id} to {args.save}")
    elif args.json:
        configs = [item.config.model_dump(mode="json") for item in items]
        print(json.dumps(configs, indent=2, ensure_ascii=False))
    else:
        print(config.to_yaml(), end="")
    return 0


def _download(args: argparse.Namespace) -> int:
    import asyncio

    from stablenew.cli._common import app_settings
    from stablenew.community.client import CivitaiClient
    from stablenew.community.download import confirmation_text, download_lora
    from stablenew.community.errors import CivitaiError

    args.runnable, args.lookup = False, True  # the combo may (must) miss LoRAs; CivitAI names them
    folder = args.into or _first_lora_folder()
    if folder is None:
        return fail("trending", "Say where LoRAs go with --into DIR (no LoRA folder has been scanned).")
    pool = _run_pool(args, refresh=False)
    if isinstance(pool, int):
        return pool
    combo = pool.find(args.image)
    if combo is None:
        return fail("trending", f"Image {args.image} is not among the images fetched for these options.")
    offers = [lora.info for lora in combo.missing if lora.entry is None and lora.info is not None
              and lora.info.download_url]
    if not offers:
        missing = [lora.name for lora in combo.missing]
        why = f" (CivitAI offers no file for {', '.join(missing)})." if missing else "; every LoRA is here."
        print(f"Image {args.image}: nothing to download{why}")
        return 1 if missing else 0
    chosen = []
    for info in offers:  # every question first: the downloads then run without waiting on anyone
        if args.yes or input(f"{confirmation_text(info, folder)} [y/N] ").strip().lower() in ("y", "yes"):
            chosen.append(info)
        else:
            print(f"Skipped {info.name}.")
    _paths, settings = app_settings()
    key = settings.civitai_api_key.get_secret_value()
    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "")

    async def fetch_all() -> int:
        failed = 0
        async with CivitaiClient(args.base_url or settings.civitai_url, api_key=key) as client:
            for info in chosen:
                try:
                    path = await download_lora(client, info, folder)
                except CivitaiError as exc:
                    print(f"stablenew trending: {exc.message}", file=sys.stderr)
                    failed += 1
                    continue
                print(f"Saved {path} (sha256 checked).")
        return failed

    return 1 if asyncio.run(fetch_all()) else 0


def _first_lora_folder() -> Path | None:
    from stablenew.catalog.cache import CatalogCache, default_cache_path

    cache = CatalogCache(default_cache_path())
    try:
        return next((Path(root) for root, kind in cache.roots() if kind == "lora"), None)
    finally:
        cache.close()


def _base_config(path: Path):  # -> PipelineConfig (lazy import)
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.storage.documents import read_document_text

    return PipelineConfig.from_yaml(read_document_text(path), path=str(path))


def _queue(items: list, args: argparse.Namespace) -> int:
    from stablenew.cli._common import app_settings
    from stablenew.cluster.jobs import JobKind
    from stablenew.cluster.queue_store import QueueError, QueueStore

    paths, settings = app_settings()
    name = f"{_plural(len(items), 'trending combo')}"
    try:
        with QueueStore(paths.database_file) as store:
            job = store.add_job(items, name=name, kind=JobKind.plan,
                                output_root=settings.output_path(paths))
    except QueueError as exc:
        return fail("trending", exc.message)
    if args.json:
        print(json.dumps({"job": job.id, "images": job.counts.total, "name": job.name}))
    else:
        print(f"Added job {job.id}: {_plural(job.counts.total, 'image')}, \"{job.name}\" → {job.output_dir}")
    return 0
