"""The node as one queue item sees it: request slots handed out in claim order, a stall guard
on each generation call, and the last typed error the node raised.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from stablenew.backends.errors import BackendError
from stablenew.cluster.stall import NodeStalled, StallGuard, StallLimits

if TYPE_CHECKING:
    from stablenew.backends.protocol import Backend
    from stablenew.backends.types import (
        ADetailerJob,
        BackendKind,
        Capabilities,
        Img2ImgJob,
        JobResult,
        Progress,
        ProgressCallback,
        Txt2ImgJob,
        UpscaleJob,
    )

T = TypeVar("T")
J = TypeVar("J")

#: How often a generation call's progress is judged for a stall.
STALL_CHECK_S = 0.5


class Turnstile:
    """The node's request slots, handed out in claim order.

    Lanes reach the server at slightly different moments (their previous image is still
    being written), so a plain semaphore would let a later claim overtake an earlier one:
    the queue's order (priority, drag and drop) must be the order the node works in. Each
    claim takes a ticket; a slot goes to the oldest ticket still waiting. Later stages of an
    item that already had its turn go first, so a started image finishes before new ones.
    Only the waiter that may proceed is woken, so many lanes cost nothing while they wait.
    """

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._line: deque[int] = deque()  # tickets waiting for their first slot, oldest first
        self._first: dict[int, asyncio.Future[None]] = {}  # ticket -> its waiter, first turn
        self._later: deque[asyncio.Future[None]] = deque()  # waiters for a later stage
        self._next = 0

    def ticket(self) -> int:
        self._next += 1
        self._line.append(self._next)
        return self._next

    async def acquire(self, ticket: int) -> None:
        first_turn = bool(self._line) and ticket in self._line
        while True:
            if self._free > 0 and (not first_turn or self._line[0] == ticket):
                self._free -= 1
                if first_turn:
                    self._line.popleft()
                    self._wake()  # the next ticket may take a remaining slot
                return
            future = asyncio.get_running_loop().create_future()
            if first_turn:
                self._first[ticket] = future
            else:
                self._later.append(future)
            try:
                await future
            except BaseException:
                if future.done() and not future.cancelled():
                    self._wake()  # woken, then cancelled before taking the slot: pass it on
                raise
            finally:
                if first_turn:
                    self._first.pop(ticket, None)
                elif future in self._later:
                    self._later.remove(future)

    def release(self) -> None:
        self._free += 1
        self._wake()

    def forfeit(self, ticket: int) -> None:
        """The item ended without (another) request: it gives up its place in line."""
        if ticket in self._line:
            head = self._line[0] == ticket
            self._line.remove(ticket)
            if head:
                self._wake()

    def _wake(self) -> None:
        if self._free <= 0:
            return
        while self._later:
            future = self._later.popleft()
            if not future.done():
                future.set_result(None)
                return
        if self._line:
            head = self._first.get(self._line[0])
            if head is not None and not head.done():
                head.set_result(None)


class ItemBackend:
    """One queue item's Backend: the node's, holding one of its request slots while a
    generation call is out, and remembering the last typed error the node raised.

    The pipeline runner turns backend errors into plain RunErrors; the queue needs the type
    (transient or not, node down or not) to decide between a retry and an immediate failure.
    """

    def __init__(self, backend: Backend, slots: Turnstile | None = None,
                 ticket: int = 0, on_send: Callable[[], None] | None = None,
                 stall_limits: StallLimits | None = None) -> None:
        self._backend = backend
        self._slots = slots
        self._ticket = ticket
        self._on_send = on_send
        self._stall_limits = stall_limits
        self.error: BackendError | None = None
        # Read as the runner reads any backend's: a test double may lack them.
        self.url: str = getattr(backend, "url", "")
        self.name: str = getattr(backend, "name", "")

    @property
    def kind(self) -> BackendKind:
        return self._backend.kind

    @property
    def capabilities(self) -> Capabilities | None:
        """The node's last probe, when its client keeps one (the runner's pre-check reads it)."""
        caps: Capabilities | None = getattr(self._backend, "capabilities", None)
        return caps

    async def probe(self) -> Capabilities:
        return await self._noted(self._backend.probe())

    async def ping(self) -> None:
        await self._noted(self._backend.ping())

    async def txt2img(self, job: Txt2ImgJob, on_progress: ProgressCallback | None = None
                      ) -> JobResult:
        return await self._generate(self._backend.txt2img, job, on_progress, guarded=True)

    async def img2img(self, job: Img2ImgJob, on_progress: ProgressCallback | None = None
                      ) -> JobResult:
        return await self._generate(self._backend.img2img, job, on_progress, guarded=True)

    async def adetailer(self, job: ADetailerJob, on_progress: ProgressCallback | None = None
                        ) -> JobResult:
        return await self._generate(self._backend.adetailer, job, on_progress, guarded=True)

    async def upscale(self, job: UpscaleJob, on_progress: ProgressCallback | None = None
                      ) -> JobResult:
        # Extras report no progress on A1111: only the request's deadline bounds them.
        return await self._generate(self._backend.upscale, job, on_progress, guarded=False)

    async def interrupt(self, task_id: str) -> None:
        await self._backend.interrupt(task_id)

    async def aclose(self) -> None:
        """Nothing to close: the node's client outlives each item."""

    async def _noted(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except BackendError as exc:
            self.error = exc
            raise

    async def _generate(self, call: Callable[[J, ProgressCallback | None], Awaitable[JobResult]],
                        job: J, on_progress: ProgressCallback | None, *, guarded: bool
                        ) -> JobResult:
        slots = self._slots
        if slots is None:
            return await self._noted(call(job, on_progress))
        try:
            await slots.acquire(self._ticket)
            if self._on_send is not None:
                self._on_send()
            try:
                if guarded and self._stall_limits is not None:
                    return await self._watched(call, job, on_progress, self._stall_limits)
                return await call(job, on_progress)
            finally:
                slots.release()
        except BackendError as exc:
            self.error = exc
            raise

    async def _watched(self, call: Callable[[J, ProgressCallback | None], Awaitable[JobResult]],
                       job: J, given: ProgressCallback | None, limits: StallLimits) -> JobResult:
        """Run one generation call under a StallGuard fed by its own progress reports; a stall
        cancels the call (the client then interrupts or removes it on the node) and raises
        NodeStalled, so the item is given to another node."""
        # A1111/Forge/SD.Next clients poll progress at a steady rhythm; ComfyUI's events come
        # only when something happens, so silence there says nothing.
        polls = str(getattr(self._backend, "kind", "")) != "comfyui"
        guard = StallGuard(limits, polls=polls)

        def heard(progress: Progress) -> None:
            guard.heard(progress)
            if given is not None:
                given(progress)

        # As asyncio.timeout does: the call runs in this task, and a watcher cancels the task
        # when the guard says stalled, so the call's own cancellation handling runs unchanged.
        current = asyncio.current_task()
        assert current is not None
        stalled: list[str] = []

        async def watch() -> None:
            while True:
                await asyncio.sleep(STALL_CHECK_S)
                reason = guard.stalled()
                if reason is not None:
                    stalled.append(reason)
                    current.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            return await call(job, heard)
        except asyncio.CancelledError:
            if stalled:
                stalled.append("")  # our cancel is taken back below, exactly once
                if current.uncancel() == 0:
                    node = self.name or "The node"
                    raise NodeStalled(f"{node} {stalled[0]}; the image goes to another node.",
                                      detail=f"stall guard: {stalled[0]}", node=node) from None
            raise
        finally:
            watcher.cancel()
            if len(stalled) == 1:  # the call ended some other way after our cancel
                current.uncancel()
