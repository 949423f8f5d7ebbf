"""A cancel that arrives while the client's parallel requests clean up after a failure wins."""

from __future__ import annotations

import asyncio

import pytest

from stablenew.backends.errors import ServerUnreachable
from stablenew.backends.together import together


async def test_a_cancel_during_cleanup_after_a_failed_request_is_not_lost():
    cleaning = asyncio.Event()
    release = asyncio.Event()

    async def fails() -> None:
        raise ServerUnreachable("down")

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cleaning.set()  # the group is waiting for this one after the other failed
            await release.wait()
            raise

    caller = asyncio.create_task(together(fails(), slow_to_stop()))
    await cleaning.wait()
    caller.cancel()  # the user pressed Stop (or the monitor shut down) right then
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller


async def test_a_failure_alone_is_still_raised_as_itself():
    async def fails() -> None:
        raise ServerUnreachable("down")

    async def fine() -> int:
        await asyncio.sleep(0)
        return 1

    with pytest.raises(ServerUnreachable):
        await together(fails(), fine())
    assert await together(fine(), fine()) == [1, 1]
