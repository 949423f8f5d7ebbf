"""NodeMonitor against fake servers over real HTTP: probe on add, timeouts, recovery, removal."""

from __future__ import annotations

import asyncio
import contextlib
import gc

from stablenew.backends.errors import BackendError
from stablenew.cluster.health import NodeMonitor, NodeState
from stablenew.cluster.nodes import NodeConfig
from stablenew.cluster.work import GB
from tests.fakes.sdwebui import FakeSDWebUI


async def test_a_node_that_stalls_is_unhealthy_then_readmitted_when_it_answers():
    async with FakeSDWebUI(vram_total=12 * GB) as fake:
        changes: list = []
        monitor = NodeMonitor(timeout=0.5, on_change=lambda old, new: changes.append(new.state))
        try:
            health = await monitor.add(NodeConfig(name="den", url=fake.url, kind="a1111"))
            assert health.state is NodeState.healthy
            assert health.capabilities is not None and health.capabilities.vram_total == 12 * GB
            fake.inject("stall", seconds=5.0, times=1)
            health = await asyncio.wait_for(monitor.check("den"), 5)
            assert health.state is NodeState.unhealthy
            assert "did not answer within 0.5 s" in health.message and health.failures == 1
            health = await asyncio.wait_for(monitor.check("den"), 5)
            assert health.state is NodeState.healthy and health.failures == 0
            assert changes == [NodeState.healthy, NodeState.unhealthy, NodeState.healthy]
        finally:
            await monitor.aclose()


async def test_the_periodic_check_finds_a_dead_node_and_a_disabled_one_is_left_alone():
    async with FakeSDWebUI() as alive:
        dead = FakeSDWebUI()
        await dead.start()
        nodes = [NodeConfig(name="alive", url=alive.url, kind="a1111"),
                 NodeConfig(name="dead", url=dead.url, kind="a1111"),
                 NodeConfig(name="off", url="http://127.0.0.1:9", enabled=False)]
        monitor = NodeMonitor(nodes, interval=0.05, timeout=2.0)
        loop = asyncio.ensure_future(monitor.run())
        try:
            for _ in range(200):
                if monitor.health("dead").state is NodeState.healthy:
                    break
                await asyncio.sleep(0.01)
            await dead.stop()
            for _ in range(300):
                if monitor.health("dead").state is NodeState.unhealthy:
                    break
                await asyncio.sleep(0.01)
            assert monitor.health("dead").state is NodeState.unhealthy
            assert monitor.health("alive").state is NodeState.healthy
            assert monitor.health("off").state is NodeState.disabled
            await monitor.remove("dead")
            assert "dead" not in monitor.names()
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await monitor.aclose()


@contextlib.contextmanager
def cancel_when_a_request_fails(victim: list[asyncio.Task]):
    """Cancel victim[0] just after the first task of the loop ends with a BackendError: with a
    probe's requests in a TaskGroup, that is while the group is still aborting the others."""
    loop = asyncio.get_running_loop()
    fired: list[bool] = []
    previous = loop.get_task_factory()

    def on_done(task: asyncio.Task) -> None:
        if (not fired and victim and not task.cancelled()
                and isinstance(task.exception(), BackendError)):
            fired.append(True)
            loop.call_soon(victim[0].cancel)

    def factory(loop, coro, **kwargs):
        task = asyncio.Task(coro, loop=loop, **kwargs)
        task.add_done_callback(on_done)
        return task

    loop.set_task_factory(factory)
    try:
        yield fired
    finally:
        loop.set_task_factory(previous)


@contextlib.contextmanager
def loop_errors():
    """What the loop reports to its exception handler ("Task exception was never retrieved")."""
    loop = asyncio.get_running_loop()
    seen: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        yield seen
    finally:
        loop.set_exception_handler(previous)


async def cancel_a_failing_probe(monitor: NodeMonitor) -> BaseException | None:
    """Check the node with a full probe and cancel that as the probe's first request fails;
    what the check ended with (its frames and tasks end here, for the garbage collector)."""
    victim: list[asyncio.Task] = []
    with cancel_when_a_request_fails(victim) as fired:
        victim.append(asyncio.ensure_future(monitor.check("den", probe=True)))
        outcome = (await asyncio.gather(victim[0], return_exceptions=True))[0]
    assert fired, "the probe did not fail as the fake was told to"
    return outcome if isinstance(outcome, BaseException) else None


