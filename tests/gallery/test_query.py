"""Search, filters, sort and pages over the index, with FTS5 and with the LIKE fallback."""

from __future__ import annotations

import json
import os

import pytest

from stablenew.gallery.index import GalleryIndex
from stablenew.gallery.query import GalleryQuery, SortKey, count, search
from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.infotext_write import stablenew_payload
from tests.gallery.factory import a1111_text, png, with_exif_comment
from tests.learning.helpers import image_record


@pytest.fixture(params=[True, False], ids=["fts5", "like"])
def index(request, tmp_path):
    out = tmp_path / "out"
    specs = [  # name, prompt, model, lora extra, size
        ("run1/a_castle.png", "a castle on a hill <lora:moss:0.5>", "juggernautXL", (8, 8)),
        ("run1/b_cyber.png", "cyberpunk street at night", "dreamshaper", (16, 16)),
        ("run2/c_cyber.png", "cyberpunk cat, neon", "juggernautXL", (24, 24)),
        ("run2/d_forest.png", "misty forest", "dreamshaper", (32, 32)),
    ]
    for i, (name, prompt, model, size) in enumerate(specs):
        path = png(out / name, {"parameters": a1111_text(prompt, model=model, seed=i)}, size=size)
        os.utime(path, (1_700_000_000 + i * 100, 1_700_000_000 + i * 100))
    jpg = with_exif_comment(out / "run2" / "e_photo.jpg", "JPEG", a1111_text("photo of a lake"))
    os.utime(jpg, (1_700_000_500, 1_700_000_500))
    record = image_record(out, 7, run_id="run3",
                          config=PipelineConfig().with_changes({"txt2img.prompt": "a rated owl"}))
    ours = stablenew_payload(config=record.config, seed=record.seed, stages=record.stages,
                             run_id=record.run_id, image_index=7, tags=record.tags,
                             node=record.node, node_kind=record.node_kind)
    png(record.path, {"stablenew": json.dumps(ours)})  # as the output writer saves it
    os.utime(record.path, (1_700_000_600, 1_700_000_600))
    with LearningStore(tmp_path / "stablenew.db") as store:
        store.add_record(LearningRecord.from_image_record(record))
        store.rate(record.path, 4)
        store.tag(record.path, "nailed it")
    with GalleryIndex(tmp_path / "gallery.db", learning_db=tmp_path / "stablenew.db",
                      use_fts=request.param) as ix:
        assert ix.fts is request.param
        ix.scan(out)
        yield ix


def _names(rows):
    return [r.name for r in rows]


def test_text_searches_prompts_and_file_names(index):
    assert _names(search(index, GalleryQuery(text="cyberpunk"))) == ["c_cyber.png", "b_cyber.png"]
    assert _names(search(index, GalleryQuery(text="cyberpunk cat"))) == ["c_cyber.png"]
    assert _names(search(index, GalleryQuery(text="castle"))) == ["a_castle.png"]
    assert _names(search(index, GalleryQuery(text="forest"))) == ["d_forest.png"]
    assert search(index, GalleryQuery(text="zebra")) == []
    assert count(index, GalleryQuery(text='"; DROP TABLE x')) == 0  # no syntax reaches SQL


def test_filters(index):
    assert _names(search(index, GalleryQuery(model="dreamshaper"))) == ["d_forest.png", "b_cyber.png"]
    assert _names(search(index, GalleryQuery(lora="moss"))) == ["a_castle.png"]
    assert _names(search(index, GalleryQuery(run="run1", descending=False))) == [
        "a_castle.png", "b_cyber.png"]
    assert _names(search(index, GalleryQuery(media="jpeg"))) == ["e_photo.jpg"]
    assert _names(search(index, GalleryQuery(pack="Portraits"))) == ["00007.png"]
    assert _names(search(index, GalleryQuery(min_rating=4))) == ["00007.png"]
    assert search(index, GalleryQuery(min_rating=5)) == []
    assert _names(search(index, GalleryQuery(tag="nailed it"))) == ["00007.png"]
    assert _names(search(index, GalleryQuery(since=1_700_000_100, until=1_700_000_300))) == [
        "c_cyber.png", "b_cyber.png"]
    assert count(index, GalleryQuery(model="juggernautXL", text="cyberpunk")) == 1


def test_sorts_and_pages(index):
    everything = _names(search(index, GalleryQuery()))
    assert everything[0] == "00007.png" and len(everything) == 6
    pages = [_names(search(index, GalleryQuery(), offset=o, limit=2)) for o in (0, 2, 4, 6)]
    assert sum(pages, []) == everything and pages[-1] == []
    by_name = _names(search(index, GalleryQuery(sort=SortKey.name, descending=False)))
    assert by_name == sorted(everything)
    by_size = search(index, GalleryQuery(sort=SortKey.size))
    assert [r.size for r in by_size] == sorted((r.size for r in by_size), reverse=True)
    by_rating = search(index, GalleryQuery(sort=SortKey.rating))
    assert by_rating[0].rating == 4 and all(r.rating is None for r in by_rating[1:])
    assert search(index, GalleryQuery(sort=SortKey.rating, descending=False))[0].rating == 4
