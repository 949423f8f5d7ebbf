"""The GUI run path: Run with the randomizer on makes exactly the images the panel counted."""

from __future__ import annotations

import asyncio
import threading

from stablenew.controller.pipeline_controller import PipelineController
from stablenew.controller.randomizer_adapter import RandomizerAdapter
from stablenew.randomizer.plan import plan
from tests.randomizer.slow_wildcards import SlowWildcards


class _Server:
    """The little of ServerController the run path uses, around a real client."""

    node_name = "fake"
    capabilities = None

    def __init__(self, backend) -> None:
        self._backend = backend
        self.failed = None

    async def ensure_backend(self):
        return self._backend

    def mark_failed(self, exc) -> None:
        self.failed = exc


async def test_run_makes_the_counted_images(qtbot, backend, tmp_path):
    client, fake = backend
    adapter = RandomizerAdapter(debounce_ms=10)
    controller = PipelineController(_Server(client), lambda: tmp_path / "out")
    controller.set_plan_provider(adapter.plan_for_run)
    saved = []
    controller.add_record_hook(saved.append)
    adapter.set_enabled(True)
    adapter.set_template("a {red|blue} fox")
    adapter.set_axes([("sampler", "Euler a, DDIM")])
    adapter.set_images_per_variant(2)
    adapter.set_seed(3)
    cards = {"txt2img.width": 64, "txt2img.height": 64, "txt2img.steps": 2}
    adapter.request_count()  # counted on the adapter's worker, as the panel's Run does
    qtbot.waitUntil(lambda: adapter.count_ready, timeout=5000)
    expected = adapter.exact_count()
    try:
        assert controller.run(cards)
        await controller.wait_idle(30)
    finally:
        adapter.close()
    assert controller.error is None
    assert expected == 8
    assert len(saved) == expected == len(fake.requests_to("/sdapi/v1/txt2img"))
    assert {(r.config.txt2img.prompt, r.config.txt2img.sampler) for r in saved} == {
        (p, s) for p in ("a red fox", "a blue fox") for s in ("Euler a", "DDIM")}
    assert all(r.tags.variant_id for r in saved)


async def test_a_bad_template_never_starts_the_run(qtbot, backend, tmp_path):
    client, fake = backend
    adapter = RandomizerAdapter(debounce_ms=10)
    controller = PipelineController(_Server(client), lambda: tmp_path / "out")
    controller.set_plan_provider(adapter.plan_for_run)
    adapter.set_enabled(True)
    adapter.set_template("a {red|blue fox")
    try:
        controller.run({"txt2img.width": 64, "txt2img.height": 64, "txt2img.steps": 2})
        await controller.wait_idle(30)
    finally:
        adapter.close()
    assert controller.error is not None and "never closed" in controller.error.message
    assert fake.requests_to("/sdapi/v1/txt2img") == []


_CARDS = {"txt2img.width": 64, "txt2img.height": 64, "txt2img.steps": 2}


async def test_a_slow_plan_is_built_off_the_qt_thread_and_stop_drops_it(qtbot, backend, tmp_path,
                                                                        wildcards):
    client, fake = backend
    slow = SlowWildcards(wildcards)
    adapter = RandomizerAdapter(debounce_ms=60_000)  # never counted: Run builds its own plan
    controller = PipelineController(_Server(client), lambda: tmp_path / "out")
    controller.set_plan_provider(adapter.plan_for_run)
    adapter.set_wildcards_dir(slow)
    adapter.set_enabled(True)
    adapter.set_template("a __colors__ fox")
    try:
        assert controller.run(_CARDS)
        # The plan waits on the slow disk in a worker while this loop, the Qt thread's, turns.
        assert await asyncio.to_thread(slow.reading.wait, 10), "the plan is built on a worker"
        assert threading.main_thread() not in slow.readers
        assert controller.state == "running" and controller.job_id is None
        controller.stop()
        await controller.wait_idle(10)
        # The Run ended without waiting for its plan, which is still stuck on the disk.
        assert not slow.gate.is_set() and len(slow.readers) == 1
        assert controller.state == "idle" and controller.error is None
        assert controller.job_id is None
    finally:
        slow.gate.set()
        adapter.close()
    assert fake.requests_to("/sdapi/v1/txt2img") == []


