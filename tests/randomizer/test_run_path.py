"""The GUI run path: Run with the randomizer on makes exactly the images the panel counted."""

from __future__ import annotations

from stablenew.controller.pipeline_controller import PipelineController
from stablenew.controller.randomizer_adapter import RandomizerAdapter


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
