"""Blocking calls of the queue's workers, run off the event loop (the window's Qt thread)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import ParamSpec, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


async def run_to_end(fn: Callable[P, T], executor: Executor | None = None, /,
                     *args: P.args, **kwargs: P.kwargs) -> T:
    """Run the blocking *fn* in *executor* (None: the loop's default threads) and wait for its
    end even when the caller is cancelled meanwhile; the cancel is raised after it.

    For the steps whose order matters while a worker stops (give an item back, let the
    database thread finish, release the runner lock): the call cannot be taken back once it
    runs in its thread, so what follows must not overtake it. A blocking call made on the
    loop itself behaved the same way, but froze the window while it waited.
    """
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(executor, partial(fn, *args, **kwargs))
    cancelled = False
    while not work.done():
        try:
            await asyncio.wait((work,))  # a cancel of this wait leaves *work* running
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not work.cancelled() and work.exception() is not None:
            # The stop wins, but the call's own failure is not lost for it.
            log.warning("%s failed while its caller stopped", getattr(fn, "__qualname__", fn),
                        exc_info=work.exception())
        raise asyncio.CancelledError
    return work.result()
