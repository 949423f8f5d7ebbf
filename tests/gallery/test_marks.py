"""Ratings and tags in the index: an indexed column (sort and filter walk it), read back from the
images' sidecars when the index is rebuilt, following a moved file by its content hash; and the
file actions never delete anything outright."""

from __future__ import annotations

import json
import zipfile

from stablenew.gallery.files import export_zip, transfer
from stablenew.gallery.index import GalleryIndex
from stablenew.gallery.query import GalleryQuery, SortKey, search
from stablenew.gallery.sidecar import Marks, read_marks, sidecar_path, write_marks
from tests.gallery.factory import a1111_text, png


def _images(out, n=4):
    return [str(png(out / "run" / f"{i}.png", {"parameters": a1111_text(f"p{i}", seed=i)},
                    color=(i * 30, 1, 1))) for i in range(n)]


def test_rating_sort_and_filter_walk_an_index(tmp_path):
    with GalleryIndex(tmp_path / "g.db", use_fts=False) as index:
        paths = _images(tmp_path / "out")
        index.scan(tmp_path / "out")
        for path, stars in zip(paths, (3, None, 5, 1), strict=True):
            index.set_marks(path, Marks(stars))
        best = search(index, GalleryQuery(sort=SortKey.rating))
        assert [r.rating for r in best] == [5, 3, 1, None], "unrated last"
        worst = search(index, GalleryQuery(sort=SortKey.rating, descending=False))
        assert [r.rating for r in worst] == [1, 3, 5, None], "unrated last either way"
        assert sorted(r.rating for r in search(index, GalleryQuery(min_rating=3))) == [3, 5]
        for descending in (True, False):
            plan = " ".join(str(r[3]) for r in index.execute(
                "EXPLAIN QUERY PLAN SELECT g.id FROM gallery_images g ORDER BY "
                + ("g.rating DESC, g.id DESC" if descending else
                   "g.rating IS NULL, g.rating ASC, g.id ASC") + " LIMIT 10"))
            assert "USE TEMP B-TREE" not in plan and "INDEX gallery_images_rat" in plan, plan


def test_a_rebuilt_index_reads_the_marks_back_from_the_sidecars(tmp_path):
    paths = _images(tmp_path / "out")
    write_marks(paths[1], Marks(4, ("keeper", "moody")))
    write_marks(paths[2], Marks(None, ("odd",)))
    (tmp_path / "bad.png.stablenew.json").write_text("{not json")
    assert read_marks(tmp_path / "bad.png") == Marks()
    with GalleryIndex(tmp_path / "g.db") as index:
        index.scan(tmp_path / "out")
        rows = {r.path.name: r for r in search(index, GalleryQuery())}
        assert (rows["1.png"].rating, rows["1.png"].tags) == (4, ("keeper", "moody"))
        assert [r.path.name for r in search(index, GalleryQuery(tag="odd"))] == ["2.png"]
    write_marks(paths[1], Marks())  # cleared: no sidecar left behind
    assert not sidecar_path(paths[1]).exists()


def test_marks_follow_a_file_moved_outside_the_app(tmp_path):
    paths = _images(tmp_path / "out")
    with GalleryIndex(tmp_path / "g.db") as index:
        index.scan(tmp_path / "out")
        index.set_marks(paths[0], Marks(5, ("keeper",)))  # no sidecar: the index alone has it
        target = tmp_path / "out" / "elsewhere" / "renamed.png"
        target.parent.mkdir()
        (tmp_path / "out" / "run" / "0.png").rename(target)
        index.scan(tmp_path / "out")
        row, = search(index, GalleryQuery(min_rating=5))
        assert (row.path, row.tags) == (target, ("keeper",))


def test_move_keeps_the_sidecar_and_never_overwrites(tmp_path):
    paths = _images(tmp_path / "out", 2)
    write_marks(paths[0], Marks(2))
    dest = tmp_path / "dest"
    dest.mkdir()
    png(dest / "0.png")  # a file of the same name is already there
    outcome = transfer([paths[0]], dest, copy=False)
    moved = outcome.done[paths[0]]
    assert moved.endswith("0 (2).png") and read_marks(moved) == Marks(2)
    assert (dest / "0.png").exists() and not sidecar_path(paths[0]).exists()
    bad = transfer([str(tmp_path / "missing.png")], dest, copy=True)
    assert list(bad.failed) == [str(tmp_path / "missing.png")]


def test_a_move_takes_its_thumbnail_along_and_replaces_no_stray_sidecar(tmp_path):
    from pathlib import Path

    from PIL import Image

    from stablenew.gallery.files import _put
    from stablenew.pipeline.outputs import thumbnail_path

    (path,) = _images(tmp_path / "out", 1)
    write_marks(path, Marks(3, ("keeper",)))
    thumb = thumbnail_path(Path(path))
    thumb.parent.mkdir()
    Image.new("RGB", (8, 8)).save(thumb)
    dest = tmp_path / "dest"
    dest.mkdir()
    png(dest / "0.png")
    stray = dest / "0 (2).png.stablenew.json"  # left by an image deleted outside the app
    stray.write_text('{"format": 1, "rating": 1, "tags": []}', encoding="utf-8")
    moved = Path(transfer([path], dest, copy=False).done[path])
    assert moved.name == "0 (3).png", "neither the image nor its sidecar's name was free"
    assert read_marks(moved) == Marks(3, ("keeper",)) and read_marks(dest / "0 (2).png") == Marks(1)
    assert thumbnail_path(moved).exists() and not thumb.exists()
    copied = Path(transfer([str(moved)], dest, copy=True).done[str(moved)])
    assert copied.name == "0 (3) (2).png" and moved.exists() and read_marks(copied).rating == 3
    # A name taken at the last moment (another program) is refused, never replaced.
    for copy in (False, True):
        try:
            _put(moved, dest / "0.png", copy=copy)
        except FileExistsError:
            pass
        else:
            raise AssertionError("an existing file was replaced")
    assert moved.read_bytes() != (dest / "0.png").read_bytes()


def test_export_zip_names_clashes_apart_and_leaves_no_half_file(tmp_path):
    a = png(tmp_path / "a" / "x.png")
    b = png(tmp_path / "b" / "x.png")
    dest = tmp_path / "out.zip"
    outcome = export_zip([(str(a), {"seed": 1}), (str(b), {"seed": 2}),
                          (str(tmp_path / "gone.png"), {})], dest)
    with zipfile.ZipFile(dest) as z:
        assert sorted(z.namelist()) == ["metadata.json", "x (2).png", "x.png"]
        assert [m["seed"] for m in json.loads(z.read("metadata.json"))] == [1, 2]
    assert list(outcome.failed) == [str(tmp_path / "gone.png")]
    assert not (tmp_path / "out.zip.part").exists()


def test_a_new_output_gets_the_rating_its_learning_record_already_has(tmp_path):
    from stablenew.learning.records import LearningRecord
    from stablenew.learning.store import LearningStore
    from tests.learning.helpers import image_record

    record = image_record(tmp_path / "out", 1)
    with LearningStore(tmp_path / "stablenew.db") as store:
        store.add_record(LearningRecord.from_image_record(record))
        store.rate(record.path, 3)
        store.tag(record.path, "moody")
    with GalleryIndex(tmp_path / "g.db", learning_db=tmp_path / "stablenew.db") as index:
        assert index.index_file(record.path) is None
        row, = search(index, GalleryQuery())
        assert (row.rating, row.tags) == (3, ("moody",))
