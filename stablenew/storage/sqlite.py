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
