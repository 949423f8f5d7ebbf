"""Small pieces the subcommand modules share (a leading underscore: not a command itself)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def show_help(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A handler for a command given without its action: print its help, exit code 2."""

    def show(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def fail(command: str, message: str) -> int:
    """Print a plain error for `stablenew COMMAND` to stderr; exit code 1."""
    print(f"stablenew {command}: {message}", file=sys.stderr)
    return 1
