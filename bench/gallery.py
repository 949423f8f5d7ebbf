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
- memory: the process's peak resident size after all of it (file writing included).

Prints `RESULT index_10k_s=… search_ms=… sort_rating_ms=… first_page_s=… memory_mb=…`;
targets < 60 s, < 100 ms, < 100 ms, < 1 s and < 300 MB. Run from the repository root:
`.venv/bin/python bench/gallery.py [--count 100000] [--new 10000]`.
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
    memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    search_ms = max(medians.values())
    print(f"RESULT index_10k_s={index_10k_s:.2f} search_ms={search_ms:.1f} "
          f"sort_rating_ms={sort_rating_ms:.1f} "
          f"first_page_s={first_page_s:.3f} memory_mb={memory_mb:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
