"""NodeMonitor against fake servers over real HTTP: probe on add, timeouts, recovery, removal."""

from __future__ import annotations

import asyncio

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
