"""Opening StableNew's SQLite database: WAL mode and schema set-up that survive a race.

The queue and the learning store share one database file and open it at the same moment
when the window starts (and a headless command may open it too). Switching a new file to WAL
needs it to itself, and SQLite answers "database is locked" at once — without waiting on the
busy timeout — to the connection that loses that race. That is contention, not damage: the
set-up is retried until it succeeds or the wait runs out.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path


def is_contention(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def set_up_wal(db: sqlite3.Connection, setup: Callable[[], None], *, wait_s: float,
               pragmas: tuple[str, ...] = ("synchronous=NORMAL",)) -> None:
    """WAL mode, *pragmas* and the idempotent *setup* (schema, migrations) on *db*.

    Retries while another connection holds the file; raises the last OperationalError when
    the wait runs out, and any other error at once (a damaged file is not retried).
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            for pragma in pragmas:
                db.execute(f"PRAGMA {pragma}")
            setup()
            return
        except sqlite3.OperationalError as exc:
            if not is_contention(exc) or time.monotonic() > deadline:
                raise
            if db.in_transaction:
                db.execute("ROLLBACK")
            time.sleep(0.02)


#: How long a connection waits for another's write lock before "database is locked" (every
#: store of StableNew's database waits the same: the queue, the learning store, the catalog).
BUSY_MS = 30_000


class DatabaseUnusable(Exception):
    """A database file that cannot be opened, is held by another program too long, or is damaged;
    `message` says what to do in plain words, `detail` keeps SQLite's own words."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


def open_database(path: Path, setup: Callable[[sqlite3.Connection], None], *, what: str,
                  pragmas: tuple[str, ...] = ()) -> sqlite3.Connection:
    """A connection to the SQLite file at *path*, made for sharing between threads under the
    caller's lock: WAL, synchronous=NORMAL, the common busy timeout, rows as sqlite3.Row, and
    the caller's *setup* (schema, migrations) run on it, retried while another connection holds
    the file. *what* names it for users ("queue database"). Raises DatabaseUnusable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: the stores issue BEGIN / COMMIT themselves.
        db = sqlite3.connect(path, timeout=BUSY_MS / 1000, isolation_level=None,
                             check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise DatabaseUnusable(
            f"StableNew cannot open its {what} at {path}. Check that the folder exists and that "
            "you may write to it.", detail=repr(exc)) from exc
    try:
        db.row_factory = sqlite3.Row
        set_up_wal(db, lambda: setup(db), wait_s=BUSY_MS / 1000,
                   pragmas=("synchronous=NORMAL", f"busy_timeout={BUSY_MS}", *pragmas))
    except sqlite3.OperationalError as exc:
        db.close()
        if is_contention(exc):
            raise DatabaseUnusable(
                f"StableNew cannot use its {what} at {path} right now ({exc}). Close other "
                "StableNew windows or commands using it and try again.", detail=repr(exc)) from exc
        raise DatabaseUnusable(
            f"StableNew cannot use its {what} at {path} ({exc}). Check the disk and that you may "
            "write to the folder.", detail=repr(exc)) from exc
    except sqlite3.DatabaseError as exc:
        db.close()
        raise DatabaseUnusable(
            f"The {what} at {path} is damaged or is not a StableNew database. Move it aside and "
            "StableNew will start a new one (the images on disk are not affected).",
            detail=repr(exc)) from exc
    except BaseException:
        db.close()
        raise
    return db
