"""QueueEdits: what the user changes in the queue by hand — pause and resume, cancel or retry
an image or a job, reorder, raise a job, clear finished jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stablenew.controller.queue_controller import QueueController


class QueueEdits:
    """The queue panel's operations, each run on the store off the Qt thread by the controller."""

    def __init__(self, controller: QueueController) -> None:
        self._controller = controller

    def pause(self) -> None:
        self.set_paused(True)

    def resume(self) -> None:
        self.set_paused(False)

    def set_paused(self, paused: bool) -> None:
        self._controller._do("pause", lambda s: s.set_paused(paused), wake=not paused,
                             want=not paused)

    def cancel_item(self, item_id: int) -> None:
        self._controller._do("cancel-item", lambda s: [item_id] if s.cancel_item(item_id) else [],
                             after=self._controller._interrupt)

    def retry_job(self, job_id: str) -> None:
        self._controller._do("retry-job", lambda s: s.retry_failed(job_id, include_cancelled=True),
                             wake=True, want=True)

    def retry_item(self, item_id: int) -> None:
        self._controller._do("retry-item", lambda s: s.retry(item_id), wake=True, want=True)

    def retry_all_failed(self) -> None:
        self._controller._do("retry-all", lambda s: s.retry_failed(), wake=True, want=True)

    def reorder(self, job_ids: Sequence[str]) -> None:
        ids = list(job_ids)
        self._controller._do("reorder", lambda s: s.reorder(ids))

    def move_job(self, job_id: str, to_index: int) -> None:
        self._controller._do("move", lambda s: s.move_job(job_id, to_index))

    def bump_priority(self, job_id: str, by: int = 1) -> None:
        self._controller._do("bump", lambda s: s.bump_priority(job_id, by))

    def clear_finished(self, include_failed: bool = False) -> None:
        self._controller._do("clear", lambda s: s.clear_finished(include_failed=include_failed))
