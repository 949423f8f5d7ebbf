"""QueueActivity: which queued image runs, its place in its job and the job's time left."""

from __future__ import annotations

from stablenew.cluster.jobs import ItemState, Job, JobCounts, JobKind, WorkItem
from stablenew.cluster.queue_events import ItemFinished, ItemProgress, ItemStarted
from stablenew.controller.queue_activity import QueueActivity
from stablenew.pipeline.events import ProgressUpdate, StageStarted


def _item(index: int) -> WorkItem:
    return WorkItem(id=10 + index, job_id="j1", index=index, state=ItemState.running, attempts=0,
                    seed=index, node="den")


def test_the_first_image_started_is_the_one_shown_with_its_jobs_time_left(qtbot):
    job = Job(id="j1", name="a fox", kind=JobKind.config, priority=0, position=1, created_at=0,
              output_dir="/tmp", counts=JobCounts(total=4, done=1, running=2, queued=1))
    activity = QueueActivity(lambda job_id: job if job_id == "j1" else None)
    first, second = _item(1), _item(2)
    with qtbot.waitSignal(activity.changed, timeout=2000) as shown:
        activity.on_event(ItemStarted(first, "a fox", "den"))
        activity.on_event(ItemStarted(second, "a fox", "den"))  # waits behind it at the node
        activity.on_event(ItemProgress(first, StageStarted("txt2img", 1, 1, 0)))
        activity.on_event(ItemProgress(first, ProgressUpdate("txt2img", 0, 4, 8, 0.5, 0.5, 2.0)))
    work = shown.args[0]
    assert (work.job_name, work.image, work.total) == ("a fox", 2, 4)
    # 2 s left for this image, and 2 more images at the pace this one goes (about 4 s each).
    assert 5.5 < work.eta_seconds < 6.5, work.eta_seconds
    assert work.details == ("image 2 of 4", "a few seconds left")
    assert work.progress.stage_text == "Text to image — stage 1 of 1 · image 2 of 4"
    assert work.progress.step_text == "step 4 of 8"

    with qtbot.waitSignal(activity.changed, timeout=2000) as shown:
        activity.on_event(ItemFinished(first, ItemState.done))
    assert shown.args[0].image == 3, "the next image in line is shown"
    with qtbot.waitSignal(activity.changed, timeout=2000) as shown:
        activity.on_event(ItemFinished(second, ItemState.cancelled))
    assert shown.args[0] is None and activity.current is None
