"""What every fake SD server shares: `async with`, and serving from a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self


class ServesItself:
    """Mixin for a fake server with `async start() -> url` and `async stop()`."""

    async def start(self) -> str:  # pragma: no cover - provided by the fake
        raise NotImplementedError

    async def stop(self) -> None:  # pragma: no cover - provided by the fake
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextmanager
    def running_in_thread(self, timeout: float = 10.0) -> Iterator[Self]:
        """Serve from a thread with its own event loop (GUI tests on the qasync loop, the CLI,
        benchmarks); returns once the server listens, with `.url` set."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        name = type(self).__name__
        thread = threading.Thread(target=serve, name=name, daemon=True)
        thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"the {name} fake did not start in time")
        if failure:
            raise failure[0]
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
