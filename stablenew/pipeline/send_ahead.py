"""The requests of a run on their way to the node: each one's answer still to be taken, and
the next image's first request sent before the current image ends (the node never idles)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stablenew.pipeline.config import StageName

if TYPE_CHECKING:
    from stablenew.pipeline.runner import _Run


@dataclass
class Pending:
    """A job sent to the node whose answer has not been taken yet."""

    stage: StageName
    job: Any
    image_index: int
    # Set by the run right after it is made (its progress callback needs this object first).
    work: asyncio.Future[Any] | None = None
    active: bool = False  # its turn on the node has come (progress belongs to it now)


class SendAhead:
    """Sends the first request of the next image (or batch) before the current one ends."""

    def __init__(self, run: _Run, count: int,
                 send: Callable[[int], Awaitable[Pending | None]]) -> None:
        self.run = run
        self.count = count
        self._send = send
        self._sent: dict[int, Pending | None] = {}

    async def send(self, n: int) -> None:
        if n >= self.count or n in self._sent or self.run.fatal is not None \
                or self.run.token.cancelled:
            return
        self._sent[n] = await self._send(n)

    async def take(self, n: int) -> Pending | None:
        """The request for item n, sending it now unless it went ahead; None if it failed."""
        if self.run.fatal is not None:
            return None
        self.run._check_cancel()
        if n not in self._sent:
            await self.send(n)
        return self._sent.pop(n, None)
