"""GalleryIndex: incremental scans, gone and moved files, ratings from the learning store,
bad input listed, never a user's file touched."""

from __future__ import annotations

import os
import struct
import threading
import zlib

import pytest

from stablenew.gallery.index import GalleryIndex
from stablenew.gallery.metadata import MAX_TEXT
from stablenew.gallery.query import GalleryQuery, count, search
from stablenew.gallery.sidecar import Marks
from stablenew.gallery.worker import IndexWorker
from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore
from tests.gallery.factory import a1111_text, png
from tests.learning.helpers import image_record


@pytest.fixture
def index(tmp_path):
    with GalleryIndex(tmp_path / "gallery.db", learning_db=tmp_path / "stablenew.db") as ix:
        yield ix


def _snapshot(folder):
    return {p: (p.stat().st_size, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def test_second_scan_reads_only_new_and_changed_files(tmp_path, index):
    out = tmp_path / "out"
    for i in range(5):
        png(out / "run1" / f"{i}.png", {"parameters": a1111_text(f"cat number{i}", seed=i)})
    first = index.scan(out)
    assert (first.seen, first.read, first.unchanged) == (5, 5, 0)
    png(out / "run1" / "new.png", {"parameters": a1111_text("a dog")})
    changed = out / "run1" / "0.png"
    png(changed, {"parameters": a1111_text("a bird", seed=99)})
    os.utime(changed, ns=(1, 1_000_000_000))  # another mtime, as an edit would leave
    second = index.scan(out)
    assert (second.seen, second.read, second.unchanged) == (6, 2, 4)
    assert index.count() == 6
    assert [r.seed for r in search(index, GalleryQuery(text="bird"))] == [99]
    assert count(index, GalleryQuery(text="cat")) == 4


def test_deleted_files_leave_the_index(tmp_path, index):
    out = tmp_path / "out"
    a = png(out / "a.png", {"parameters": a1111_text("one")})
    png(out / "b.png", {"parameters": a1111_text("two")})
    index.scan(out)
    a.unlink()
    result = index.scan(out)
    assert result.removed == 1
    assert [r.name for r in search(index, GalleryQuery())] == ["b.png"]


def test_rating_follows_a_file_moved_outside_the_app(tmp_path, index):
    out = tmp_path / "out"
    record = image_record(out, 1, run_id="run-a")
    with LearningStore(tmp_path / "stablenew.db") as store:
        store.add_record(LearningRecord.from_image_record(record))
        store.rate(record.path, 5)
        store.tag(record.path, "nailed it")
    index.scan(out)
    assert [r.rating for r in search(index, GalleryQuery())] == [5]
    moved = out / "keepers" / "best.png"
    moved.parent.mkdir()
    os.replace(record.path, moved)  # the user moves it in a file manager
    result = index.scan(out)
    assert result.moved == 1
    rows = search(index, GalleryQuery(min_rating=4))
    assert [(r.path, r.rating) for r in rows] == [(moved, 5)]
    assert count(index, GalleryQuery(tag="nailed it")) == 1


def test_rating_follows_a_move_into_another_indexed_folder(tmp_path, index):
    out, other = tmp_path / "out", tmp_path / "other"
    record = image_record(out, 2)
    with LearningStore(tmp_path / "stablenew.db") as store:
        store.add_record(LearningRecord.from_image_record(record))
        store.rate(record.path, 4)
    index.scan(out)
    other.mkdir()
    target = other / "kept.png"
    os.replace(record.path, target)
    index.scan(other)  # the new place is seen before the old one is found empty
    index.scan(out)
    assert [(r.path, r.rating) for r in search(index, GalleryQuery())] == [(target, 4)]


def test_the_learning_stores_ratings_and_tags_win_at_every_scan(tmp_path, index):
    out = tmp_path / "out"
    record = image_record(out, 3)
    with LearningStore(tmp_path / "stablenew.db") as store:
        store.add_record(LearningRecord.from_image_record(record))
        index.scan(out)
        assert search(index, GalleryQuery())[0].rating is None
        store.rate(record.path, 2)  # rated elsewhere after indexing
        store.tag(record.path, "nailed it")
        # the gallery's own change reaches the index's copy at once ...
        index.set_marks(str(record.path), Marks(5, ("keeper",)))
        assert search(index, GalleryQuery(min_rating=5))[0].tags == ("keeper",)
        # ... and a scan (or a sync) brings the copy back to what the learning store holds
        index.scan(out)
    row, = search(index, GalleryQuery(tag="nailed it"))
    assert (row.rating, row.tags) == (2, ("nailed it",))
    assert search(index, GalleryQuery(min_rating=3)) == []


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_bad_input_is_listed_and_never_touched(tmp_path, index):
    out = tmp_path / "out"
    png(out / "good.png", {"parameters": a1111_text("fine")})
    whole = png(tmp_path / "plain.png").read_bytes()  # no text chunk of its own
    (out / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (out / "text.png").write_text("this is not an image")
    huge = whole[:33] + _chunk(b"tEXt", b"parameters\0" + b"x" * 3_000_000) + whole[33:]
    (out / "huge.png").write_bytes(huge)
    latin = whole[:33] + _chunk(b"tEXt", "parameters\0caf\xe9 \xff\xfe noir".encode("latin-1")) \
        + whole[33:]
    (out / "latin.png").write_bytes(latin)
    (out / "loop").mkdir()
    os.symlink(out, out / "loop" / "back")
    (out / "broken.png").symlink_to(out / "missing.png")
    locked = out / "locked"
    locked.mkdir()
    png(locked / "x.png")
    locked.chmod(0)
    before = _snapshot(out / "loop") | {p: p.read_bytes() for p in out.glob("*.png") if p.exists()}
    try:
        result = index.scan(out)
    finally:
        locked.chmod(0o755)
    reasons = {os.path.relpath(p.path, out): p.reason for p in result.problems}
    assert "truncated.png" in reasons and "text.png" in reasons and "broken.png" in reasons
    assert "link loop" in reasons[os.path.join("loop", "back")]
    if os.geteuid() != 0:  # root reads any folder
        assert "locked" in reasons
    rows = {r.name: r for r in search(index, GalleryQuery())}
    assert set(rows) - {"x.png"} == {"good.png", "latin.png", "huge.png"}  # x.png: root reads it
    assert rows["latin.png"].prompt == "caf\xe9 \xff\xfe noir"  # tEXt is Latin-1 by the PNG spec
    assert rows["huge.png"].prompt == "x" * MAX_TEXT  # kept, capped, not parsed for minutes
    assert {p.path for p in index.problems()} == {p.path for p in result.problems}
    after = _snapshot(out / "loop") | {p: p.read_bytes() for p in out.glob("*.png") if p.exists()}
    assert after == before


def test_worker_scans_off_the_calling_thread_with_progress(tmp_path):
    out = tmp_path / "out"
    for i in range(30):
        png(out / f"{i:02d}.png", {"parameters": a1111_text(f"p{i}")})
    threads, reports, finished = set(), [], threading.Event()

    def progress(folder, state):
        threads.add(threading.get_ident())
        reports.append((folder, state.seen, state.done))

    worker = IndexWorker(tmp_path / "gallery.db", [out], progress=progress,
                         finished=lambda results: finished.set())
    worker.start()
    assert finished.wait(20)
    assert worker.error is None and worker.results[0].read == 30
    assert threading.get_ident() not in threads
    assert reports[-1] == (str(out), 30, True)
    with GalleryIndex(tmp_path / "gallery.db") as ix:
        assert ix.count() == 30


def test_cancelled_scan_forgets_nothing(tmp_path, index):
    out = tmp_path / "out"
    for i in range(3):
        png(out / f"{i}.png")
    index.scan(out)
    cancel = threading.Event()
    cancel.set()
    result = index.scan(out, cancel=cancel)
    assert result.cancelled and result.removed == 0 and index.count() == 3


def test_collections_hold_images_and_follow_moves(tmp_path, index):
    out = tmp_path / "out"
    a = png(out / "a.png", {"parameters": a1111_text("alpha")}, color=(1, 1, 1))
    png(out / "b.png", {"parameters": a1111_text("beta")}, color=(2, 2, 2))
    index.scan(out)
    assert index.add_to_collection("Favourites", [a]) == 1
    assert index.collections() == [("Favourites", 1)]
    assert [r.name for r in search(index, GalleryQuery(collection="Favourites"))] == ["a.png"]
    moved = out / "sub" / "a2.png"
    moved.parent.mkdir()
    os.replace(a, moved)
    index.scan(out)
    assert [r.path for r in search(index, GalleryQuery(collection="Favourites"))] == [moved]
    index.remove_from_collection("Favourites", [moved])
    assert index.collections() == [("Favourites", 0)]
    index.delete_collection("Favourites")
    assert index.collections() == [] and index.count() == 2


def test_index_file_adds_one_new_output(tmp_path, index):
    path = png(tmp_path / "out" / "fresh.png", {"parameters": a1111_text("fresh one")})
    assert index.index_file(path) is None
    assert [r.path for r in search(index, GalleryQuery(text="fresh"))] == [path]
    (tmp_path / "bad.png").write_text("no")
    assert index.index_file(tmp_path / "bad.png") is not None
