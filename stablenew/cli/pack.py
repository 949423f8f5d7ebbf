"""`stablenew pack validate|list`: prompt packs without opening the window."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("pack", help="check and list prompt packs")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    validate = verbs.add_parser("validate", help="check a pack (.txt, .yaml or folder); exit 0 if usable")
    validate.add_argument("path", help="the pack file or folder")
    validate.set_defaults(func=_validate)

    lst = verbs.add_parser("list", help="list the packs in the packs folder")
    lst.add_argument("--folder", help="packs folder (default: the one in Settings)")
    lst.set_defaults(func=_list)


def _validate(args: argparse.Namespace) -> int:
    from stablenew.cli.preset import print_document_error
    from stablenew.randomizer.packs import validate_pack_path
    from stablenew.storage.documents import DocumentError

    try:
        pack, wildcards = validate_pack_path(args.path)
    except DocumentError as exc:
        print_document_error(exc)
        return 1
    count = len(pack.prompts)
    extra = []
    if wildcards is not None:
        extra.append(f"wildcards in {wildcards}")
    if pack.default_preset:
        extra.append(f"default preset '{pack.default_preset}'")
    details = f"; {', '.join(extra)}" if extra else ""
    print(f"OK: {args.path}: pack '{pack.name}' with {count} prompt{'s' if count != 1 else ''}{details}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from stablenew.randomizer.packs import PackLibrary

    folder = args.folder
    if folder is None:
        from stablenew.cli._common import app_settings

        paths, settings = app_settings()
        folder = settings.packs_path(paths)
    library = PackLibrary(folder)
    entries = library.entries()
    if not entries:
        print(f"No packs in {library.folder}.")
    for entry in entries:
        if entry.pack is None:
            print(f"BROKEN {entry.name}\t{entry.kind.value}\t{entry.path}\n    {entry.error}")
        else:
            print(f"{entry.name}\t{entry.kind.value}\t{len(entry.pack.prompts)} prompts\t{entry.path}")
    return 1 if any(e.broken for e in entries) else 0
