"""The gallery index at overnight-batch scale: 100,000 small PNGs with metadata, indexed and searched.

The bench writes tiny but real PNGs (one 8×8 template; each file gets its own A1111
`parameters` text chunk — prompt from a small vocabulary, model, LoRA tokens, seed — and one in
eight our `stablenew` JSON chunk) in run folders of 500, into a temp dir, and a learning
database in which a fifth of them are rated and tagged. Then:

- index_10k: with 90,000 images already indexed, 10,000 new ones are indexed by a scan of the
  whole folder (the 90,000 unchanged are only stat'ed), as after an overnight batch;
- search: typical searches and filters over the 100,000 (text, text + model, rating ≥ 4,
  LoRA, tag, pack + node): the median of 5 runs of each; `search_ms` is the slowest median;
- sort_rating: the first page of all 100,000 ordered by rating (an indexed copy of the learning
  store's ratings since index schema 2: 376 ms before, about 12 ms after, on the 2-core box);
- first_page: a freshly opened index (warm OS cache) answering the first page of 200 and the
  total count, as the gallery does when it opens;
- first_thumbs: the real GalleryPanel bound to the real GalleryController on the warm index
  (offscreen Qt), from creating them until every tile of the first screen has its thumbnail
  (not the placeholder) and the grid has painted;
- scroll: then the grid's scroll bar dragged from top to bottom (moves of 1/200 of its height,
  one per 16 ms frame; every image has its row from the start, and the details and
  thumbnails of the tiles in view are read when the scrolling pauses), until the last tile
  is read and in view; a 5 ms probe timer records how late the Qt loop ran it (as
  `bench/ui_latency.py` and `bench/library.py` do); `scroll_max_stall_ms` is the worst;
- memory: the process's peak resident size after all of it (file writing and the GUI included).

Prints `RESULT first_thumbs_s=… search_ms=… scroll_max_stall_ms=… index_10k_s=… memory_mb=…
sort_rating_ms=… first_page_s=… scroll_p99_stall_ms=… idle_max_stall_ms=…`; targets < 1 s,
< 100 ms, < 33 ms, < 60 s, < 300 MB, < 100 ms and < 1 s. Run from the repository root:
`QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gallery.py [--count 100000] [--new 10000]`.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

from bench._stall_probe import StallProbe  # noqa: E402
from stablenew.gallery.index import GalleryIndex  # noqa: E402
from stablenew.gallery.query import GalleryQuery, SortKey, count, search  # noqa: E402
from stablenew.learning.store import LearningStore  # noqa: E402

WORDS = ("cinematic", "portrait", "woman", "man", "castle", "forest", "city", "neon", "rain",
         "night", "sunset", "ocean", "dragon", "robot", "cyberpunk", "watercolor", "anime",
         "photo", "bokeh", "armor", "knight", "cat", "dog", "owl", "lake", "mountain", "snow",
         "desert", "street", "market", "temple", "garden", "lighthouse", "storm", "fog", "misty",
         "golden", "hour")
MODELS = ("juggernautXL", "dreamshaper_8", "realvisXL", "ponyDiffusion", "sd_xl_base_1.0")
LORAS = ("detail_tweaker", "neon_glow", "film_grain", "add_more_details", "watercolor_v2")
PER_RUN = 500


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _template() -> tuple[bytes, bytes]:
    """The 8×8 PNG cut where the text chunk goes: (signature + IHDR, IDAT + IEND)."""
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
    rows = b"".join(b"\0" + bytes(range(24)) for _ in range(8))
    return head, _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def write_images(root: Path, start: int, n: int, rng: random.Random) -> list[str]:
    head, tail = _template()
    paths = []
    for i in range(start, start + n):
        folder = root / f"run-{i // PER_RUN:04d}"
        if i % PER_RUN == 0 or i == start:
            folder.mkdir(parents=True, exist_ok=True)
        prompt = ", ".join(rng.sample(WORDS, 6))
        lora = LORAS[i % len(LORAS)]
        model = MODELS[i % len(MODELS)]
        text = (f"{prompt} <lora:{lora}:0.6>\nNegative prompt: blurry, lowres\nSteps: 20, "
                f"Sampler: Euler a, CFG scale: 7, Seed: {i}, Size: 8x8, Model: {model}")
        chunks = _chunk(b"tEXt", b"parameters\0" + text.encode("latin-1"))
        if i % 8 == 0:
            ours = {"format": 1, "seed": i, "node": f"gpu-{i % 3}", "tags": {"pack": "Portraits"},
                    "config": {"txt2img": {"prompt": prompt, "negative_prompt": "blurry",
                                           "checkpoint": model, "sampler": "Euler a",
                                           "steps": 20, "cfg_scale": 7}}}
            chunks += _chunk(b"tEXt", b"stablenew\0" + json.dumps(ours).encode())
        path = folder / f"{i:06d}.png"
        # Every file's bytes differ (seed in the text), so content hashes differ too.
        path.write_bytes(head + chunks + tail)
        paths.append(str(path))
    return paths


def rate(db_path: Path, paths: list[str], rng: random.Random) -> None:
    """A learning store where a fifth of the images are rated (and some tagged)."""
    LearningStore(db_path).close()
    db = sqlite3.connect(db_path)
    rows, tags = [], []
    for n, path in enumerate(p for i, p in enumerate(paths) if i % 5 == 0):
        rows.append((n + 1, f"key-{n}", "run", n, path, rng.randint(1, 5)))
        if n % 4 == 0:
            tags.append((n + 1, "nailed it"))
    db.executemany("INSERT INTO learning_records (id, record_key, run_id, image_index, path, rating, "
                   "settings_hash, config_hash, seed, created_at, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, '', '', 0, 0, 0)", rows)
    db.executemany("INSERT INTO learning_tags VALUES (?, ?)", tags)
    db.commit()
    db.close()


def timed_ms(fn, runs: int = 5) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


SCROLL_STEPS = 200
SCROLL_LIMIT_S = 300


def gallery_gui(root: Path, data: Path) -> dict[str, float]:
    """The real gallery panel and controller on the warm index: time to the first screenful of
    thumbnails, then the Qt loop's stalls while the grid is dragged from top to bottom."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import asyncio

    import qasync
    from PySide6.QtCore import QEvent, QObject, QPoint
    from PySide6.QtWidgets import QApplication

    from stablenew.controller.gallery_controller import GalleryController, StoredRatings
    from stablenew.controller.gallery_index import IndexedOutputs
    from stablenew.gui.gallery_panel import GRID, GalleryPanel

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    figures: dict[str, float] = {}

    class Paints(QObject):
        """Counts the grid's paint events (a tile is on screen once painted)."""

        count = 0

        def eventFilter(self, _obj, event) -> bool:  # noqa: N802
            if event.type() == QEvent.Type.Paint:
                self.count += 1
            return False

    def screenful(panel: GalleryPanel) -> tuple[int, int]:
        """Tiles whose centre is in the viewport, and how many of them have their thumbnail."""
        view, icons = panel.view, panel.model._icons
        size = view.viewport().size()
        cells = shown = 0
        for y in range(GRID[1] // 2, size.height(), GRID[1]):
            for x in range(GRID[0] // 2, size.width() - GRID[0] // 2, GRID[0]):
                cells += 1
                key = view.indexAt(QPoint(x, y)).data(panel.model.KeyRole)
                shown += key is not None and key in icons
        return cells, shown

    async def scenario() -> None:
        start = time.perf_counter()
        outputs = IndexedOutputs(data / "gallery.db", data / "stablenew.db")
        controller = GalleryController(lambda: root,
                                       StoredRatings(data / "stablenew.db", lambda: None),
                                       outputs=outputs)
        panel = GalleryPanel()
        panel.bind(controller)
        panel.resize(1000, 800)
        panel.show()
        paints = Paints()
        panel.view.viewport().installEventFilter(paints)
        controller.refresh()
        listed_s = None
        while True:  # every tile of the first screen has its thumbnail…
            await asyncio.sleep(0.002)
            if listed_s is None and controller.row_count:
                listed_s = time.perf_counter() - start
            cells, shown = screenful(panel)
            if cells and shown == cells:
                break
            if time.perf_counter() - start > 60:
                raise RuntimeError(f"no screenful of thumbnails after 60 s ({shown}/{cells})")
        painted = paints.count
        panel.view.viewport().update()  # …and the grid has painted them (the next paint, if
        while paints.count == painted:  # the one showing the last had not already come)
            await asyncio.sleep(0.001)
        figures["first_thumbs_s"] = time.perf_counter() - start
        figures["first_listed_s"] = listed_s or 0.0
        figures["first_screen_tiles"] = cells
        await controller.tasks.wait_idle(30)
        await asyncio.sleep(0.5)  # the batched layout settles

        probe = StallProbe()
        stalls = probe.stalls
        probe.start()
        await asyncio.sleep(2.0)  # the probe on the idle grid: the machine's own noise
        figures["idle_max_stall_ms"] = max(stalls)
        stalls.clear()
        # A drag of the scroll bar from top to bottom in SCROLL_STEPS moves (every image has its
        # row from the start); at the bottom the last page is awaited, the loop turning.
        bar = panel.view.verticalScrollBar()
        columns = max(1, panel.view.viewport().width() // GRID[0])
        step = max(1, -(-controller.total // columns) * GRID[1] // SCROLL_STEPS)
        scroll_start = time.perf_counter()
        moves = 0
        model = panel.model

        def at_bottom() -> bool:  # every image listed, the last laid out, read and scrolled to
            last = model.index(model.rowCount() - 1)
            return (model.rowCount() == controller.total and panel.view.visualRect(last).isValid()
                    and controller.item(last.data(model.KeyRole)) is not None
                    and bar.value() >= bar.maximum())

        while not at_bottom():
            if bar.value() < bar.maximum():
                bar.setValue(min(bar.maximum(), bar.value() + step))
                moves += 1
            await asyncio.sleep(0.016)
            if time.perf_counter() - scroll_start > SCROLL_LIMIT_S:
                break  # reported as not at the bottom, with how far it came
        figures["scroll_bottom"] = at_bottom()
        await asyncio.sleep(0.3)  # the last thumbnails arrive
        probe.stop()
        figures["scroll_s"] = time.perf_counter() - scroll_start
        figures["scroll_moves"] = moves
        figures["scroll_rows"] = panel.model.rowCount()
        stalls.sort()
        figures["scroll_max_stall_ms"] = stalls[-1]
        figures["scroll_p99_stall_ms"] = stalls[int(len(stalls) * 0.99)]
        panel.close()
        await controller.aclose()

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="images in all (default 100000)")
    parser.add_argument("--new", type=int, default=10_000, help="of which indexed as new (10000)")
    args = parser.parse_args()
    rng = random.Random(22)
    with tempfile.TemporaryDirectory(prefix="stablenew-gallery-bench-") as tmp:
        root, data = Path(tmp) / "outputs", Path(tmp) / "data"
        data.mkdir()
        old = args.count - args.new
        start = time.perf_counter()
        paths = write_images(root, 0, old, rng)
        print(f"wrote {old:,} images in {time.perf_counter() - start:.1f} s", flush=True)
        with GalleryIndex(data / "gallery.db", learning_db=data / "stablenew.db") as index:
            start = time.perf_counter()
            first = index.scan(root)
            print(f"indexed {first.read:,} in {time.perf_counter() - start:.1f} s "
                  f"({len(first.problems)} problems)", flush=True)
        paths += write_images(root, old, args.new, rng)
        rate(data / "stablenew.db", paths, rng)
        with GalleryIndex(data / "gallery.db", learning_db=data / "stablenew.db") as index:
            start = time.perf_counter()
            second = index.scan(root)
            index_10k_s = time.perf_counter() - start
            assert second.read == args.new and second.unchanged == old, second
            print(f"index_{args.new // 1000}k: {second.read:,} new among {second.seen:,} "
                  f"in {index_10k_s:.1f} s", flush=True)
            queries = {
                "text": GalleryQuery(text="cyberpunk"),
                "text+model": GalleryQuery(text="neon rain", model="realvisXL"),
                "rating>=4": GalleryQuery(min_rating=4),
                "lora": GalleryQuery(lora="film_grain"),
                "tag": GalleryQuery(tag="nailed it"),
                "pack+node": GalleryQuery(pack="Portraits", node="gpu-1"),
            }
            medians = {}
            for name, query in queries.items():
                medians[name] = timed_ms(lambda q=query: search(index, q, limit=200))
                hits = count(index, query)
                print(f"  search {name:12} {medians[name]:7.1f} ms  ({hits:,} match)", flush=True)
            # An order, not a filter: walks the index of the ratings' copy.
            sort_rating_ms = timed_ms(lambda: search(index, GalleryQuery(sort=SortKey.rating),
                                                     limit=200))
            print(f"  sort by rating      {sort_rating_ms:7.1f} ms", flush=True)
            count_ms = timed_ms(lambda: count(index, GalleryQuery(text="cyberpunk")))
            print(f"  count  text         {count_ms:7.1f} ms", flush=True)
        start = time.perf_counter()
        with GalleryIndex(data / "gallery.db", learning_db=data / "stablenew.db") as index:
            page = search(index, GalleryQuery(), limit=200)
            total = count(index, GalleryQuery())
        first_page_s = time.perf_counter() - start
        assert len(page) == 200 and total == args.count, (len(page), total)
        gui = gallery_gui(root, data)
        print(f"gallery opened: first page listed in {gui['first_listed_s']:.2f} s, a screenful "
              f"({gui['first_screen_tiles']:.0f} tiles) of thumbnails painted in "
              f"{gui['first_thumbs_s']:.2f} s", flush=True)
        print(f"scrolled {gui['scroll_rows']:,.0f} images "
              f"{'top to bottom' if gui['scroll_bottom'] else 'NOT to the bottom (time limit)'} in "
              f"{gui['scroll_moves']:.0f} moves, {gui['scroll_s']:.1f} s: max stall "
              f"{gui['scroll_max_stall_ms']:.1f} ms, p99 {gui['scroll_p99_stall_ms']:.1f} ms "
              f"(idle grid: max {gui['idle_max_stall_ms']:.1f} ms)", flush=True)
    memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    search_ms = max(medians.values())
    print(f"RESULT first_thumbs_s={gui['first_thumbs_s']:.2f} search_ms={search_ms:.1f} "
          f"scroll_max_stall_ms={gui['scroll_max_stall_ms']:.1f} index_10k_s={index_10k_s:.2f} "
          f"memory_mb={memory_mb:.0f} sort_rating_ms={sort_rating_ms:.1f} "
          f"first_page_s={first_page_s:.3f} scroll_p99_stall_ms={gui['scroll_p99_stall_ms']:.1f} "
          f"idle_max_stall_ms={gui['idle_max_stall_ms']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
