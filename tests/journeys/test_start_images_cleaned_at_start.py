"""Journey: pictures copied into the data folder's start_images pile up no more. An earlier
session left four there: one the saved cards start from, one a paused queue's job (queued, not
yet run) starts from, one nothing names, and one copied a moment ago. The window opens, and in
the background only the unnamed old one goes; the window never stalls for it, and a restart
removes nothing more."""

from __future__ import annotations

import os
import time
from pathlib import Path

from PIL import Image

from stablenew.cluster.queue_store import QueueStore
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.references import store_reference
from stablenew.storage.paths import AppPaths
from tests.journeys.conftest import item_states, save_server

LONG_AGO = time.time() - 30 * 24 * 3600  # longer unused than the sweep spares


def kept_picture(folder: Path, shade: int, *, old: bool = True) -> Path:
    source = folder.parent / f"picked-{shade}.png"
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (shade, 120, 60)).save(source)
    path = Path(store_reference(source.read_bytes(), folder).image)
    if old:
        os.utime(path, (LONG_AGO, LONG_AGO))
    return path


def starting_from(path: Path, prompt: str) -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.enabled": False, "img2img.enabled": True, "img2img.init_image": str(path),
        "txt2img.prompt": prompt, "txt2img.steps": 4, "img2img.steps": 4})


def test_only_pictures_nothing_needs_leave_start_images(qtbot, journey, fake_process):
    fake = fake_process(step_ms=2)
    save_server(fake.url)
    paths = AppPaths.default()
    folder = paths.data_dir / "start_images"
    on_cards, in_queue, unused = (kept_picture(folder, n) for n in (10, 90, 170))
    just_copied = kept_picture(folder, 250, old=False)
    (paths.data_dir / "last-cards.yaml").write_text(
        starting_from(on_cards, "a fox by a river").to_yaml(only_changes=True), encoding="utf-8")
    with QueueStore(paths.database_file) as store:
        store.add_job(starting_from(in_queue, "an owl at night"), name="an owl at night")
        store.set_paused(True)  # left paused: it waits, not yet run

    window = journey.open()
    qtbot.waitUntil(lambda: not unused.exists(), timeout=15000)
    assert on_cards.exists() and in_queue.exists() and just_copied.exists()
    assert window.pipeline_panel.values()["img2img.init_image"] == str(on_cards)
    assert item_states() == {"queued": 1}, "the job still waits"

    window = journey.restart()
    qtbot.waitUntil(lambda: window.session.funnel is not None
                    and not window.session.tasks.busy, timeout=15000)
    assert sorted(folder.iterdir()) == sorted([on_cards, in_queue, just_copied])
