"""`stablenew info IMAGE.png`: show what an image says about how it was made."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "info", help="print the generation settings stored in an image",
        description="Print the A1111 'parameters' text (parsed) and StableNew's own metadata "
                    "of an image.")
    parser.add_argument("image", metavar="IMAGE.png", help="image file (PNG, JPEG or WebP)")
    parser.add_argument("--json", action="store_true", help="print everything as one JSON object")
    parser.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    import json

    from stablenew.pipeline.infotext import ImageMetadataError, read_image_metadata

    try:
        meta = read_image_metadata(args.image)
    except ImageMetadataError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"file": str(meta.path), "format": meta.format, "width": meta.width,
                          "height": meta.height, "parameters": meta.parameters,
                          "parsed": meta.parsed, "stablenew": meta.stablenew,
                          "other": sorted(meta.other)}, ensure_ascii=False, indent=2))
        return 0
    print(f"{meta.path.name}: {meta.format} {meta.width}×{meta.height}")
    if meta.parameters is None:
        print("\nNo A1111 'parameters' text in this image.")
    else:
        print("\nA1111 parameters")
        for key in ("Prompt", "Negative prompt"):
            if meta.parsed.get(key):
                print(f"  {key}: {meta.parsed[key]}")
        for key, value in _joined_sizes(meta.parsed).items():
            if key not in ("Prompt", "Negative prompt"):
                print(f"  {key}: {value}")
        if not meta.parsed:
            print(f"  (not in A1111's format)\n  {meta.parameters[:2000]}")
    if meta.stablenew is None:
        print("\nNo StableNew metadata in this image.")
    else:
        print("\nStableNew metadata")
        print(json.dumps(meta.stablenew, ensure_ascii=False, indent=2))
    if meta.other:
        print("\nOther tools' metadata: " + ", ".join(sorted(meta.other)))
    return 0


def _joined_sizes(parsed: dict[str, str]) -> dict[str, str]:
    """Show `Size-1`/`Size-2` pairs as the `Size: 512x768` the image's text had."""
    shown: dict[str, str] = {}
    for key, value in parsed.items():
        if key.endswith("-2") and key[:-2] + "-1" in parsed:
            continue
        if key.endswith("-1") and key[:-2] + "-2" in parsed:
            shown[key[:-2]] = f"{value}x{parsed[key[:-2] + '-2']}"
        else:
            shown[key] = value
    return shown
