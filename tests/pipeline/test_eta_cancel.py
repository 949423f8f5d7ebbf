"""ETA estimation and the cancel token, without a server."""

from __future__ import annotations

import asyncio
import threading
import time

from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.eta import EtaEstimator


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_eta_none_until_measured_then_falls_on_a_steady_run():
    clock = FakeClock()
    eta = EtaEstimator([("txt2img", 20), ("upscale", 1)] * 5, clock=clock)
    assert eta.eta_seconds() is None
    seen = []
    for _ in range(5):
        eta.start("txt2img")
        for step in range(1, 21):
            clock.now += 0.1
            eta.progress(step / 20)
            value = eta.eta_seconds()
            if value is not None:
                seen.append(value)
        eta.finish()
        eta.start("upscale")
        clock.now += 0.5
        eta.finish()
        seen.append(eta.eta_seconds())
    assert seen[-1] == 0.0
    # After the first image every estimate is close to the truth and never rises.
    assert all(b <= a + 1e-9 for a, b in zip(seen[20:], seen[21:], strict=False))
    assert eta.overall_fraction == 1.0


def test_eta_estimate_matches_real_remaining_time():
    clock = FakeClock()
    eta = EtaEstimator([("txt2img", 10)] * 4, clock=clock)
    for _ in range(2):
        eta.start("txt2img")
        clock.now += 1.0
        eta.progress(1.0)
        eta.finish()
    assert abs(eta.eta_seconds() - 2.0) < 1e-6
    assert eta.overall_fraction == 0.5


def test_skipped_pieces_count_as_done():
    eta = EtaEstimator([("txt2img", 10), ("upscale", 1), ("txt2img", 10), ("upscale", 1)])
    eta.start("txt2img")
    eta.abandon()
    eta.skip("upscale")
    assert abs(eta.overall_fraction - 0.5) < 1e-9


async def test_cancel_from_another_thread_wakes_the_loop_quickly():
    token = CancelToken()
    threading.Timer(0.05, token.cancel).start()
    started = time.monotonic()
    await asyncio.wait_for(token.wait(), 2)
    assert token.cancelled and time.monotonic() - started < 1.0
    await asyncio.wait_for(token.wait(), 0.1)  # already cancelled: returns at once
    token.cancel()  # twice is harmless


async def test_cancel_wakes_every_waiter_and_forgets_abandoned_ones():
    token = CancelToken()
    abandoned = asyncio.ensure_future(token.wait())
    await asyncio.sleep(0)
    abandoned.cancel()
    waiters = [asyncio.ensure_future(token.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert len(token._waiters) == 3
    token.cancel()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
