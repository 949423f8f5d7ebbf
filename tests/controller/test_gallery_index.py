"""The gallery controller listing outputs from the gallery index (IndexedOutputs)."""

from __future__ import annotations

import os
from types import SimpleNamespace

from stablenew.controller.gallery_controller import GalleryController, StoredRatings
from stablenew.controller.gallery_index import IndexedOutputs
from stablenew.gallery.index import GalleryIndex
from tests.gallery.factory import a1111_text, png, with_exif_comment


async def test_lists_from_the_index_once_built_and_indexes_new_outputs(tmp_path, qapp):
    out, data = tmp_path / "out", tmp_path / "data"
    png(out / "run1" / "a.png", {"parameters": a1111_text("a")})
    jpg = with_exif_comment(out / "run1" / "b.jpg", "JPEG", a1111_text("b"))
    os.utime(jpg, (1_000_000_000, 1_000_000_000))  # older than a.png
    outputs = IndexedOutputs(data / "gallery.db", data / "stablenew.db")
    gallery = GalleryController(lambda: out, StoredRatings(data / "stablenew.db", lambda: None),
                                outputs=outputs)
    try:
        gallery.refresh()  # first time: the folder walk lists, the index is built meanwhile
        await gallery.tasks.wait_idle(10)
        assert [i.path.name for i in gallery.items] == ["a.png"]
        assert outputs.worker is not None and outputs.worker.join(20)

        gallery.refresh()  # from the index now: it knows the JPEG the walk does not list
        await gallery.tasks.wait_idle(10)
        assert [i.path.name for i in gallery.items] == ["a.png", "b.jpg"]

        new = png(out / "run2" / "c.png", {"parameters": a1111_text("a new cat")})
        gallery.add_record(SimpleNamespace(path=new, thumbnail=None, created_at=0.0))
        await gallery.tasks.wait_idle(10)
        with GalleryIndex(data / "gallery.db") as index:
            assert index.count() == 3, "the saved image was indexed as it arrived"
    finally:
        await gallery.aclose()


async def test_without_an_index_the_folder_is_walked(tmp_path, qapp):
    out = tmp_path / "out"
    png(out / "run1" / "a.png")
    gallery = GalleryController(lambda: out, StoredRatings(tmp_path / "db", lambda: None))
    try:
        gallery.refresh()
        await gallery.tasks.wait_idle(10)
        assert [i.path.name for i in gallery.items] == ["a.png"]
    finally:
        await gallery.aclose()


async def test_an_added_folder_is_listed_with_the_outputs_once(tmp_path, qapp):
    """A folder the user adds (another tool's images) is listed beside the outputs, newest
    first; a folder inside another is listed once, a folder gone (a drive unplugged) is
    skipped, and a folder only indexed (an earlier output folder) is not listed."""
    out, data, other = tmp_path / "out", tmp_path / "data", tmp_path / "a1111-outputs"
    png(out / "run1" / "ours.png", {"parameters": a1111_text("ours")})
    theirs = png(other / "txt2img" / "theirs.png", {"parameters": a1111_text("theirs")})
    os.utime(theirs, (1_000_000_000, 1_000_000_000))
    outputs = IndexedOutputs(data / "gallery.db", data / "stablenew.db")
    try:
        assert outputs(out) is None and outputs.worker.join(20)  # the first build
        assert [p.name for p, *_ in outputs(out)] == ["ours.png"]
        found = outputs.add_folder(str(other))
        assert (found.seen, found.problems) == (1, [])
        outputs.add_folder(str(other / "txt2img"))  # inside a folder already added
        outputs.add_folder(str(out / "run1"))  # inside the output folder
        gone = tmp_path / "unplugged"
        png(gone / "x.png")
        outputs.add_folder(str(gone))
        gone.joinpath("x.png").unlink()
        gone.rmdir()
        assert [p.name for p, *_ in outputs(out)] == ["ours.png", "theirs.png"]
        earlier = png(tmp_path / "earlier-outputs" / "old.png", {"parameters": a1111_text("old")})
        outputs(earlier.parent)  # the output folder the settings named before
        assert outputs.worker.join(20)
        assert [p.name for p, *_ in outputs(out)] == ["ours.png", "theirs.png"]
    finally:
        outputs.close()


