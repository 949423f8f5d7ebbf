"""GalleryRows: the gallery's virtual list keeps each key's row right through images put first,
images taken out and items let go."""

from __future__ import annotations

from pathlib import Path

from stablenew.controller import gallery_rows
from stablenew.controller.gallery_reading import GalleryItem
from stablenew.controller.gallery_rows import GalleryRows


def _item(key: str) -> GalleryItem:
    return GalleryItem(Path(key), 0.0)


def test_rows_stay_right_after_images_are_put_first_and_taken_out():
    rows = GalleryRows(["/o/c.png", "/o/b.png", "/o/a.png"])
    assert [rows.row_of(k) for k in ("/o/c.png", "/o/b.png", "/o/a.png")] == [0, 1, 2]
    rows.put_first(_item("/o/d.png"))
    rows.put_first(_item("/o/e.png"))
    assert rows.keys == ["/o/e.png", "/o/d.png", "/o/c.png", "/o/b.png", "/o/a.png"]
    assert [rows.row_of(k) for k in rows.keys] == [0, 1, 2, 3, 4]
    assert rows.item_at(0).key == "/o/e.png" and rows.item_at(2) is None
    rows.remove({"/o/d.png", "/o/b.png"})
    assert rows.keys == ["/o/e.png", "/o/c.png", "/o/a.png"]
    assert [rows.row_of(k) for k in rows.keys] == [0, 1, 2]
    assert rows.row_of("/o/d.png") == -1 and rows.key_at(3) is None
    rows.put_first(_item("/o/f.png"))
    assert [rows.row_of(k) for k in rows.keys] == [0, 1, 2, 3]


def test_items_read_are_kept_up_to_a_limit_except_pinned_ones(monkeypatch):
    monkeypatch.setattr(gallery_rows, "MAX_READ", 5)
    keys = [f"/o/{n}.png" for n in range(8)]
    rows = GalleryRows(keys)
    assert rows.take([_item(k) for k in keys[:2]]) == (0, 1)
    assert rows.take([_item(k) for k in keys[2:4]]) == (2, 3)
    assert rows.take([_item("/o/gone.png")]) is None, "a key not listed is not kept"
    # A third batch: the oldest goes, but for the pinned image (the one shown large).
    assert rows.take([_item(k) for k in keys[4:6]], pinned=lambda k: k == keys[0]) == (4, 5)
    assert sorted(rows.read) == sorted([keys[0], *keys[2:6]])
    assert rows.recent(3) == keys[4:6] + keys[2:3]


def test_a_first_page_then_the_whole_lists_keys():
    """A new list has its length and first page at once, the other keys a moment later; keys
    that no longer agree (the list changed meanwhile) are refused."""
    rows = GalleryRows(["/o/9.png", "/o/8.png"], total=5)
    assert len(rows) == 5 and not rows.complete
    assert rows.key_at(1) == "/o/8.png" and rows.key_at(2) is None and rows.item_at(3) is None
    assert not rows.fill(["/o/9.png", "/o/7.png", "/o/6.png", "/o/5.png", "/o/4.png"])
    assert not rows.fill(["/o/9.png", "/o/8.png", "/o/7.png"])
    assert rows.fill(["/o/9.png", "/o/8.png", "/o/7.png", "/o/6.png", "/o/5.png"])
    assert rows.complete and rows.row_of("/o/5.png") == 4
