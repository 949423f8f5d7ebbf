"""The LoRA catalog at library scale: 5,000 synthetic LoRAs indexed cold, warm, and matched.

The bench writes 5,000 small but real safetensors files (a kohya-style header with
`ss_tag_frequency` of ~30 tags over a 600-word vocabulary, a few bytes of tensor data) in eight
category folders, with the sidecars people have: an A1111 `.json` for a third, a Civitai Helper
`.civitai.info` for half, a PNG preview for most. Then:

- cold: `scan_folder` into a new, empty cache (headers, sidecars, previews read and cached);
  the files were just written, so they sit in the OS page cache — a first scan from a cold
  disk or a NAS is slower by the storage's latency;
- warm: the same folder again with a freshly opened cache (every file unchanged);
- match: one typical prompt against all 5,000 with `Matcher.match` (median of 50; the matcher's
  one-off index build is printed apart);
- bare: the same headers read with a minimal loop (open, 8 bytes, json.loads) — the floor any
  index must pay — printed as `cold_vs_bare_headers`.

- scroll: the Models panel on the real catalog controller (warm cache) scrolled top to bottom,
  half a page per 16 ms frame, previews decoding as they come into view; a 5 ms probe timer
  records how late the Qt loop ran it (as `bench/ui_latency.py` does).

Prints `RESULT index_cold_s=… index_warm_s=… match_ms=… scroll_max_stall_ms=…
cold_vs_bare_headers=…`; targets cold < 10 s, warm < 1 s, match < 20 ms, scroll stall < 33 ms.
Run from the repository root: `.venv/bin/python bench/library.py [--count 5000]`.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))  # tests.catalog.factory, when run as a script

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench._stall_probe import StallProbe  # noqa: E402
from stablenew.catalog.cache import CatalogCache  # noqa: E402
from stablenew.catalog.entry import BaseModel, ModelKind  # noqa: E402
from stablenew.catalog.index import scan_folder  # noqa: E402
from stablenew.catalog.match import Matcher  # noqa: E402
from tests.catalog.factory import PNG_2PX, SD1_KEYS, SDXL_KEYS, civitai_info, safetensors_bytes  # noqa: E402

CATEGORIES = ("character", "style", "concept", "clothing", "pose", "background", "detail", "vehicle")
PROMPT = ("cinematic photo of a woman in a red coat walking through a neon city at night, rain, "
          "film grain, bokeh, <lora:detail_0001:0.5>")


def _vocabulary(rng: random.Random) -> list[str]:
    syllables = ["ka", "ri", "to", "ne", "mo", "sa", "lu", "vi", "den", "gor", "pha", "el"]
    words = ["cinematic", "neon", "city", "night", "rain", "film grain", "bokeh", "red coat", "woman",
             "portrait", "forest", "armor", "anime", "watercolor", "sunset", "castle"]
    while len(words) < 600:
        words.append("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return words


def generate(folder: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    for i in range(count):
        category = CATEGORIES[i % len(CATEGORIES)]
        name = f"{category}_{i:04d}"
        sub = folder / category
        sub.mkdir(parents=True, exist_ok=True)
        sdxl = i % 3 != 0
        tags = {w: rng.randint(1, 80) for w in rng.sample(vocab, 30)}
        meta = {"ss_output_name": f"{name}_v{1 + i % 3}",
                "ss_base_model_version": "sdxl_base_v1-0" if sdxl else "sd_v1",
                "ss_network_module": "networks.lora", "ss_network_dim": "32",
                "ss_tag_frequency": json.dumps({f"10_{name}": tags})}
        if i % 4 == 0:
            meta["modelspec.trigger_phrase"] = f"{name}style, {rng.choice(vocab)}"
        (sub / f"{name}.safetensors").write_bytes(
            safetensors_bytes(meta, SDXL_KEYS if sdxl else SD1_KEYS, tensor_bytes=64))
        if i % 3 == 0:
            (sub / f"{name}.json").write_text(json.dumps(
                {"activation text": f"{name} look", "preferred weight": 0.7,
                 "sd version": "SDXL" if sdxl else "SD1", "description": " ".join(rng.sample(vocab, 12))}),
                encoding="utf-8")
        if i % 2 == 0:
            base = ("Pony" if i % 5 == 0 else "SDXL 1.0") if sdxl else "SD 1.5"
            (sub / f"{name}.civitai.info").write_text(json.dumps(civitai_info(
                [f"{name}word", rng.choice(vocab)], base_model=base, name=f"{category.title()} {i}")),
                encoding="utf-8")
        if i % 10 != 9:
            (sub / f"{name}.preview.png").write_bytes(PNG_2PX)


def bare_headers(folder: Path) -> int:
    n = 0
    for path in folder.rglob("*.safetensors"):
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            json.loads(handle.read(length))
        n += 1
    return n




def scroll_stalls(folder: Path, db: Path) -> tuple[list[float], list[float], int]:
    """Qt-loop stalls while the Models panel (real controller, warm cache) scrolls top to bottom."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import asyncio

    import qasync
    from PySide6.QtWidgets import QApplication

    from stablenew.controller.catalog_controller import CatalogController
    from stablenew.gui.panels.models_panel import ModelsPanel

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    stalls: list[float] = []
    idle: list[float] = []

    async def scenario() -> int:
        controller = CatalogController(db)
        panel = ModelsPanel(controller)
        panel.resize(900, 700)
        panel.show()
        controller.add_folder(folder)
        while panel.model.rowCount() == 0 or controller._tasks.busy:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # the batched layout settles
        bar = panel.grid.verticalScrollBar()
        probe = StallProbe()
        probe.start()
        await asyncio.sleep(2.0)  # the same probe on the idle panel: the machine's own noise
        idle.extend(probe.stalls)
        probe.stalls.clear()
        steps = 0
        while bar.value() < bar.maximum():
            bar.setValue(bar.value() + bar.pageStep() // 2)  # half a page per frame: a brisk scroll
            steps += 1
            await asyncio.sleep(0.016)
        await asyncio.sleep(0.3)  # the last previews arrive
        probe.stop()
        stalls.extend(probe.stalls)
        rows = panel.model.rowCount()
        panel.close()
        await controller.aclose()
        return rows if steps else 0

    try:
        rows = loop.run_until_complete(scenario())
    finally:
        loop.close()
    return stalls, idle, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stablenew-library-bench-") as tmp:
        folder = Path(tmp) / "Lora"
        t0 = time.perf_counter()
        generate(folder, args.count)
        print(f"generated {args.count} LoRAs with sidecars in {time.perf_counter() - t0:.1f} s")

        db = Path(tmp) / "catalog.db"
        t0 = time.perf_counter()
        cache = CatalogCache(db)
        entries = scan_folder(folder, ModelKind.lora, cache)
        cache.close()
        cold = time.perf_counter() - t0
        assert len(entries) == args.count, len(entries)
        assert not any(e.problems for e in entries), [e.problems for e in entries if e.problems][:3]

        warm_runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            cache = CatalogCache(db)
            again = scan_folder(folder, ModelKind.lora, cache)
            cache.close()
            warm_runs.append(time.perf_counter() - t0)
        assert [e.to_json() for e in again] == [e.to_json() for e in entries]
        warm = statistics.median(warm_runs)

        t0 = time.perf_counter()
        matcher = Matcher(again)
        build_ms = (time.perf_counter() - t0) * 1000
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            matches = matcher.match(PROMPT, checkpoint=BaseModel.sdxl)
            times.append((time.perf_counter() - t0) * 1000)
        match_ms = statistics.median(times)

        t0 = time.perf_counter()
        bare_n = bare_headers(folder)
        bare = time.perf_counter() - t0
        assert bare_n == args.count
        stalls, idle, rows = scroll_stalls(folder, db)
        assert rows == args.count, rows

    print(f"cold index {cold:.2f} s ({cold / args.count * 1e6:.0f} µs per LoRA); bare header loop "
          f"{bare:.2f} s; warm from cache {warm:.3f} s (runs {', '.join(f'{w:.3f}' for w in warm_runs)})")
    print(f"matcher index built in {build_ms:.0f} ms; match {match_ms:.2f} ms median, "
          f"{max(times):.2f} ms worst; {len(matches)} matches, best: "
          f"{matches[0].entry.name} ({matches[0].score:g}: {'; '.join(matches[0].reasons[:3])})")
    stalls.sort()
    idle.sort()
    print(f"scrolled {rows} LoRAs in the Models panel: {len(stalls)} probes, median stall "
          f"{statistics.median(stalls):.2f} ms, p99 {stalls[int(len(stalls) * 0.99)]:.1f} ms; "
          f"the idle panel before it: max {max(idle):.1f} ms, p99 {idle[int(len(idle) * 0.99)]:.1f} ms")
    print(f"RESULT index_cold_s={cold:.2f} index_warm_s={warm:.3f} match_ms={match_ms:.2f} "
          f"scroll_max_stall_ms={max(stalls):.1f} "
          f"scroll_p99_stall_ms={stalls[int(len(stalls) * 0.99)]:.1f} "
          f"idle_max_stall_ms={max(idle):.1f} cold_vs_bare_headers={cold / bare:.1f}")


if __name__ == "__main__":
    main()
