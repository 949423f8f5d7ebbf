"""`stablenew lora scan|list|show|match`: the LoRA and checkpoint catalog, headless."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from stablenew.cli._common import fail, show_help
from stablenew.storage.words import plural

if TYPE_CHECKING:
    from stablenew.catalog.cache import CatalogCache
    from stablenew.catalog.entry import ModelEntry
    from stablenew.catalog.index import Catalog


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "lora", help="index your LoRA and checkpoint folders; find LoRAs for a prompt",
        description="Read the LoRA (and checkpoint) folders you point at: trigger words, base model, "
                    "previews and hashes, cached so the next look is instant. Files that cannot be "
                    "read are listed with the reason.")
    parser.set_defaults(func=show_help(parser))
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    scan = actions.add_parser("scan", help="read a folder (or every folder read before)")
    scan.add_argument("folder", nargs="?", metavar="DIR",
                      help="a LoRA folder; omitted: every folder scanned before")
    scan.add_argument("--checkpoints", action="store_true", help="DIR holds checkpoints, not LoRAs")
    scan.add_argument("--no-hashes", action="store_true", help="skip hashing (hashes read the whole files)")
    scan.add_argument("--json", action="store_true", help="print every entry as JSON")
    scan.set_defaults(func=_scan)

    lst = actions.add_parser("list", help="list the LoRAs of every folder scanned before")
    lst.add_argument("--checkpoints", action="store_true", help="list checkpoints instead of LoRAs")
    lst.add_argument("--node", metavar="URL", help="also ask this server which LoRAs it has "
                     "(its own are marked; ones only it has are listed too)")
    lst.add_argument("--kind", choices=("a1111", "comfyui"), default="a1111",
                     help="the server's kind for --node (default a1111, also for Forge)")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=_list)

    show = actions.add_parser("show", help="everything known about one LoRA or checkpoint")
    show.add_argument("name", metavar="NAME", help="its file name (as in <lora:NAME:1>), alias or title")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)

    match = actions.add_parser("match", help="LoRAs that fit a prompt, best first, and why")
    match.add_argument("prompt", metavar="PROMPT")
    match.add_argument("--checkpoint", metavar="NAME",
                       help="only LoRAs for this checkpoint's family "
                            "(a checkpoint name, or SD1, SDXL, Pony…)")
    match.add_argument("--limit", type=int, default=10, help="how many to show (default 10)")
    match.add_argument("--json", action="store_true", help="print JSON")
    match.set_defaults(func=_match)


def _open_cache() -> CatalogCache:
    from stablenew.catalog.cache import CatalogCache, default_cache_path

    return CatalogCache(default_cache_path())


def _known(cache: CatalogCache) -> Catalog | None:
    """The catalog of every folder scanned before (from the cache; changed files are re-read)."""
    from stablenew.catalog.entry import ModelKind
    from stablenew.catalog.index import scan

    roots = cache.roots()
    if not roots:
        return None
    catalog = scan([(root, ModelKind(kind)) for root, kind in roots], cache)
    for problem in catalog.problems:
        print(problem, file=sys.stderr)
    return catalog


def _no_folders() -> int:
    return fail("lora", "no folders scanned yet. Run `stablenew lora scan DIR` with your LoRA folder "
                        "(and `--checkpoints` with your checkpoint folder).")


def _dump(entries: list[ModelEntry]) -> None:
    print(json.dumps([e.summary() for e in entries], ensure_ascii=False, indent=2))


def _line(entry: ModelEntry) -> str:
    triggers = ", ".join(entry.triggers[:3]) or "no trigger words"
    alias = f" ({entry.alias})" if entry.alias != entry.name else ""
    flag = f"  ! {plural(len(entry.problems), 'problem')}" if entry.problems else ""
    return f"{entry.name}{alias}  [{entry.base_model.value}]  {triggers}{flag}"


def _scan(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stablenew.catalog.cache import CatalogCacheError
    from stablenew.catalog.entry import ModelKind
    from stablenew.catalog.hashes import hash_entries
    from stablenew.catalog.index import Catalog, ScanError, scan_folder

    try:
        cache = _open_cache()
    except CatalogCacheError as exc:
        return fail("lora scan", exc.message)
    try:
        if args.folder:
            folder = Path(args.folder)
            if not folder.is_dir():
                return fail("lora scan", f"{folder} is not a folder.")
            kind = ModelKind.checkpoint if args.checkpoints else ModelKind.lora
            try:
                catalog = Catalog(scan_folder(folder, kind, cache, progress=_progress("Reading")))
            except ScanError as exc:
                return fail("lora scan", exc.message)
        else:
            found = _known(cache)
            if found is None:
                return _no_folders()
            catalog = found
        entries = catalog.entries
        if not args.no_hashes:
            todo = [e for e in entries if e.readable and not e.sha256 and not e.origin]
            count = [0]

            def hashed(_result: object) -> None:
                count[0] += 1
                _progress("Hashing")(count[0], len(todo))

            hash_entries(todo, cache, on_result=hashed)
    finally:
        cache.close()
    if args.json:
        _dump(entries)
        return 0
    loras = sum(e.kind is ModelKind.lora for e in entries)
    bad = [e for e in entries if e.problems]
    print(f"Read {plural(loras, 'LoRA')} and {plural(len(entries) - loras, 'checkpoint')}"
          + (f"; {plural(len(bad), 'file')} with problems:" if bad else "."))
    for entry in bad:
        print(f"  {Path(entry.path).name}")
        for problem in entry.problems:
            print(f"    - {problem}")
    return 0


def _progress(verb: str):
    def report(done: int, total: int) -> None:
        if sys.stderr.isatty():
            end = "\n" if done == total else "\r"
            print(f"{verb} {done}/{total}…", end=end, file=sys.stderr, flush=True)

    return report


def _loaded(command: str, *, allow_empty: bool = False) -> tuple[Catalog | None, int]:
    from stablenew.catalog.cache import CatalogCacheError
    from stablenew.catalog.index import Catalog

    try:
        cache = _open_cache()
    except CatalogCacheError as exc:
        return None, fail(command, exc.message)
    try:
        catalog = _known(cache)
    finally:
        cache.close()
    if catalog is None and allow_empty:
        return Catalog(), 0
    return catalog, (0 if catalog is not None else _no_folders())


def _server_list(catalog: Catalog, url: str, kind: str) -> str | None:
    """Merge the LoRA list of the server at *url* into *catalog*; a problem in words, or None."""
    import asyncio

    from stablenew.backends.errors import BackendError
    from stablenew.backends.http import HttpClient
    from stablenew.catalog.servers import a1111_loras, comfyui_loras, merge_server_loras

    async def fetch() -> list:
        http = HttpClient(url)
        try:
            return await (comfyui_loras(http) if kind == "comfyui" else a1111_loras(http))
        finally:
            await http.aclose()

    try:
        items = asyncio.run(fetch())
    except BackendError as exc:
        return exc.message
    merge_server_loras(catalog, url.rstrip("/"), items)
    return None


def _list(args: argparse.Namespace) -> int:
    catalog, code = _loaded("lora list", allow_empty=bool(args.node))
    if catalog is None:
        return code
    node = (args.node or "").rstrip("/")
    if node:
        problem = _server_list(catalog, node, args.kind)
        if problem:
            return fail("lora list", problem)
    entries = catalog.checkpoints if args.checkpoints else catalog.loras
    entries = sorted(entries, key=lambda e: (e.category.lower(), e.name.lower()))
    if args.json:
        rows = [e.summary() for e in entries]
        if node:
            for row, entry in zip(rows, entries, strict=True):
                row["nodes"] = catalog.nodes_with(entry)
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    category = None
    for entry in entries:
        if entry.category != category:
            category = entry.category
            print(f"{category or '(no category)'}:")
        where = ""
        if node:
            where = ("  (only on the server)" if entry.origin else
                     "  (on the server)" if catalog.available_on(entry, node) else "  (not on the server)")
        print(f"  {_line(entry)}{where}")
    print(plural(len(entries), "checkpoint" if args.checkpoints else "LoRA"))
    return 0


def _show(args: argparse.Namespace) -> int:
    catalog, code = _loaded("lora show")
    if catalog is None:
        return code
    entry = catalog.find(args.name)
    if entry is None:
        return fail("lora show", f"nothing named '{args.name}'. `stablenew lora list` shows the names.")
    if args.json:
        print(json.dumps(entry.summary(), ensure_ascii=False, indent=2))
        return 0
    rows = [("Name", f"{entry.name}  (in a prompt: <lora:{entry.name}:{entry.weight or 1:g}>)"
             if entry.kind.value == "lora" else entry.name),
            ("Alias", entry.alias), ("Title", entry.display_name),
            ("Base model", entry.base_model.value + (f"  (from {entry.base_model_from})"
                                                     if entry.base_model_from else "")),
            ("Trigger words", ", ".join(entry.triggers) + (f"  (from {entry.triggers_from})"
                                                           if entry.triggers else "none: add some")),
            ("Weight", f"{entry.weight:g}" if entry.weight else "not set (1)"),
            ("Category", entry.category or "none"), ("Tags", ", ".join(entry.tags) or "none"),
            ("Preview", entry.preview or "none"), ("File", entry.path),
            ("Hash (AutoV3)", entry.autov3 or "not computed yet: run `stablenew lora scan`"),
            ("SHA256", entry.sha256 or "not computed yet"),
            ("Description", entry.description or "none")]
    for label, value in rows:
        print(f"{label + ':':15} {value}")
    for problem in entry.problems:
        print(f"Problem:        {problem}")
    return 0


def _match(args: argparse.Namespace) -> int:
    from stablenew.catalog.derive import base_from_label
    from stablenew.catalog.entry import BaseModel, ModelKind
    from stablenew.catalog.match import Matcher

    catalog, code = _loaded("lora match")
    if catalog is None:
        return code
    base = BaseModel.unknown
    if args.checkpoint:
        checkpoint = catalog.find(args.checkpoint, ModelKind.checkpoint)
        base = checkpoint.base_model if checkpoint else base_from_label(args.checkpoint)
        if base is BaseModel.unknown:
            print(f"The family of '{args.checkpoint}' is unknown; showing LoRAs of every family.",
                  file=sys.stderr)
    matches = Matcher(catalog.entries).match(args.prompt, checkpoint=base)[:max(args.limit, 0)]
    if args.json:
        print(json.dumps([{**m.entry.summary(), "score": m.score, "reasons": m.reasons} for m in matches],
                         ensure_ascii=False, indent=2))
        return 0
    if not matches:
        print("No LoRA matches this prompt" + (f" for {base.value}" if base is not BaseModel.unknown else "")
              + ". Add trigger words or tags to your LoRAs to help matching.")
        return 0
    for m in matches:
        print(f"{m.score:4g}  {_line(m.entry)}")
        for reason in m.reasons:
            print(f"        {reason}")
    return 0
