"""The `stablenew` command: no arguments opens the window; subcommands run headless work.

Each subcommand lives in its own module in this package and exposes
`register(subparsers)`; modules are found automatically, so a room adds its command by
adding a file. Command modules import their heavy dependencies inside their functions so
that opening the window stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from stablenew import __version__


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of *command* alone when it names one (the others'
    modules are then not even imported: a headless command starts sooner)."""
    parser = argparse.ArgumentParser(
        prog="stablenew",
        description="StableNew: a desktop control room for Stable Diffusion servers. "
        "Run without arguments to open the window.",
    )
    parser.add_argument("--version", action="version", version=f"StableNew {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command is not None and command.isidentifier() and not command.startswith("_") \
            and (Path(__file__).parent / f"{command}.py").is_file():
        names = [command]
    else:
        import pkgutil

        names = sorted(info.name for info in pkgutil.iter_modules(__path__))
    for name in names:
        if name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    _document_exit_codes(parser)
    return parser


#: What a command's exit code means unless its own help says more.
EXIT_CODES = ("Exit codes: 0 done; 1 it failed (the message says why); 2 the command line is "
              "wrong.")


def _document_exit_codes(parser: argparse.ArgumentParser) -> None:
    """Give every command's --help its exit codes (commands with more of them say their own)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if "Exit codes:" not in (sub.epilog or ""):
                    sub.epilog = f"{sub.epilog}\n\n{EXIT_CODES}" if sub.epilog else EXIT_CODES
                _document_exit_codes(sub)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list:
        from stablenew.gui.app import run_app

        return run_app()
    parser = build_parser(args_list[0])
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return 130
