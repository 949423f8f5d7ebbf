"""`stablenew variants TEMPLATE`: count and list the prompts a template makes, headless.

Prints `count=<exact number>` first, then one resolved prompt per line (up to --limit). A
template error exits with status 2 and names the position.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "variants", help="count and list the prompts a template makes",
        description="Expand a prompt template ({a|b}, {2$$a|b|c}, __wildcards__) and print "
                    "count=<exact number>, then one prompt per line.")
    parser.add_argument("template", help='the prompt template, e.g. "a {red|blue} __animal__"')
    parser.add_argument("--wildcards", metavar="DIR",
                        help="your wildcards folder (default: the one in Settings)")
    parser.add_argument("--mode", choices=("fanout", "random"), default="fanout",
                        help="fanout: every combination (default); random: --limit random "
                             "picks, no repeats while possible")
    parser.add_argument("--seed", type=int, default=None, help="same seed, same list")
    parser.add_argument("--limit", type=int, default=100,
                        help="print at most this many prompts (default 100; 0: only the count)")
    parser.add_argument("--count-only", action="store_true", help="print only count=N")
    parser.add_argument("--negative", default=None, help="a negative prompt template to cross")
    parser.add_argument("--matrix", action="store_true",
                        help="A1111 prompt matrix: 'base|a|b' makes every subset of a and b")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from stablenew.pipeline.config import PipelineConfig
    from stablenew.randomizer.errors import RandomizerError, TemplateError
    from stablenew.randomizer.plan import plan
    from stablenew.randomizer.spec import VariationSpec
    from stablenew.storage.validation import plain_problems

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            # A Windows console may not encode every character of a prompt; never crash on one.
            reconfigure(errors="replace")
    if args.limit < 0:
        print("--limit must be 0 or more.", file=sys.stderr)
        return 2
    wildcards = args.wildcards
    if wildcards is not None:
        from pathlib import Path

        if not Path(wildcards).is_dir():
            print(f"The wildcards folder {wildcards} does not exist.", file=sys.stderr)
            return 2
    else:
        from stablenew.cli._common import app_settings

        wildcards = app_settings()[1].wildcards_path()
        if wildcards is not None and not wildcards.is_dir():
            print(f"The wildcards folder in Settings ({wildcards}) does not exist; going on "
                  "without wildcards.", file=sys.stderr)
            wildcards = None
    random_mode = args.mode == "random"
    try:
        spec = VariationSpec(
            template=args.template, negative_template=args.negative or "",
            prompt_matrix=args.matrix, mode=args.mode, seed=args.seed,
            count=max(1, args.limit) if random_mode else None)
        result = plan(PipelineConfig(), spec, wildcards_dir=wildcards)
    except TemplateError as exc:
        where = f" ({exc.position})" if exc.position and exc.position not in exc.message else ""
        print(f"Template error{where}: {exc.message}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        problems = "; ".join(str(p) for p in plain_problems(exc, VariationSpec))
        print(f"Error: {problems}", file=sys.stderr)
        return 2
    except (RandomizerError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    out.write(f"count={result.count}\n")
    if args.count_only or args.limit == 0:
        return 0
    try:
        for item in result.preview(args.limit):
            prompt = item.config.txt2img.prompt.replace("\n", " ")
            if args.negative:
                prompt += "\t" + item.config.txt2img.negative_prompt.replace("\n", " ")
            out.write(prompt + "\n")
    except BrokenPipeError:  # `stablenew variants … | head` is fine
        return 0
    return 0
