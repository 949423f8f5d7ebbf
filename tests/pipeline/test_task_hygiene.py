"""Every task the runner starts is awaited or has its outcome retrieved, however the run ends.

A cluster worker cancels its run task; a backend job may take a while to unwind after that
(its own clean-up talks to the node) and then fail. asyncio logs "Task exception was never
retrieved" for such a job unless the runner took its outcome.
"""

from __future__ import annotations

import asyncio
import gc

from stablenew.backends import errors as be
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.runner import PipelineRunner
from tests.pipeline.conftest import small_config
from tests.pipeline.memory_backend import MemoryBackend


class SlowToUnwindBackend(MemoryBackend):
    """A cancelled job finishes its clean-up late, then fails (as an HTTP client might)."""

    unwind_s: float = 0.35

    async def txt2img(self, job, on_progress=None):
        try:
            return await super().txt2img(job, on_progress)
        except asyncio.CancelledError:
            await asyncio.sleep(self.unwind_s)
            raise be.ServerUnreachable("The connection was dropped.", detail="clean-up") from None


def _collect_loop_errors(loop: asyncio.AbstractEventLoop) -> list[dict]:
    seen: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    return seen


async def _settle(seconds: float) -> None:
    await asyncio.sleep(seconds)
    gc.collect()  # "never retrieved" is reported when the finished task is collected
    await asyncio.sleep(0)


async def test_cancelling_the_run_task_leaves_no_unretrieved_job(tmp_path):
    loop = asyncio.get_running_loop()
    seen = _collect_loop_errors(loop)
    backend = SlowToUnwindBackend(step_s=0.05)
    run = asyncio.ensure_future(PipelineRunner(tmp_path, thumbnails=False).run(
        small_config(**{"txt2img.steps": 40, "txt2img.batch_count": 3}), backend, CancelToken()))
    while not backend.calls:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    run.cancel()
    try:
        await asyncio.wait_for(run, 5)
    except asyncio.CancelledError:
        pass
    await _settle(SlowToUnwindBackend.unwind_s + 0.3)
    assert [c.get("message") for c in seen] == []


async def test_a_second_cancel_during_clean_up_still_stops_every_job(tmp_path):
    loop = asyncio.get_running_loop()
    seen = _collect_loop_errors(loop)
    backend = SlowToUnwindBackend(step_s=0.05, interrupt_delay_s=0.3)
    run = asyncio.ensure_future(PipelineRunner(tmp_path, thumbnails=False).run(
        small_config(**{"txt2img.steps": 40, "txt2img.batch_count": 3}), backend, CancelToken()))
    while not backend.calls:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    run.cancel()
    await asyncio.sleep(0.05)  # now inside the clean-up, waiting on the slow interrupt
    run.cancel()
    try:
        await asyncio.wait_for(run, 5)
    except asyncio.CancelledError:
        pass
    await _settle(0.3 + SlowToUnwindBackend.unwind_s + 0.3)
    assert [c.get("message") for c in seen] == []
    # The job was stopped by the second cancel at once, not left running until the slow
    # interrupt reached the node.
    assert backend._current is None
    assert not backend.calls[0].interrupted and not backend.calls[0].finished