async def test_the_list_shows_before_the_folder_scan_and_follows_what_it_found(tmp_path, qapp,
                                                                              monkeypatch):
    """A warm index lists at once; the scan of the folder behind it is held back here, and
    when it ends, an image another program added appears and a deleted one goes."""
    import asyncio
    import threading

    out, data = tmp_path / "out", tmp_path / "data"
    base = 1_700_000_000
    for n in range(5):
        os.utime(png(out / "run1" / f"{n}.png"), (base + n, base + n))
    outputs = IndexedOutputs(data / "gallery.db", data / "stablenew.db")
    assert outputs(out) is None and outputs.worker.join(20)  # the index is built: warm
    added = png(out / "run2" / "new.png")  # behind the index's back
    (out / "run1" / "0.png").unlink()
    scanning, release = threading.Event(), threading.Event()
    real_scan = GalleryIndex.scan

    def held_scan(self, folder, **kwargs):
        scanning.set()
        assert release.wait(20), "the test let the scan go"
        return real_scan(self, folder, **kwargs)

    monkeypatch.setattr(GalleryIndex, "scan", held_scan)
    gallery = GalleryController(lambda: out, StoredRatings(data / "stablenew.db", lambda: None),
                                outputs=outputs)
    try:
        gallery.refresh()
        for _ in range(400):  # listed while the scan waits
            if gallery.row_count:
                break
            await asyncio.sleep(0.025)
        assert [gallery.key_at(r) for r in range(gallery.row_count)] == \
            [str(out / "run1" / f"{n}.png") for n in (4, 3, 2, 1, 0)]
        assert scanning.is_set() and not release.is_set()
        assert gallery.item(str(out / "run1" / "4.png")) is not None, "its details read too"
        release.set()
        for _ in range(400):
            if gallery.row_of(str(added)) == 0 and gallery.row_count == 5:
                break
            await asyncio.sleep(0.025)
        assert gallery.key_at(0) == str(added), "the new image is listed first"
        assert gallery.row_of(str(out / "run1" / "0.png")) == -1, "the deleted one is gone"
    finally:
        release.set()
        await gallery.aclose()


class Book:
    """A rating book keeping stars in a dict (the gallery's seam to the learning store)."""

    def __init__(self):
        self.stars = {}

    def rating(self, path):
        return self.stars.get(path), ()

    def rate(self, path, stars):
        self.stars[path] = stars

    def set_tags(self, path, tags):
        return None


async def test_a_selection_reaching_rows_not_read_yet_is_rated_whole(tmp_path, qapp):
    """Only the rows in view are read; stars given to a selection that reaches far down (a
    shift-click) are given to every image in it, the unread ones read first."""
    import asyncio

    out = tmp_path / "out"
    base = 1_700_000_000
    for n in range(12):
        os.utime(png(out / "run1" / f"{n:02d}.png"), (base + n, base + n))
    book = Book()
    gallery = GalleryController(lambda: out, book)
    gallery.page_size = 4
    try:
        gallery.refresh()
        await gallery.tasks.wait_idle(10)
        keys = [gallery.key_at(r) for r in range(gallery.row_count)]
        assert len(keys) == 12 and len(gallery.items) == 4, "the first page alone is read"
        assert gallery.item(keys[-1]) is None
        gallery.rate_many(keys[2:], 4)
        for _ in range(200):
            if len(book.stars) == 10:
                break
            await asyncio.sleep(0.025)
        assert book.stars == dict.fromkeys(keys[2:], 4)
        await gallery.tasks.wait_idle(10)
        assert gallery.item(keys[-1]).rating == 4
    finally:
        await gallery.aclose()


