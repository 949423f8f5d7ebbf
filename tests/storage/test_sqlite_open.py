"""The queue and the learning store open one database file at the same moment at start-up."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from stablenew.cluster.queue_store import QueueStore
from stablenew.learning.store import LearningStore
from stablenew.storage.sqlite import set_up_wal


def test_queue_and_learning_stores_open_a_new_file_together(tmp_path):
    for round_ in range(12):
        path = tmp_path / f"stablenew{round_}.db"
        errors: list[str] = []
        start = threading.Barrier(4)

        def open_one(kind: type, path=path, errors=errors, start=start) -> None:
            start.wait()
            try:
                kind(path).close()
            except Exception as exc:  # collected for the assertion
                errors.append(f"{kind.__name__}: {exc}")

        threads = [threading.Thread(target=open_one, args=(k,))
                   for k in (QueueStore, LearningStore, QueueStore, LearningStore)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_set_up_wal_gives_up_after_its_wait_and_never_retries_damage(tmp_path):
    path = tmp_path / "a.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    db = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        set_up_wal(db, lambda: None, wait_s=0.2)
    holder.execute("ROLLBACK")
    set_up_wal(db, lambda: None, wait_s=0.2)  # free again: succeeds
    calls = []

    def broken() -> None:
        calls.append(1)
        raise sqlite3.DatabaseError("file is not a database")

    with pytest.raises(sqlite3.DatabaseError):
        set_up_wal(db, broken, wait_s=5)
    assert calls == [1]
    db.close()
    holder.close()
