"""QueueEstimates on recorded queue timings: time left per job from measured node speeds."""

from __future__ import annotations

import threading

import pytest

from stablenew.cluster.estimates import (
    JobWork,
    QueueEstimates,
    load_speeds,
    save_speeds,
    speeds_file,
)
from stablenew.cluster.jobs import ItemState, Job, JobCounts, JobKind, WorkItem
from stablenew.cluster.queue_events import ItemFinished, ItemProgress, ItemStarted
from stablenew.pipeline.events import ProgressUpdate

UNITS = 5.0  # work units per image of every job here


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def item(n: int, job: str = "a") -> WorkItem:
    return WorkItem(n, job, n, ItemState.running, 1, n)


def job(job_id: str, queued: int, running: int = 0, pin: str | None = None) -> Job:
    return Job(job_id, job_id, JobKind.config, 0, 1.0, 0.0, "/tmp", node_pin=pin,
               counts=JobCounts(total=queued + running, queued=queued, running=running))


def progress(n: int, fraction: float, job_id: str = "a") -> ItemProgress:
    return ItemProgress(item(n, job_id), ProgressUpdate("txt2img", n, None, None, fraction,
                                                        fraction, None))


class Recorder:
    """Replays a node working through one job: `depth` images in flight, as the runner does."""

    def __init__(self, estimates: QueueEstimates, clock: Clock, total: int, *, node="gpu",
                 depth: int = 2, job_id: str = "a") -> None:
        self.e, self.clock, self.total, self.node, self.job_id = estimates, clock, total, node, job_id
        self.next = 0
        self.done = 0
        self.depth = depth
        self.e.set_jobs([job(job_id, total)], {job_id: JobWork(UNITS, "small")})
        self._fill()

    def _fill(self) -> None:
        while self.next < self.total and self.next - self.done < self.depth:
            self.e.on_queue_event(ItemStarted(item(self.next, self.job_id), self.job_id, self.node))
            self.next += 1
        self.e.set_jobs([job(self.job_id, self.total - self.next, self.next - self.done)], {})

    def image(self, seconds: float) -> None:
        """The node renders the oldest image in flight in *seconds* (progress every 10%)."""
        n = self.done
        for k in range(1, 11):
            self.clock.now += seconds / 10
            self.e.on_queue_event(progress(n, k / 10, self.job_id))
        self.e.on_queue_event(ItemFinished(item(n, self.job_id), ItemState.done))
        self.done += 1
        self._fill()


def test_time_left_is_images_left_times_the_measured_time_per_image():
    clock = Clock()
    e = QueueEstimates(clock=clock)
    run = Recorder(e, clock, 10)
    run.image(2.0)
    assert e.job_eta("a") == pytest.approx(9 * 2.0, rel=0.01)
    run.image(2.0)
    assert e.job_eta("a") == pytest.approx(8 * 2.0, rel=0.01)
    # Half way through the next image, half of it is left.
    for k in range(1, 6):
        clock.now += 0.2
        e.on_queue_event(progress(2, k / 10))
    assert e.job_eta("a") == pytest.approx(7 * 2.0 + 1.0, rel=0.02)


def test_idle_time_between_sessions_is_not_counted_as_work():
    """The row once said 44 s for 6 s of work: finishes spaced by idle time were the pace."""
    clock = Clock()
    e = QueueEstimates(clock=clock)
    run = Recorder(e, clock, 2, depth=1)
    run.image(1.0)
    run.image(1.0)
    clock.now += 3600  # the queue sat empty for an hour
    later = Recorder(e, clock, 6, depth=1, job_id="b")
    later.image(1.0)
    assert e.job_eta("b") == pytest.approx(5 * 1.0, rel=0.05)


def test_the_first_image_of_an_unmeasured_node_is_estimated_from_its_own_pace():
    clock = Clock()
    e = QueueEstimates(clock=clock)
    Recorder(e, clock, 4)
    assert e.job_eta("a") is None  # nothing to go on yet: no made-up figure
    for k in range(1, 5):
        clock.now += 0.3
        e.on_queue_event(progress(0, k / 10))
    # 0.3 s per tenth after the first tenth was seen: 3 s an image, 4 images, 0.4 done.
    assert e.job_eta("a") == pytest.approx(0.6 * 3.0 + 3 * 3.0, rel=0.15)


def test_a_speed_loaded_from_the_last_session_is_corrected_by_the_first_image():
    clock = Clock()
    e = QueueEstimates(clock=clock)
    e.speeds.merge({"gpu": {"small": UNITS / 10.0}})  # last session: 10 s an image
    run = Recorder(e, clock, 6)
    assert e.job_eta("a") == pytest.approx(60.0, rel=0.01)
    run.image(1.0)
    run.image(1.0)
    assert e.job_eta("a") == pytest.approx(4 * 1.0, rel=0.3)


