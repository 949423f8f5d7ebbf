"""The window's time estimates: the command bar and the queue row of a Run read one estimate,
from the node's measured speed, and stay close to the time the Run really takes."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt

STEADY = {"step_ms": 30.0}
IMAGES = 6


def _earlier_session_finished_an_hour_apart() -> None:
    """Three images of an earlier session, finished an hour apart (the queue sat idle): the
    old row estimate took their spacing for the node's pace."""
    from stablenew.cluster.queue_store import QueueStore
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.storage.paths import AppPaths

    paths = AppPaths.default()
    with QueueStore(paths.database_file) as store:
        store.add_job(PipelineConfig(), name="yesterday", count=3,
                      output_dir=paths.data_dir / "yesterday")
        then = time.time() - 4 * 3600
        for k in range(3):
            claim = store.claim_next("gpu", start=True, now=then + k * 3600)
            assert claim is not None
            assert store.complete(claim.item.id, claim.lease, [], now=then + k * 3600 + 2)


@pytest.mark.parametrize("fake_sdwebui_thread", [STEADY], indirect=True)
def test_bar_and_queue_row_show_the_measured_time_left(qtbot, window_for, fake_sdwebui_thread):
    _earlier_session_finished_an_hour_apart()
    window = window_for(fake_sdwebui_thread.url)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=10000)
    session = window.session
    pipeline, queue = session.pipeline, session.queue
    for path, value in {"txt2img.prompt": "a lighthouse", "txt2img.steps": 8,
                        "txt2img.width": 64, "txt2img.height": 64,
                        "txt2img.batch_count": IMAGES}.items():
        window.pipeline_panel.editor(path).set_value(value)
    bar: list[tuple[float, float | None, float | None, int]] = []
    rows: list[tuple[float, float | None, int]] = []

    def on_progress(p) -> None:
        if p.state == "running" and pipeline.job_id is not None:
            bar.append((time.monotonic(), p.eta_seconds,
                        queue.estimates.job_eta(pipeline.job_id), p.images_saved))

    def on_rows() -> None:
        for job in queue.model.jobs():
            if job.id == pipeline.job_id:
                rows.append((time.monotonic(), job.eta_seconds, job.counts.done))

    pipeline.progress_changed.connect(on_progress)
    queue.jobs_changed.connect(on_rows)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pipeline.progress.images_saved == IMAGES, timeout=20000)
    end = time.monotonic()
    qtbot.waitUntil(lambda: pipeline.state == "idle", timeout=10000)
    assert pipeline.error is None, pipeline.error

    # The bar shows the queue's estimate of the Run's job: the same figure as its row.
    measured = [(t, shown, own, saved) for t, shown, own, saved in bar if saved >= 1 and own]
    assert measured, bar
    for _, shown, own, _ in measured:
        assert shown == pytest.approx(own, abs=0.05)
    # Both are close to the time the Run really still took once an image has been measured
    # (not hours, from the idle spacing of yesterday's images).
    per_image = (end - bar[0][0]) / IMAGES

    def close(estimate: float | None, t: float) -> bool:
        actual = end - t
        return estimate is not None and abs(estimate - actual) <= 0.5 * actual + 2 * per_image

    assert all(close(shown, t) for t, shown, _, saved in measured if saved < IMAGES - 1), \
        [(round(end - t, 2), shown) for t, shown, _, _ in measured]
    later_rows = [(t, eta) for t, eta, done in rows if 1 <= done < IMAGES - 1]
    assert later_rows, rows
    assert all(close(eta, t) for t, eta in later_rows), \
        [(round(end - t, 2), eta) for t, eta in later_rows]


@pytest.mark.parametrize("fake_sdwebui_thread", [STEADY], indirect=True)
def test_the_variants_time_estimate_follows_the_cards_not_the_last_run(qtbot, window_for,
                                                                        fake_sdwebui_thread):
    """A few quick 64×64 images, then the cards set to 40 steps at 512×512: the randomizer's
    estimate per image grows with the work (it took the last Run's time per image before)."""
    window = window_for(fake_sdwebui_thread.url)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=10000)
    session = window.session
    panel = window.pipeline_panel
    for path, value in {"txt2img.prompt": "a lighthouse", "txt2img.steps": 4,
                        "txt2img.batch_count": 3, "txt2img.width": 64,
                        "txt2img.height": 64}.items():
        panel.editor(path).set_value(value)
    with qtbot.waitSignal(session.pipeline.run_finished, timeout=30000) as finished:
        qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    event = finished.args[0]
    quick = event.seconds / event.images_saved
    for path, value in {"txt2img.steps": 40, "txt2img.width": 512, "txt2img.height": 512}.items():
        panel.editor(path).set_value(value)
    session._measured_speed(session.randomizer, event)  # as at the end of the next Run
    heavy = session.randomizer.pace.seconds_per_image
    assert heavy is not None and heavy > 5 * quick, (quick, heavy)
