"""Running requests together, failing as one: the first failure cancels the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from stablenew.backends.errors import BackendError


async def together(*calls: Awaitable[Any]) -> list[Any]:
    """Run calls together; on the first failure cancel the rest and raise that failure as is
    (not wrapped in an ExceptionGroup, so callers keep catching typed BackendErrors).

    Not a TaskGroup: on Python 3.11 a TaskGroup drops a cancel of its caller that arrives while
    it cleans up after a failed call, so a stopped probe carried on as if never stopped."""
    tasks = [asyncio.ensure_future(_await(call)) for call in calls]
    for task in tasks:
        task.add_done_callback(_retrieve)  # a task left behind by a cancel never logs "never retrieved"
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in tasks if t in done and not t.cancelled() and t.exception() is not None]
        if failed:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)  # a cancel of ours arriving here propagates from here
            errors = [e for t in failed if (e := t.exception()) is not None]
            typed = [e for e in errors if isinstance(e, BackendError)]
            raise (typed[0] if typed else errors[0]) from None
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        raise
    return [task.result() for task in tasks]


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _await(call: Awaitable[Any]) -> Any:
    return await call
