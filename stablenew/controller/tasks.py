"""Controllers own async work: every task is tracked and its failure becomes visible state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TypeVar

from PySide6.QtCore import QObject, Signal

from stablenew.controller.errors import ErrorInfo, error_from_exception

log = logging.getLogger("stablenew.controller")

_T = TypeVar("_T")


class TaskOwner(QObject):
    """Schedules a controller's private coroutines on the running (qasync) loop.

    Nothing is fire-and-forget: each task is kept until it ends, and an exception it raises is
    logged with its detail and emitted as `error_raised(ErrorInfo)` instead of being lost.
    """

    error_raised = Signal(object)
    busy_changed = Signal(bool)

    def __init__(self, source: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._source = source
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    def spawn(self, coro: Coroutine[object, object, _T], *, name: str = "",
              on_error: Callable[[ErrorInfo], None] | None = None) -> asyncio.Task[_T]:
        loop = asyncio.get_event_loop()
        task = loop.create_task(coro, name=name or None)
        was_busy = self.busy
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._finished(t, on_error))
        if not was_busy:
            self.busy_changed.emit(True)
        return task

    def _finished(self, task: asyncio.Task[object], on_error: Callable[[ErrorInfo], None] | None) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                info = error_from_exception(exc, self._source)
                log.error("%s task %s failed: %s\n%s", self._source, task.get_name(), info.message,
                          info.detail)
                if on_error is not None:
                    on_error(info)
                self.error_raised.emit(info)
        if not self._tasks:
            self.busy_changed.emit(False)

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait for every task running now (tests and shutdown)."""
        pending = list(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def aclose(self, timeout: float = 2.0) -> None:
        """Cancel what is still running and wait (bounded) for it to unwind."""
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)
