"""CancelToken: a stop request that any thread may raise and any event loop may await."""

from __future__ import annotations

import asyncio
import threading


class CancelToken:
    """One run's stop button: `cancel()` from any thread, `await wait()` on any event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        # Waiters belong to whatever loop awaited; each is woken on its own loop's thread.
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:
                pass  # that loop is closed: nobody is waiting any more

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    async def wait(self) -> None:
        """Return once the token is cancelled (at once if it already is)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._cancelled:
                return
            entry = (loop, future)
            self._waiters.append(entry)
        try:
            await future
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self._cancelled})"


class RunCancelled(Exception):
    """Raised inside the runner when its token trips; never leaves `PipelineRunner.run`."""


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