def test_a_node_that_slows_down_midway_is_followed_within_a_few_images():
    clock = Clock()
    e = QueueEstimates(clock=clock)
    pattern = [1.1, 0.8, 1.2, 0.9, 1.0, 1.3, 0.7, 1.05]
    run = Recorder(e, clock, 40)
    for seconds in pattern * 2:
        run.image(seconds)
    for seconds in pattern[:3]:
        run.image(2 * seconds)
    # Three images after the change the time left is already at the new pace.
    assert e.job_eta("a") == pytest.approx((40 - run.done) * 2.0, rel=0.12)
    for seconds in pattern[3:]:
        run.image(2 * seconds)
    assert e.job_eta("a") == pytest.approx((40 - run.done) * 2.0, rel=0.12)


def test_waiting_images_go_to_whichever_node_frees_up_first():
    clock = Clock()
    e = QueueEstimates(clock=clock)
    e.speeds.merge({"fast": {"small": UNITS / 1.0}, "slow": {"small": UNITS / 2.0}})
    e.set_jobs([job("a", 30), job("b", 3)], {"a": JobWork(UNITS, "small"),
                                             "b": JobWork(UNITS, "small")})
    for n, node in ((100, "fast"), (101, "slow")):
        e.on_queue_event(ItemStarted(item(n, "z"), "z", node))
        e.on_queue_event(ItemFinished(item(n, "z"), ItemState.cancelled))
    etas = e.etas()
    # Together they make 1.5 images a second: 30 images in 20 s, then job b's 3 in 2 more.
    assert etas["a"] == pytest.approx(20.0, abs=1.0)
    assert etas["b"] == pytest.approx(22.0, abs=1.0)
    # A job pinned to one node (a Run) waits for that node alone.
    e.set_jobs([job("r", 4, pin="slow")], {"r": JobWork(UNITS, "small")})
    assert e.job_eta("r") == pytest.approx(8.0)


@pytest.fixture
def queue_store(tmp_path):
    from stablenew.cluster.queue_store import QueueStore

    with QueueStore(tmp_path / "queue.db") as store:
        yield store


def test_learnt_speeds_are_kept_for_the_next_session_and_the_plan(tmp_path, queue_store):
    from stablenew.pipeline.config import PipelineConfig

    clock = Clock()
    path = speeds_file(tmp_path)
    e = QueueEstimates(clock=clock, path=path)
    queued = queue_store.add_job(PipelineConfig(), name="x", count=3, output_dir=tmp_path / "out")
    e.read_jobs(queue_store)  # learns how heavy the job's images are (and reads the file)
    first = queue_store.reads.items(queued.id)[0]
    e.on_queue_event(ItemStarted(first, "x", "gpu"))
    clock.now += 4.0
    e.on_queue_event(ItemFinished(first, ItemState.done))
    e.save()
    saved = load_speeds(path)
    units = e._work[queued.id].units
    assert saved == {"gpu": {"small": pytest.approx(units / 4.0)}}
    again = QueueEstimates(clock=clock, path=path)
    rows = again.read_jobs(queue_store)
    assert again.speeds.seconds_per_unit("gpu", "small") == pytest.approx(4.0 / units)
    assert rows[0].eta_seconds is None  # no node works the queue yet in this session


def test_seconds_per_image_for_the_randomizer_scales_with_steps_and_size():
    from stablenew.cluster.estimates import work_of
    from stablenew.pipeline.config import PipelineConfig

    clock = Clock()
    e = QueueEstimates(clock=clock)
    small = PipelineConfig().with_changes({"txt2img.width": 512, "txt2img.height": 512,
                                           "txt2img.steps": 20})
    assert e.seconds_per_image(small) is None  # nothing measured: no made-up figure
    e.speeds.observe("gpu", work_of(small).kind, work_of(small).units, 3.0)
    assert e.seconds_per_image(small) == pytest.approx(3.0)
    assert e.seconds_per_image(small.with_changes({"txt2img.steps": 40})) == pytest.approx(6.0)
    e.speeds.observe("spare", work_of(small).kind, work_of(small).units, 6.0)
    assert e.seconds_per_image(small, node="spare") == pytest.approx(6.0)
    assert e.seconds_per_image(small) == pytest.approx(2.0)  # both nodes together


def test_an_image_that_starts_between_two_readings_of_the_queue_is_not_counted_twice():
    clock = Clock()
    e = QueueEstimates(clock=clock)
    e.speeds.merge({"gpu": {"small": UNITS / 1.0}})
    e.set_jobs([job("a", 5)], {"a": JobWork(UNITS, "small")})
    e.on_queue_event(ItemStarted(item(0), "a", "gpu"))  # the rows still say 5 waiting
    assert e.job_eta("a") == pytest.approx(5.0)
    e.on_queue_event(ItemFinished(item(0), ItemState.queued))  # given back: waits again
    assert e.job_eta("a") == pytest.approx(5.0)


def test_savers_at_the_same_moment_keep_each_others_nodes(tmp_path):
    # The queue's estimates and the nodes' dispatcher both save the speeds (one during a run,
    # one at its stop), each reading, merging and writing the file from its own thread.
    path = tmp_path / "node_speeds.json"
    start = threading.Barrier(8)

    def save(n: int) -> None:
        start.wait()
        save_speeds(path, {f"node-{n}": {"sd15": 1.0 + n}})

    threads = [threading.Thread(target=save, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert load_speeds(path) == {f"node-{n}": {"sd15": 1.0 + n} for n in range(8)}
