"""The start pictures nothing refers to any more are removed; every picture a queued job (run or
not yet), a funnel, the saved cards or a preset still names stays, as do pictures taken up a
moment ago and files that are not ours. When a reference cannot be read, nothing goes."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from stablenew.cluster.funnel import FunnelSettings, next_step, start
from stablenew.cluster.funnel_store import FunnelFile, FunnelStore
from stablenew.cluster.queue_store import QueueStore
from stablenew.cluster.start_images import RECENT_S, sweep_start_images
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.references import store_reference

LONG_AGO = time.time() - 30 * 24 * 3600  # longer unused than the sweep spares


def picture(folder: Path, shade: int, *, old: bool = True) -> Path:
    """A picture kept as "Use as init image" keeps it: under its hash, written long ago."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder.parent / f"source-{shade}.png"
    Image.new("RGB", (8, 8), (shade, 40, 90)).save(source)
    path = Path(store_reference(source.read_bytes(), folder).image)
    assert path.name == f"{hashlib.sha256(source.read_bytes()).hexdigest()}.png"
    if old:
        os.utime(path, (LONG_AGO, LONG_AGO))
    return path


def starting_from(path: Path) -> PipelineConfig:
    return PipelineConfig().with_changes({"txt2img.enabled": False, "img2img.enabled": True,
                                          "img2img.init_image": str(path),
                                          "txt2img.prompt": "a fox"})


def test_only_pictures_nothing_refers_to_are_removed(tmp_path):
    data = tmp_path / "data"
    folder = data / "start_images"
    in_cards, unused, queued, done, in_funnel, in_preset = (picture(folder, n * 30)
                                                            for n in range(6))
    just_taken = picture(folder, 200, old=False)
    not_ours = folder / "my notes.png"
    not_ours.write_bytes(b"mine")
    os.utime(not_ours, (LONG_AGO, LONG_AGO))

    cards = data / "last-cards.yaml"
    cards.write_text(starting_from(in_cards).to_yaml(only_changes=True), encoding="utf-8")
    presets = tmp_path / "config" / "presets"
    presets.mkdir(parents=True)
    (presets / "from a picture.yaml").write_text(
        starting_from(in_preset).to_yaml(only_changes=True), encoding="utf-8")
    database = data / "stablenew.db"
    with QueueStore(database) as store:
        made = store.add_job([starting_from(done)], name="made", expand_batches=False)
        claim = store.claim_next("node")
        assert claim is not None and claim.item.job_id == made.id
        assert store.mark_running(claim.item.id, claim.lease)
        assert store.complete(claim.item.id, claim.lease, [str(tmp_path / "out.png")])
        store.add_job(starting_from(queued), name="queued, not yet run")
    funnel, _ = start(PipelineConfig().with_changes({"txt2img.prompt": "a crane"}),
                      FunnelSettings.model_validate({"counts": {"drafts": 1}}))
    funnel = funnel.with_images(0, [str(tmp_path / "draft.png")]).pick(0, [0])
    funnel = funnel.advanced(next_step(funnel, [str(in_funnel)]).run())
    # The funnel that names it is an earlier one: reopening it must still find its pictures.
    later, _ = start(PipelineConfig(), FunnelSettings())
    FunnelStore(data / "funnel.json").save(FunnelFile(funnel=funnel).started(later))

    removed = sweep_start_images(folder, database=database,
                                 references=[data / "funnel.json", cards, presets,
                                             tmp_path / "config" / "profiles"])

    assert sorted(removed) == sorted([unused, done])
    assert not unused.exists() and not done.exists()
    for kept in (in_cards, queued, in_funnel, in_preset, just_taken, not_ours):
        assert kept.exists(), kept.name


def test_a_picture_taken_up_again_counts_as_new(tmp_path):
    folder = tmp_path / "start_images"
    path = picture(folder, 10)
    store_reference(path.read_bytes(), folder)  # "Use as init image" of the same picture again
    assert path.stat().st_mtime > time.time() - RECENT_S
    assert sweep_start_images(folder, database=tmp_path / "none.db", references=[]) == []
    assert path.exists()


def test_nothing_goes_when_a_reference_cannot_be_read(tmp_path):
    folder = tmp_path / "start_images"
    unused = picture(folder, 10)
    not_a_folder = tmp_path / "a file"
    not_a_folder.write_text("")
    with pytest.raises(OSError):  # NotADirectoryError: not "there is no such file"
        sweep_start_images(folder, database=tmp_path / "none.db",
                           references=[not_a_folder / "funnel.json"])
    assert unused.exists()
    database = tmp_path / "broken.db"
    database.write_bytes(b"not a database at all, but long enough to be read as one" * 100)
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.DatabaseError
        sweep_start_images(folder, database=database, references=[])
    assert unused.exists()


def test_no_folder_no_work(tmp_path):
    assert sweep_start_images(tmp_path / "absent", database=tmp_path / "none.db",
                              references=[]) == []


def test_reference_images_nothing_refers_to_go_at_start_up_as_start_pictures_do(tmp_path):
    import asyncio

    from stablenew.controller.start_images import clean_start_images
    from stablenew.pipeline.config import ReferenceSettings
    from stablenew.storage.paths import AppPaths

    paths = AppPaths(tmp_path / "config", tmp_path / "data", tmp_path / "outputs")
    references = paths.data_dir / "references"
    on_card, dropped = picture(references, 10), picture(references, 20)
    just_added = picture(references, 30, old=False)
    start_unused = picture(paths.data_dir / "start_images", 40)
    ref = ReferenceSettings(image=str(on_card), sha256=on_card.stem)  # as the card keeps it
    assert on_card.stat().st_mtime < time.time() - RECENT_S  # kept only for the card's sake
    cards = paths.data_dir / "last-cards.yaml"
    cards.write_text(PipelineConfig().with_changes({"txt2img.prompt": "a fox",
                                                    "txt2img.references": [ref.model_dump()]})
                     .to_yaml(only_changes=True), encoding="utf-8")

    assert asyncio.run(clean_start_images(paths, cards)) == 2
    assert on_card.exists() and just_added.exists()
    assert not dropped.exists() and not start_unused.exists()
