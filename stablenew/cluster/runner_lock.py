"""One QueueRunner per queue database at a time, across processes."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import IO

from stablenew.cluster.queue_store import QueueError


class RunnerLock:
    """One QueueRunner per queue database at a time, across processes.

    An OS lock on a file next to the database: the operating system drops it when the
    process ends, even when killed, so a crashed runner never blocks the next one, and a
    live one (the window, or `stablenew queue run` in a terminal) is never robbed of the
    items it is working on by the other's crash recovery.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = Path(f"{db_path}.runner-lock")
        self._handle: IO[bytes] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115  (held open while the lock is held)
        try:
            if sys.platform == "win32":
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise QueueError(
                "The queue is already being worked on by another StableNew (the window or "
                "`stablenew queue run`). Stop that one first, or let it finish the queue.",
                detail=f"{self.path}: {exc!r}") from None
        self._handle = handle

    @classmethod
    def held(cls, db_path: Path) -> bool:
        """Is the queue being worked on by a runner right now (in another process, or by
        another runner of this one)? Asked before starting one that nobody asked for."""
        probe = cls(db_path)
        try:
            probe.acquire()
        except QueueError:
            return True
        probe.release()
        return False

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        with contextlib.suppress(OSError):
            if sys.platform == "win32":
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
