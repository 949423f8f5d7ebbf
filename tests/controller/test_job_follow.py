"""JobFollower: Stop keeps asking the queue to cancel the job until it has (issue 18: a cancel
that failed once was swallowed, and the Run said "stopping" while its images kept coming)."""

from __future__ import annotations

import asyncio

from stablenew.cluster.queue_store import QueueError, UnknownId
from stablenew.controller.job_follow import JobFollower


class _Queue:
    """The two calls of QueueController that follow() makes, over a job of *left* images;
    the first *failures* cancels fail as a busy database does."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error = failures, error
        self.cancels = 0
        self.cancelled = False

    async def cancel_job(self, job_id: str) -> None:
        self.cancels += 1
        if self.failures:
            self.failures -= 1
            raise self.error
        self.cancelled = True

    async def job_unfinished(self, job_id: str) -> bool:
        return not self.cancelled


class _RunQueue:
    def __init__(self, queue: _Queue) -> None:
        self.queue = queue

    def working(self) -> bool:
        return True


async def test_stop_asks_again_until_the_job_is_cancelled(monkeypatch):
    monkeypatch.setattr("stablenew.controller.job_follow.CHECK_S", 0.01)
    queue = _Queue(failures=2, error=QueueError("database is locked"))
    await asyncio.wait_for(JobFollower().follow(_RunQueue(queue), "j1", stop=lambda: True,
                                                queue_stopped=RuntimeError), 5)
    assert queue.cancels == 3 and queue.cancelled


async def test_a_job_already_cleared_counts_as_cancelled(monkeypatch):
    monkeypatch.setattr("stablenew.controller.job_follow.CHECK_S", 0.01)
    queue = _Queue(failures=1, error=UnknownId("There is no job j1 in the queue."))
    queue.job_unfinished = _gone  # type: ignore[method-assign]
    await asyncio.wait_for(JobFollower().follow(_RunQueue(queue), "j1", stop=lambda: True,
                                                queue_stopped=RuntimeError), 5)
    assert queue.cancels == 1


async def _gone(job_id: str) -> bool:
    return False
