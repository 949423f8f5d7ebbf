"""StoreWorker: the learning store's own thread, so the GUI thread never waits on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from stablenew.learning.store import LearningStore

T = TypeVar("T")


class StoreWorker:
    """Runs store calls on one background thread, so the GUI thread never waits on SQLite.

    The store itself is opened on that thread at the first call (opening may migrate), and
    every call receives it as its first argument: `await worker.call(LearningStore.rate, id, 4)`.
    """

    def __init__(self, opener: Callable[[], LearningStore] | LearningStore) -> None:
        self._opener = opener if callable(opener) else (lambda: opener)
        # A store is not callable; an opener is (a function, or the LearningStore class).
        self._store: LearningStore | None = None if callable(opener) else opener
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="learning-store")

    def _invoke(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        if self._store is None:
            self._store = self._opener()
        return fn(self._store, *args, **kwargs)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue a call from any thread; the result (or error) arrives in the Future."""
        return self._executor.submit(self._invoke, fn, args, kwargs)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._invoke, fn, args, kwargs))

    def close(self) -> None:
        """Finish queued writes, then close the database."""
        self._executor.shutdown(wait=True)
        if self._store is not None:
            self._store.close()
            self._store = None

