"""`stablenew gui`: open the window (the same as running `stablenew` with no arguments)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("gui", help="open the StableNew window")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from stablenew.gui.app import run_app

    return run_app()
