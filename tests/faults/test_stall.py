"""A node that stops making progress on a request loses the image to another node in seconds:
frozen (SIGSTOP) or stuck in one txt2img while its other routes still answer."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from stablenew.backends.types import Progress
from stablenew.cluster.jobs import ItemState
from stablenew.cluster.nodes import NodeConfig
from stablenew.cluster.queue_events import ItemFinished, ItemProgress, ItemStarted
from stablenew.cluster.queue_store import QueueStore
from stablenew.cluster.stall import StallGuard, StallLimits
from tests.cluster.test_dispatcher import cfg, dispatcher, fakes, node
from tests.fakes.sdwebui import FakeSDWebUI, serving_in_process


@pytest.fixture
def store(tmp_path):
    s = QueueStore(tmp_path / "q.db")
    yield s
    s.close()


class Recorder:
    """Queue events with the time they came."""

    def __init__(self) -> None:
        self.events: list[tuple[float, object]] = []

    def __call__(self, event) -> None:
        self.events.append((time.monotonic(), event))

    def given_back(self, node_message: str = "") -> list[tuple[float, object]]:
        return [(t, e) for t, e in self.events if isinstance(e, ItemFinished)
                and e.state is ItemState.queued and e.fatal_for_node and node_message in e.message]

    def progressed_on(self, name: str, step: int = 1) -> bool:
        started = {e.item.id for _, e in self.events if isinstance(e, ItemStarted) and e.node == name}
        return any(isinstance(e, ItemProgress) and e.item.id in started
                   and (getattr(e.event, "step", None) or 0) >= step for _, e in self.events)


async def test_a_node_stuck_in_one_txt2img_loses_the_image_to_another_node(store, tmp_path):
    async with fakes({"step_ms": 20}, {"step_ms": 20}) as (stuck, good):
        stuck.hang_at_step = 3
        store.add_job(cfg(4, steps=8), output_dir=tmp_path / "out")
        seen = Recorder()
        d = dispatcher(store, [node("stuck", stuck), node("good", good, tier=2)], on_event=seen,
                       health_interval=10.0, health_timeout=5.0)
        started = time.monotonic()
        summary = await asyncio.wait_for(d.run(until_empty=True), 60)
    assert summary.done == 4 and summary.failed == 0
    (when, event), *_ = seen.given_back("made no progress")
    print(f"RESULT stuck_txt2img_held_s={when - started:.1f}")
    assert when - started < 20, f"the stuck image was held {when - started:.1f} s"
    assert stuck.interrupts, "the stuck request was interrupted on the node, not left running"


async def test_a_frozen_node_is_noticed_from_its_progress_before_the_health_check(store, tmp_path):
    with serving_in_process(step_ms=50) as frozen_url:
        async with FakeSDWebUI(step_ms=5) as good:
            pid = _pid_listening(frozen_url)
            store.add_job(cfg(4, steps=40), output_dir=tmp_path / "out")
            seen = Recorder()
            d = dispatcher(store, [NodeConfig(name="frozen", url=frozen_url, kind="a1111"),
                                   node("good", good, tier=2)], on_event=seen,
                           health_interval=10.0, health_timeout=5.0)
            run = asyncio.ensure_future(d.run(until_empty=True))
            try:
                while not seen.progressed_on("frozen", step=16):  # mid-image, the rhythm known
                    assert not run.done(), run
                    await asyncio.sleep(0.02)
                os.kill(pid, signal.SIGSTOP)
                frozen_at = time.monotonic()
                while not seen.given_back():
                    assert not run.done()
                    await asyncio.sleep(0.02)
                noticed = seen.given_back()[0][0] - frozen_at
                os.kill(pid, signal.SIGCONT)
                summary = await asyncio.wait_for(run, 60)
            finally:
                os.kill(pid, signal.SIGCONT)
                if not run.done():
                    d.stop()
                    await asyncio.wait((run,), timeout=10)
    print(f"RESULT frozen_node_detect_s={noticed:.1f}")
    assert "stopped answering progress checks" in seen.given_back()[0][1].message
    assert noticed < 8.0, f"a frozen node took {noticed:.1f} s to notice"
    assert summary.done == 4


def _pid_listening(url: str) -> int:
    """The pid of the process listening on *url*'s port (the fake in its own process)."""
    port = int(url.rsplit(":", 1)[1])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":
                    inodes.add(parts[9])
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    raise AssertionError(f"nobody listens on {url}")


def test_the_limits_follow_the_work():
    now = [0.0]
    guard = StallGuard(StallLimits(), polls=True, clock=lambda: now[0])
    for step in range(1, 6):  # a slow CPU node: 8 s per step, polled every 0.5 s
        for _ in range(16):
            now[0] += 0.5
            guard.heard(Progress(fraction=step / 20, step=step, steps=20))
    now[0] += 30.0 - 0.5  # 30 s on one step, still polled: slow, not stalled
    guard.heard(Progress(fraction=5 / 20, step=5, steps=20))
    assert guard.stalled() is None
    now[0] += 60.0  # nobody answers the polls any more
    assert "stopped answering" in (guard.stalled() or "")
    queued = StallGuard(StallLimits(), polls=True, clock=lambda: now[0])
    for _ in range(400):  # queued behind other work for 200 s: waiting, not stalled
        now[0] += 0.5
        queued.heard(Progress(fraction=0.0))
    assert queued.stalled() is None
