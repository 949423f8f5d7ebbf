"""Stopping our own prompts on a ComfyUI node: dequeue a pending one, interrupt only ours when
it runs (never a bare /interrupt on a shared node), and confirm it is gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from stablenew.backends.comfyui_socket import _Watch
from stablenew.backends.errors import BackendError

if TYPE_CHECKING:
    from stablenew.backends.http import HttpReply

log = logging.getLogger("stablenew.backends.comfyui")


class ComfyUICancel:
    """The cancelling half of `ComfyUIBackend` (a mixin: the backend owns this state)."""

    name: str
    _jobs_api: bool | None
    _task_prompts: dict[str, str]
    _cancelled_tasks: set[str]
    _watches: dict[str, _Watch]
    _background: set[asyncio.Task]

    if TYPE_CHECKING:
        async def _request(self, method: str, path: str, *, json: Any = None, **kwargs: Any) -> HttpReply: ...
        async def _get_json(self, path: str, **kwargs: Any) -> Any: ...
        def _check_status(self, resp: HttpReply, path: str) -> None: ...

    def _in_background(self, coro) -> None:
        async def guarded() -> None:
            try:
                await coro
            except BackendError as exc:
                log.info("background cancel on %s failed: %s", self.name, exc.detail or exc.message)

        task = asyncio.get_running_loop().create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def interrupt(self, task_id: str) -> None:
        """Stop only our job for `task_id`: dequeue it if pending, interrupt it if running."""
        self._cancelled_tasks.add(task_id)
        pid = self._task_prompts.get(task_id)
        if pid is None:
            return
        watch = self._watches.get(pid)
        if watch is not None:
            watch.cancel_requested = True
        await self._cancel_prompt(pid)
        if watch is not None:
            watch.events.put_nowait(("_resync", {}))

    async def _cancel_prompt(self, pid: str) -> None:
        if self._jobs_api is not False:
            resp = await self._request("POST", f"/api/jobs/{pid}/cancel")
            if resp.status in (404, 405):
                self._jobs_api = False  # an older ComfyUI
            elif resp.status < 400:
                self._jobs_api = True
                await self._verify_gone(pid)
                return
            else:
                self._check_status(resp, "/api/jobs/cancel")
        queue = await self._get_json("/queue")
        running = {item[1] for item in queue.get("queue_running", [])}
        pending = {item[1] for item in queue.get("queue_pending", [])}
        if pid in pending:
            resp = await self._request("POST", "/queue", json={"delete": [pid]})
            self._check_status(resp, "/queue")
        if pid in running:
            # Never a bare /interrupt: on a shared node that would stop someone else's job.
            resp = await self._request("POST", "/interrupt", json={"prompt_id": pid})
            self._check_status(resp, "/interrupt")
        await self._verify_gone(pid)

    async def _verify_gone(self, pid: str, wait_s: float = 3.0) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            queue = await self._get_json("/queue")
            pending = {item[1] for item in queue.get("queue_pending", [])}
            running = {item[1] for item in queue.get("queue_running", [])}
            if pid not in pending and pid not in running:
                return
            if pid in pending:
                await self._request("POST", "/queue", json={"delete": [pid]})
            if time.monotonic() > deadline:
                log.warning("prompt %s still on node %s after cancelling; a node step may not check "
                            "for interrupts", pid, self.name)
                return
            await asyncio.sleep(0.02)
