"""Apply a pack in the sidebar, then run it (every prompt × the randomizer's plan) against the
fake A1111 server over real HTTP."""

from __future__ import annotations

import asyncio

from stablenew.backends.connect import connect
from stablenew.controller.library_controller import LibraryController
from stablenew.gui.panels.library_panel import LibraryPanel
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.events import RunStatus
from stablenew.pipeline.runner import PipelineRunner
from stablenew.randomizer.spec import VariationSpec
from stablenew.storage.paths import AppPaths
from tests.fakes.sdwebui import FakeSDWebUI

WAIT_MS = 20_000


def test_apply_a_pack_and_run_every_prompt_times_the_plan(qtbot, qloop, tmp_path):
    paths = AppPaths.default()
    paths.presets_dir.mkdir(parents=True)
    (paths.presets_dir / "tiny.yaml").write_text(
        "version: 1\nname: Tiny\nconfig:\n  txt2img:\n    width: 64\n    height: 64\n    steps: 3\n"
        "    seed: 42\n", encoding="utf-8")
    pack_dir = paths.packs_dir / "Harbour"
    (pack_dir / "wildcards").mkdir(parents=True)
    (pack_dir / "wildcards" / "boat.txt").write_text("ketch\nyawl\n", encoding="utf-8")
    (pack_dir / "pack.yaml").write_text(
        "version: 1\nname: Harbour\ndefault_preset: Tiny\nnegative: fog\nprompts:\n"
        "  - a __boat__ in the harbour at dawn\n  - prompt: a harbour at {noon|night}\n"
        "    negative: rain\n", encoding="utf-8")

    controller = LibraryController()
    cards = {"config": PipelineConfig()}
    controller.set_current_config_provider(lambda: cards["config"])
    controller.config_applied.connect(lambda c: cards.__setitem__("config", c))
    # The randomizer panel's spec: one image per variant, seeds counting up from the base seed.
    controller.pack_actions.set_randomizer(
        lambda: VariationSpec(seed_policy="increment", template="ignored {a|b}"))
    panel = LibraryPanel(controller)
    qtbot.addWidget(panel)
    controller.refresh()
    qtbot.waitUntil(lambda: panel.packs.count() == 1 and panel.presets.count() >= 4, timeout=WAIT_MS)
    panel.packs.setCurrentRow(0)
    qtbot.waitUntil(lambda: panel.prompts.count() == 2, timeout=WAIT_MS)

    with qtbot.waitSignal(controller.pack_actions.pack_run_requested, timeout=WAIT_MS) as requested:
        panel.run_pack()
    applied = cards["config"]
    assert (applied.txt2img.width, applied.txt2img.seed) == (64, 42)
    assert applied.txt2img.prompt == "a __boat__ in the harbour at dawn"
    items = list(requested.args[0](applied))
    planned = sorted((i.config.txt2img.prompt, i.config.txt2img.negative_prompt) for i in items)
    assert planned == [("a harbour at night", "rain"), ("a harbour at noon", "rain"),
                       ("a ketch in the harbour at dawn", "fog"), ("a yawl in the harbour at dawn", "fog")]

    async def run_all():
        fake = FakeSDWebUI(step_ms=1)
        url = await fake.start()
        backend = await connect(url, kind="a1111", timeout=20)
        try:
            runner = PipelineRunner(tmp_path / "out", thumbnails=False)
            results = [await runner.run(item.config, backend, CancelToken(), tags=item.tags)
                       for item in items]
            return results, fake.requests_to("/sdapi/v1/txt2img")
        finally:
            await backend.aclose()
            await fake.stop()

    task = asyncio.ensure_future(run_all())
    qtbot.waitUntil(task.done, timeout=WAIT_MS)
    results, requests = task.result()
    assert [r.status for r in results] == [RunStatus.completed] * 4
    sent = [(r.payload["prompt"], r.payload["negative_prompt"], r.payload["seed"]) for r in requests]
    assert sent == [(i.config.txt2img.prompt, i.config.txt2img.negative_prompt, i.config.txt2img.seed)
                    for i in items]
    assert all(r.payload["width"] == 64 and r.payload["steps"] == 3 for r in requests)
    records = [record for result in results for record in result.records]
    assert {r.tags.pack for r in records} == {"Harbour"} and {r.tags.preset for r in records} == {"Tiny"}
    assert [r.tags.variant_id.split("-")[0] for r in records] == ["p1", "p1", "p2", "p2"]
    assert all(r.path.exists() for r in records)