def test_a_scan_waits_for_a_move_so_the_moved_images_stay_listed(tmp_path, monkeypatch):
    """A scan of the output folder (the gallery's own, or the folder watch's) that starts while
    images are being moved waits for the move: it would find them gone before their rows learn
    the new path, and the gallery would drop them until the folder they went to is scanned."""
    import threading

    import stablenew.gallery.files as files

    out, data, moved = tmp_path / "out", tmp_path / "data", tmp_path / "moved"
    a = png(out / "run1" / "a.png", {"parameters": a1111_text("a")})
    b = png(out / "run1" / "b.png", {"parameters": a1111_text("b")}, color=(200, 9, 9))
    moved.mkdir()
    outputs = IndexedOutputs(data / "gallery.db", data / "stablenew.db")
    scanning = threading.Event()
    real_scan, real_transfer = GalleryIndex.scan, files.transfer

    def watched_scan(self, folder, **kwargs):
        scanning.set()
        return real_scan(self, folder, **kwargs)

    racers = []

    def racing_transfer(paths, folder, *, copy):
        outcome = real_transfer(paths, folder, copy=copy)
        racer = threading.Thread(target=outputs.update, args=(out,))
        racer.start()
        racers.append(racer)
        if scanning.wait(1.0):  # not held back: it runs before the index hears of the move
            racer.join(20)
        return outcome

    try:
        assert outputs(out) is None and outputs.worker.join(20)
        monkeypatch.setattr(GalleryIndex, "scan", watched_scan)
        monkeypatch.setattr(files, "transfer", racing_transfer)
        outcome = outputs.transfer([str(a), str(b)], str(moved), copy=False)
        assert sorted(outcome.done.values()) == [str(moved / "a.png"), str(moved / "b.png")]
        listed = outputs.listing(out)
        assert listed is not None
        assert sorted(listed[0]) == [str(moved / "a.png"), str(moved / "b.png")]
        with GalleryIndex(data / "gallery.db") as index:
            keys = dict(index.execute("SELECT path, rating_key FROM gallery_images"))
        assert keys == {str(moved / "a.png"): str(a), str(moved / "b.png"): str(b)}, \
            "same rows: the ratings stay with the images"
    finally:
        for racer in racers:
            racer.join(20)
        outputs.close()


async def test_a_listing_dropped_for_a_newer_one_still_reads_the_disk(tmp_path, qapp):
    """Two listings asked at once (a move's, then the folder watch's): the first is dropped for
    the newer one, which does not scan; the scan the first asked for still runs, so images that
    only a scan finds (in a folder the user added, which is not watched) appear."""
    import asyncio

    out, data, other = tmp_path / "out", tmp_path / "data", tmp_path / "other"
    png(out / "run1" / "a.png", {"parameters": a1111_text("a")})
    other.mkdir()
    outputs = IndexedOutputs(data / "gallery.db", data / "stablenew.db")
    gallery = GalleryController(lambda: out, StoredRatings(data / "stablenew.db", lambda: None),
                                outputs=outputs)
    try:
        assert outputs(out) is None and outputs.worker.join(20)
        outputs.add_folder(str(other))
        gallery.refresh()
        while gallery.tasks.busy:  # the listing, then the scan it started
            await gallery.tasks.wait_idle(10)
        assert [i.path.name for i in gallery.items] == ["a.png"]
        new = png(other / "b.png", {"parameters": a1111_text("b")})
        gallery.refresh()  # scans behind the listing...
        gallery.refresh(scan=False)  # ...but a newer listing that does not is asked at once
        for _ in range(400):
            await gallery.tasks.wait_idle(10)
            if gallery.row_of(str(new)) >= 0:
                break
            await asyncio.sleep(0.025)
        assert gallery.row_of(str(new)) >= 0, "the scan of the dropped listing found it"
    finally:
        await gallery.aclose()


async def test_a_move_that_waits_for_a_scan_says_so_at_once(tmp_path, qapp):
    """Moving waits for a gallery scan under way (seconds at 100,000 images): the user is told
    what is happening at once, and what happened when it is done."""
    import asyncio

    out, data, moved = tmp_path / "out", tmp_path / "data", tmp_path / "moved"
    a = png(out / "run1" / "a.png", {"parameters": a1111_text("a")})
    b = png(out / "run1" / "b.png", {"parameters": a1111_text("b")}, color=(200, 9, 9))
    moved.mkdir()
    outputs = IndexedOutputs(data / "gallery.db", data / "stablenew.db")
    gallery = GalleryController(lambda: out, StoredRatings(data / "stablenew.db", lambda: None),
                                outputs=outputs)
    said: list[str] = []
    gallery.actions.message_changed.connect(said.append)
    try:
        assert outputs(out) is None and outputs.worker.join(20)
        with outputs._scan_lock:  # a scan under way
            gallery.actions.transfer([str(a), str(b)], str(moved), copy=False)
            for _ in range(200):
                if said:
                    break
                await asyncio.sleep(0.01)
            assert said == ["Moving 2 images to moved…"]
        await gallery.actions.tasks.wait_idle(10)
        assert said[-1] == "Moved 2 images."
        assert sorted(p.name for p in moved.iterdir()) == ["a.png", "b.png"]
    finally:
        await gallery.aclose()
        outputs.close()
