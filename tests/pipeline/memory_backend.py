"""An in-process Backend for the runner's own tests: real PNGs, real timing, injected faults.

It implements the Backend protocol directly (no HTTP), so runner behaviour (ordering,
cancellation, fault handling, ETA) is tested without depending on a client; the same tests
also run against the HTTP fake servers through `conftest.node` when those are available.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field

from PIL import Image

from stablenew.backends import errors as be
from stablenew.backends import types as bt


def png(width: int, height: int, seed: int, *, text: dict[str, str] | None = None) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    color = (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG", pnginfo=info,
                                                 compress_level=1)
    return out.getvalue()


@dataclass
class Call:
    method: str
    job: object
    interrupted: bool = False
    finished: bool = False  # ran all its steps
    sent_at: float = 0.0  # when the request reached the node
    ended_at: float = 0.0  # when the node was done with it


@dataclass
class MemoryBackend:
    """A node in memory: `step_s` per sampling step, progress per step, faults on request."""

    step_s: float = 0.002
    url: str = "memory://node"
    name: str = "memory"
    calls: list[Call] = field(default_factory=list)
    interrupts: list[str] = field(default_factory=list)
    #: call number (1-based, over all generation calls) -> error to raise instead
    faults: dict[int, be.BackendError] = field(default_factory=dict)
    #: method name -> error raised by the next call of that method (then forgotten)
    fail_next: dict[str, be.BackendError] = field(default_factory=dict)
    #: method name -> seconds per step for that method (default step_s)
    method_step_s: dict[str, float] = field(default_factory=dict)
    vanished: bool = False
    with_infotext: bool = True
    interrupt_delay_s: float = 0.0  # a node slow to take the interrupt request
    _current: str | None = None
    _stop: asyncio.Event | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _stop_when_started: set[str] = field(default_factory=set)

    @property
    def kind(self) -> bt.BackendKind:
        return bt.BackendKind.a1111

    async def probe(self) -> bt.Capabilities:
        return bt.Capabilities(kind=self.kind, version="memory")

    async def ping(self) -> None:
        if self.vanished:
            raise be.ServerUnreachable("The server does not answer.", detail=self.url)

    async def txt2img(self, job: bt.Txt2ImgJob, on_progress=None) -> bt.JobResult:
        s = job.sampling
        steps = s.steps + ((job.hires.steps or s.steps) if job.hires else 0)
        await self._work("txt2img", job, steps, on_progress)
        width, height = s.width, s.height
        if job.hires:
            width, height = int(width * job.hires.scale), int(height * job.hires.scale)
        images = []
        for i in range(job.batch_size):
            seed = s.seed + i
            text = self._infotext(s, seed, width, height)
            images.append(bt.GeneratedImage(png(width, height, seed, text={"parameters": text}),
                                            seed, text if self.with_infotext else ""))
        return bt.JobResult(tuple(images), {"all_seeds": [s.seed + i for i in range(job.batch_size)]})

    async def img2img(self, job: bt.Img2ImgJob, on_progress=None) -> bt.JobResult:
        s = job.sampling
        await self._work("img2img", job, max(1, int(s.steps * job.denoise)), on_progress)
        text = self._infotext(s, s.seed, s.width, s.height, denoise=job.denoise)
        return bt.JobResult((bt.GeneratedImage(png(s.width, s.height, s.seed + 7), s.seed,
                                               text if self.with_infotext else ""),))

    async def adetailer(self, job: bt.ADetailerJob, on_progress=None) -> bt.JobResult:
        s = job.sampling
        await self._work("adetailer", job, len(job.passes) * 4, on_progress)
        width, height = _size(job.image)
        return bt.JobResult((bt.GeneratedImage(png(width, height, s.seed + 11), s.seed),))

    async def upscale(self, job: bt.UpscaleJob, on_progress=None) -> bt.JobResult:
        await self._work("upscale", job, 3, on_progress)
        width, height = _size(job.image)
        if job.target_width and job.target_height:
            width, height = job.target_width, job.target_height
        else:
            width, height = round(width * job.scale), round(height * job.scale)
        return bt.JobResult((bt.GeneratedImage(png(width, height, 5), 0),))

    async def interrupt(self, task_id: str) -> None:
        if self.vanished:
            raise be.ServerUnreachable("The server does not answer.", detail=self.url)
        if self.interrupt_delay_s:
            await asyncio.sleep(self.interrupt_delay_s)
        self.interrupts.append(task_id)
        if self._current == task_id and self._stop is not None:
            self._stop.set()
        else:
            self._stop_when_started.add(task_id)  # queued: stop it the moment it starts

    async def aclose(self) -> None:
        pass

    # --- internals ----------------------------------------------------------------------

    async def _work(self, method: str, job, steps: int, on_progress) -> None:
        if self.vanished:
            raise be.ServerUnreachable("The server does not answer.", detail=self.url)
        call = Call(method, job, sent_at=time.monotonic())
        self.calls.append(call)
        fault = self.faults.get(len(self.calls)) or self.fail_next.pop(method, None)
        if fault is not None:
            raise fault
        # One job at a time, first come first served, like A1111's queue lock.
        async with self._lock:
            if job.task_id in self._stop_when_started:
                call.interrupted = True
                return
            self._current = job.task_id
            self._stop = asyncio.Event()
            try:
                for step in range(1, steps + 1):
                    if self._stop.is_set():
                        call.interrupted = True
                        return  # like A1111: an interrupted job still answers with what it has
                    await asyncio.sleep(self.method_step_s.get(method, self.step_s))
                    if self.vanished:
                        raise be.ServerUnreachable("The connection was dropped.", detail=self.url)
                    if on_progress is not None:
                        on_progress(bt.Progress(step / steps, step, steps))
                call.finished = True
            finally:
                self._current = None
                call.ended_at = time.monotonic()

    @staticmethod
    def _infotext(s: bt.Sampling, seed: int, width: int, height: int,
                  denoise: float | None = None) -> str:
        neg = f"\nNegative prompt: {s.negative_prompt}" if s.negative_prompt else ""
        strength = f"Denoising strength: {denoise}, " if denoise is not None else ""
        return (f"{s.prompt}{neg}\nSteps: {s.steps}, Sampler: {s.sampler}, Schedule type: "
                f"{s.scheduler}, CFG scale: {s.cfg_scale}, Seed: {seed}, Size: {width}x{height}, "
                f"{strength}Version: v1.10.1")


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


