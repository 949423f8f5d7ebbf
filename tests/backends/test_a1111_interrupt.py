"""Interrupt and skip act on our task only, never on someone else's job on a shared node."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.errors import JobInterrupted
from stablenew.backends.types import Sampling, Txt2ImgJob
from tests.fakes.sdwebui import FakeSDWebUI


def job(task_id: str, steps: int = 60) -> Txt2ImgJob:
    return Txt2ImgJob(Sampling(prompt="a fox", steps=steps, width=64, height=64, seed=3), task_id=task_id)


async def wait_for(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("internal_routes", [True, False])
async def test_interrupt_stops_our_running_task(internal_routes):
    async with FakeSDWebUI(step_ms=10, internal_routes=internal_routes) as fake, \
            A1111Backend(fake.url, poll_interval=0.02, timeout=10) as backend:
        run = asyncio.create_task(backend.txt2img(job("mine", steps=1000)))
        await wait_for(lambda: fake.current_task == "mine" and fake.images_generated == 0)
        await backend.interrupt("mine")
        with pytest.raises(JobInterrupted) as caught:
            await asyncio.wait_for(run, 8)
    assert fake.interrupts == ["mine"]
    assert "stopped" in caught.value.message
    # It stopped early: far fewer than 1000 steps of 10 ms ran.
    assert fake.busy_seconds < 5


@pytest.mark.parametrize("internal_routes", [True, False])
async def test_interrupt_waits_while_someone_elses_job_runs(internal_routes):
    """Also without task ids (--nowebui): their API txt2img looks like ours on /progress, but it
    was running before ours was sent, so it is never taken for ours."""
    async with FakeSDWebUI(step_ms=10, internal_routes=internal_routes) as fake, \
            A1111Backend(fake.url, poll_interval=0.01, timeout=10) as backend, \
            httpx.AsyncClient(base_url=fake.url, timeout=10) as other:
        theirs = asyncio.create_task(other.post("/sdapi/v1/txt2img", json={
            "prompt": "their picture", "steps": 80, "width": 64, "height": 64, "force_task_id": "theirs"}))
        await wait_for(lambda: fake.current_task == "theirs")
        ours = asyncio.create_task(backend.txt2img(job("mine")))
        await wait_for(lambda: "mine" in fake._pending)
        await backend.interrupt("mine")  # ours is queued behind theirs
        assert fake.interrupts == []  # their job is not touched
        reply = await asyncio.wait_for(theirs, 5)
        with pytest.raises(JobInterrupted):
            await asyncio.wait_for(ours, 5)
    assert reply.status_code == 200
    assert "interrupted" not in reply.text
    assert fake.interrupts == ["mine"]  # sent only once ours was the running one


async def test_interrupt_of_a_task_we_do_not_run_sends_nothing():
    async with FakeSDWebUI(step_ms=5) as fake, A1111Backend(fake.url) as backend, \
            httpx.AsyncClient(base_url=fake.url, timeout=10) as other:
        theirs = asyncio.create_task(other.post("/sdapi/v1/txt2img", json={
            "prompt": "x", "steps": 10, "width": 64, "height": 64, "force_task_id": "theirs"}))
        await wait_for(lambda: fake.current_task == "theirs")
        await backend.interrupt("theirs")
        await backend.interrupt("never-started")
        await asyncio.wait_for(theirs, 5)
    assert fake.interrupts == []
    assert fake.requests_to("/sdapi/v1/interrupt") == []


async def test_skip_our_task(fake_sdwebui):
    fake_sdwebui.step_s = 0.01
    async with A1111Backend(fake_sdwebui.url, poll_interval=0.02) as backend:
        run = asyncio.create_task(backend.txt2img(job("mine", steps=1000)))
        await wait_for(lambda: fake_sdwebui.current_task == "mine")
        await backend.skip("mine")
        result = await asyncio.wait_for(run, 8)
    assert fake_sdwebui.skips == ["mine"]
    assert len(result.images) == 1


async def test_cancelling_the_call_leaves_the_client_usable():
    async with FakeSDWebUI(step_ms=10) as fake, A1111Backend(fake.url, poll_interval=0.01) as backend:
        run = asyncio.create_task(backend.txt2img(job("mine")))
        await wait_for(lambda: fake.current_task == "mine")
        await backend.interrupt("mine")
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        fake.step_s = 0.0
        result = await backend.txt2img(job("next", steps=3))
    assert len(result.images) == 1


async def test_an_abandoned_queued_task_is_stopped_when_it_starts():
    """The WebUI runs a queued request even after we hang up; the client stops it on start."""
    async with FakeSDWebUI(step_ms=10) as fake, \
            A1111Backend(fake.url, poll_interval=0.01, timeout=10) as backend, \
            httpx.AsyncClient(base_url=fake.url, timeout=10) as other:
        theirs = asyncio.create_task(other.post("/sdapi/v1/txt2img", json={
            "prompt": "x", "steps": 60, "width": 64, "height": 64, "force_task_id": "theirs"}))
        await wait_for(lambda: fake.current_task == "theirs")
        ours = asyncio.create_task(backend.txt2img(job("mine", steps=1000)))
        await wait_for(lambda: "mine" in fake._pending)
        await backend.interrupt("mine")
        ours.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ours
        assert (await asyncio.wait_for(theirs, 5)).status_code == 200
        await wait_for(lambda: fake.interrupts == ["mine"])
        await wait_for(lambda: fake.current_task is None)
    assert fake.busy_intervals[-1][1] - fake.busy_intervals[-1][0] < 5  # not 1000 steps of 10 ms


async def test_a_cancelled_running_task_is_stopped_on_the_server():
    async with FakeSDWebUI(step_ms=10) as fake, A1111Backend(fake.url, poll_interval=0.01) as backend:
        run = asyncio.create_task(backend.txt2img(job("mine", steps=1000)))
        await wait_for(lambda: fake.current_task == "mine")
        run.cancel()  # no interrupt() first: the result is lost anyway, so the GPU must not go on
        with pytest.raises(asyncio.CancelledError):
            await run
        await wait_for(lambda: fake.interrupts == ["mine"])
        await wait_for(lambda: fake.current_task is None)
    assert fake.busy_seconds < 5


async def test_a_timed_out_task_is_stopped_on_the_server():
    from stablenew.backends.errors import ServerTimeout

    async with FakeSDWebUI(step_ms=10) as fake, \
            A1111Backend(fake.url, poll_interval=0.01, timeout=0.3, kind="a1111") as backend:
        with pytest.raises(ServerTimeout):
            await backend.txt2img(job("slow", steps=1000))
        await wait_for(lambda: fake.interrupts == ["slow"])


async def test_with_task_ids_no_request_is_spent_on_the_fallback():
    """Noting the running job costs a request per image; servers with task ids never pay it."""
    async with FakeSDWebUI(step_ms=0) as fake, A1111Backend(fake.url, poll_interval=0.5) as backend:
        for n in range(5):
            await backend.txt2img(job(f"mine-{n}", steps=2))
    assert fake.requests_to("/sdapi/v1/progress") == []
    assert len(fake.requests_to("/internal/progress")) == 1  # asked once, remembered
