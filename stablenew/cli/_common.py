"""Small pieces the subcommand modules share (a leading underscore: not a command itself)."""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import AppSettings


def show_help(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A handler for a command given without its action: print its help, exit code 2."""

    def show(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def stop_on_signals(stop: Callable[[], None], stopped: list[str]) -> None:
    """Inside a running loop: the first SIGINT or SIGTERM calls *stop* (work in flight goes
    back to the queue) and notes the signal in *stopped*; a second one quits at once. Where
    the loop cannot take signals (Windows), Ctrl+C cancels the run, which also gives work back."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if stopped:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            raise KeyboardInterrupt
        stopped.append(name)
        again = "Ctrl+C" if name == "SIGINT" else "the signal"
        print(f"Stopping… ({again} again to quit at once)", file=sys.stderr, flush=True)
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
        except (NotImplementedError, RuntimeError, ValueError):
            # Windows' loops take no signal handlers (NotImplementedError), and a loop outside
            # the main thread refuses them (RuntimeError/ValueError): Ctrl+C then cancels the
            # run instead, which gives the work back just the same (see the docstring).
            pass


@contextlib.contextmanager
def collector_paused_for_startup() -> Iterator[Callable[[], None]]:
    """Inside: the cycle collector is paused until the command calls the callable it is given,
    which ends start-up. Start-up makes some 100,000 objects that live as long as the process
    (modules, classes, the models' validators); the collector walked them over a hundred times
    before `stablenew run` sent its first request (about 50 ms of it). At the end of start-up
    they are frozen, never walked again, and the collector resumes; leaving the block puts it
    back as it was."""
    was_on = gc.isenabled()
    frozen: list[bool] = []
    gc.disable()

    def started() -> None:
        if was_on and not frozen:
            gc.freeze()
            frozen.append(True)
            gc.enable()

    try:
        yield started
    finally:
        if frozen:
            gc.unfreeze()  # a caller that goes on living (a test) may collect them again
        if was_on:
            gc.enable()


def fail(command: str, message: str) -> int:
    """Print a plain error for `stablenew COMMAND` to stderr; exit code 1."""
    print(f"stablenew {command}: {message}", file=sys.stderr)
    return 1


def app_settings() -> tuple[AppPaths, AppSettings]:
    """The folders and the settings the window uses; a problem reading them goes to stderr."""
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import load_settings

    paths = AppPaths.default()
    settings, problem = load_settings(paths)
    if problem:
        print(problem, file=sys.stderr)
    return paths, settings