async def test_a_check_cancelled_while_its_probe_fails_is_cancelled_and_loses_no_error():
    # Python 3.11's TaskGroup drops a cancellation that arrives while it aborts after one
    # request failed, and ends with that request's error instead. The monitor must still stop
    # (a lost cancel kept a watcher checking forever) and read that error (or asyncio reports
    # "Task exception was never retrieved").
    with loop_errors() as errors:
        async with FakeSDWebUI() as fake:
            monitor = NodeMonitor(timeout=5.0, probe_timeout=30.0)
            try:
                assert (await monitor.add(NodeConfig(name="den", url=fake.url, kind="a1111"))).usable
                fake.inject("drop", path="/sdapi/v1/options")
                fake.inject("stall", path="/sdapi/v1/sd-models", seconds=30.0)
                ended = type(await cancel_a_failing_probe(monitor))
            finally:
                await monitor.aclose()
        gc.collect()  # an exception nobody read is reported as its task is collected
    assert ended is asyncio.CancelledError
    assert [e.get("message") for e in errors] == []


async def test_a_ready_node_is_only_pinged_until_its_capabilities_are_old_or_it_comes_back():
    async with FakeSDWebUI() as fake:
        monitor = NodeMonitor(timeout=0.5, refresh_after=3600.0)
        listings = lambda: len(fake.requests_to("/sdapi/v1/options"))  # noqa: E731
        try:
            first = await monitor.add(NodeConfig(name="den", url=fake.url, kind="a1111"))
            assert first.usable and first.probed_at is not None and listings() == 1
            pinged = len(fake.requests_to("/sdapi/v1/progress"))
            again = await monitor.check("den")
            assert again.usable and listings() == 1  # a ping, not a probe
            assert len(fake.requests_to("/sdapi/v1/progress")) == pinged + 1
            assert again.capabilities is first.capabilities and again.probed_at == first.probed_at
            monitor.refresh_after = 0.0  # the capabilities are now "old"
            assert (await monitor.check("den")).usable and listings() == 2
            monitor.refresh_after = None
            fake.inject("stall", seconds=5.0, times=1)
            assert (await monitor.check("den")).state is NodeState.unhealthy
            assert (await monitor.check("den")).usable and listings() == 3  # back: probed
        finally:
            await monitor.aclose()


async def test_probe_has_an_a1111_node_read_its_folders_again():
    """A LoRA and a model copied into a node's folders after its server started are listed
    only once the server rescans them: Probe asks it to, a routine check does not."""
    async with FakeSDWebUI(step_ms=0) as fake:
        monitor = NodeMonitor(timeout=2.0)
        try:
            await monitor.add(NodeConfig(name="den", url=fake.url, kind="a1111"))
            fake.add_files(checkpoints=("XL/juggernautXL_v9.safetensors",), loras=("neon_glow",))
            health = await monitor.check("den", probe=True)
            assert "neon_glow" not in health.capabilities.loras
            assert fake.requests_to("/sdapi/v1/refresh-loras") == []
            health = await monitor.recheck("den", rescan=True)
            assert health.state is NodeState.healthy
            assert "neon_glow" in health.capabilities.loras
            assert "XL/juggernautXL_v9.safetensors" in health.capabilities.checkpoints
        finally:
            await monitor.aclose()


async def test_probe_of_a_node_that_cannot_rescan_still_reads_its_lists():
    async with FakeSDWebUI(step_ms=0) as fake:
        monitor = NodeMonitor(timeout=2.0)
        try:
            await monitor.add(NodeConfig(name="den", url=fake.url, kind="a1111"))
            fake.inject("500", path="/sdapi/v1/refresh-checkpoints", times=3)
            health = await monitor.recheck("den", rescan=True)
            assert health.state is NodeState.healthy and health.capabilities is not None
        finally:
            await monitor.aclose()