async def test_run_makes_the_variants_shown_when_run_was_pressed(qtbot, backend, tmp_path,
                                                                wildcards):
    client, fake = backend
    slow = SlowWildcards(wildcards)
    adapter = RandomizerAdapter(debounce_ms=60_000)
    controller = PipelineController(_Server(client), lambda: tmp_path / "out")
    controller.set_plan_provider(adapter.plan_for_run)
    saved = []
    controller.add_record_hook(saved.append)
    adapter.set_wildcards_dir(slow)
    adapter.set_enabled(True)
    adapter.set_template("a __colors__ fox")
    adapter.set_seed(7)
    expected = plan(controller.build_config(_CARDS), adapter.spec, wildcards_dir=wildcards)
    try:
        assert controller.run(_CARDS)
        assert await asyncio.to_thread(slow.reading.wait, 10)
        # Edits after the press, while the plan is being built, are for the next Run.
        adapter.set_template("a __animals__")
        adapter.set_images_per_variant(3)
        slow.gate.set()
        await controller.wait_idle(30)
    finally:
        slow.gate.set()
        adapter.close()
    assert controller.error is None
    assert len(saved) == expected.count == 5 == controller.progress.total_images
    assert sorted(r.config.txt2img.prompt for r in saved) == sorted(
        item.config.txt2img.prompt for item in expected)
    assert threading.main_thread() not in slow.readers


async def test_with_variations_off_the_cards_own_choices_are_picked_for_each_image(
        qtbot, backend, tmp_path):
    """A new user typed 'a lighthouse at dusk, {red|blue} sky' and pressed Run: the braces went
    to the server as written (the API does not resolve them; ComfyUI's page and A1111's Dynamic
    Prompts do) and landed in the image. Now each image gets one pick, seeds count up from the
    card's as in an A1111 batch, and the count is the card's batch, as without choices."""
    client, fake = backend
    adapter = RandomizerAdapter(debounce_ms=10)
    controller = PipelineController(_Server(client), lambda: tmp_path / "out")
    controller.set_plan_provider(adapter.plan_for_run)
    saved = []
    controller.add_record_hook(saved.append)
    cards = dict(_CARDS, **{"txt2img.prompt": "a lighthouse, {red|blue} sky",
                            "txt2img.batch_count": 4, "txt2img.seed": 40})
    try:
        assert controller.run(cards)
        await controller.wait_idle(30)
    finally:
        adapter.close()
    assert controller.error is None
    sent = [r.payload for r in fake.requests_to("/sdapi/v1/txt2img")]
    assert len(saved) == len(sent) == 4
    assert {p["prompt"] for p in sent} == {"a lighthouse, red sky", "a lighthouse, blue sky"}
    assert sorted(p["seed"] for p in sent) == [40, 41, 42, 43]
    assert all("{" not in r.config.txt2img.prompt for r in saved)


async def test_with_variations_off_a_prompt_without_choices_runs_as_one_batch(qtbot, backend, tmp_path):
    client, fake = backend
    adapter = RandomizerAdapter(debounce_ms=10)
    controller = PipelineController(_Server(client), lambda: tmp_path / "out")
    controller.set_plan_provider(adapter.plan_for_run)
    cards = dict(_CARDS, **{"txt2img.prompt": "a lighthouse, snake_case_name", "txt2img.batch_size": 2})
    try:
        assert controller.run(cards)
        await controller.wait_idle(30)
    finally:
        adapter.close()
    sent = [r.payload for r in fake.requests_to("/sdapi/v1/txt2img")]
    assert sum(p["batch_size"] for p in sent) == 2
    assert {p["prompt"] for p in sent} == {"a lighthouse, snake_case_name"}


async def test_with_variations_off_an_unclosed_choice_is_said_and_nothing_runs(qtbot, backend, tmp_path):
    client, fake = backend
    adapter = RandomizerAdapter(debounce_ms=10)
    controller = PipelineController(_Server(client), lambda: tmp_path / "out")
    controller.set_plan_provider(adapter.plan_for_run)
    try:
        assert controller.run(dict(_CARDS, **{"txt2img.prompt": "a lighthouse, {red|blue sky"}))
        await controller.wait_idle(30)
    finally:
        adapter.close()
    assert controller.error is not None and "never closed" in controller.error.message
    assert fake.requests_to("/sdapi/v1/txt2img") == []
