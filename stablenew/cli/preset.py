"""`stablenew preset validate|import|list|import-styles`: presets without opening the window."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from stablenew.storage.words import plural


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("preset", help="check, import and list presets")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    validate = verbs.add_parser("validate", help="check a preset file; exit 0 if it can be used")
    validate.add_argument("file", help="the preset .yaml file")
    validate.add_argument("--strict", action="store_true",
                          help="also fail on warnings (e.g. a sampler name no known server has)")
    validate.set_defaults(func=_validate)

    imp = verbs.add_parser("import", help="copy a valid preset into your presets folder")
    imp.add_argument("file", help="the preset .yaml file")
    imp.add_argument("--replace", action="store_true", help="replace your preset of the same name")
    imp.set_defaults(func=_import)

    lst = verbs.add_parser("list", help="list shipped and your own presets")
    lst.set_defaults(func=_list)

    styles = verbs.add_parser("import-styles", help="turn an A1111 styles.csv into presets")
    styles.add_argument("file", help="the styles.csv file")
    styles.add_argument("--replace", action="store_true", help="replace presets of the same names")
    styles.set_defaults(func=_import_styles)


def print_document_error(exc: Any) -> None:
    """Every problem of a DocumentError, one per line: file, line, field, reason."""
    found = [(exc.line, exc.field, exc.reason)]
    found += [(line, problem.field, problem.message) for line, problem in exc.problems[1:]]
    for line, field, reason in found:
        where = [str(exc.path) if exc.path else "<text>"]
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        print(f"error: {', '.join(where)}: {reason}", file=sys.stderr)


def _summary(preset: Any) -> str:
    partial = preset.partial()
    sections = ", ".join(f"{key} ({_count(value)})" for key, value in partial.items()) or "no settings"
    styles = f"; {plural(len(preset.styles), 'style')}" if preset.styles else ""
    return f"preset '{preset.name}' (format {preset.version}) sets {sections}{styles}"


def _count(value: Any) -> str:
    if isinstance(value, dict):
        n = sum(int(_count(v).split()[0]) if isinstance(v, dict) else 1 for v in value.values())
        return f"{n} setting{'s' if n != 1 else ''}"
    return "1 setting"


def _validate(args: argparse.Namespace) -> int:
    from stablenew.pipeline.presets import load_preset
    from stablenew.storage.documents import DocumentError

    try:
        preset, warnings = load_preset(args.file)
    except DocumentError as exc:
        print_document_error(exc)
        return 1
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if warnings and args.strict:
        print(f"{args.file}: not accepted with --strict ({plural(len(warnings), 'warning')}).",
              file=sys.stderr)
        return 1
    print(f"OK: {args.file}: {_summary(preset)}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from stablenew.pipeline.presets import LibraryError, PresetStore
    from stablenew.storage.documents import DocumentError

    store = PresetStore()
    try:
        target = store.import_file(args.file, replace=args.replace)
    except DocumentError as exc:
        print_document_error(exc)
        print("Nothing was imported.", file=sys.stderr)
        return 1
    except LibraryError as exc:
        print(f"error: {exc.message} Use --replace to replace it.", file=sys.stderr)
        return 1
    preset, warnings = store.load(target)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"Imported preset '{preset.name}' to {target}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from stablenew.pipeline.presets import PresetStore

    store = PresetStore()
    entries = store.entries()
    if not entries:
        print("No presets.")
    for entry in entries:
        mark = "BROKEN " if entry.broken else ""
        print(f"{mark}{entry.name}\t{entry.source.value}\t{entry.path}")
        if entry.error is not None:
            print(f"    {entry.error}")
        for warning in entry.warnings:
            print(f"    warning: {warning.message}")
    return 1 if any(e.broken for e in entries) else 0


def _import_styles(args: argparse.Namespace) -> int:
    from stablenew.pipeline.presets import LibraryError, Preset, PresetStore
    from stablenew.pipeline.styles import read_styles_csv
    from stablenew.storage.documents import DocumentError

    try:
        styles = read_styles_csv(args.file)
    except DocumentError as exc:
        print_document_error(exc)
        return 1
    store = PresetStore()
    failed = 0
    for style in styles:
        preset = Preset(name=style.name, description="Imported from an A1111 styles.csv.",
                        tags=["style"], styles=[style])
        try:
            path = store.save(preset, replace=args.replace)
        except LibraryError as exc:
            failed += 1
            print(f"error: {exc.message}", file=sys.stderr)
            continue
        print(f"Imported style '{style.name}' as preset {path}")
    if not styles:
        print("The file holds no styles.")
    return 1 if failed else 0
