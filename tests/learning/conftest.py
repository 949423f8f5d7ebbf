"""A real SD node for learning tests (the fake A1111 WebUI over HTTP, with our A1111 client),
and the Learning room's controllers on it."""

from __future__ import annotations

import pytest

from tests.fakes.sdwebui import fake_sdwebui_thread  # noqa: F401  (fixture: the window's server)


@pytest.fixture
async def sd_backend():
    """A Backend whose server answers fast (1 ms per step)."""
    from stablenew.backends.a1111 import A1111Backend
    from tests.fakes.sdwebui import FakeSDWebUI

    async with FakeSDWebUI(step_ms=1) as fake:
        backend = A1111Backend(fake.url, name="fake-node", timeout=20, poll_interval=0.05)
        try:
            yield backend
        finally:
            await backend.aclose()


@pytest.fixture
async def learning_rooms(tmp_path, sd_backend):
    """Makes the Learning room's controllers on a database: `make(db, seed=…)` gives a
    LearningController in Active (its runs go to the fake server, their images to
    tmp_path/made) and the TasteController beside it; both are closed after the test."""
    from stablenew.controller.learning_controller import LearningController, LearningMode
    from stablenew.controller.taste_controller import TasteController

    made = []

    async def backend():
        return sd_backend

    def make(db, *, seed):
        learning = LearningController(db, backend=backend, output_dir=lambda: tmp_path / "made",
                                      base_config=small_config, mode=LearningMode.active,
                                      remember_mode=False)
        taste = TasteController(db, learning=learning, seed=seed)
        made.append((learning, taste))
        return learning, taste

    yield make
    for learning, taste in made:
        await taste.aclose()
        await learning.aclose()


def small_config(**changes):
    from stablenew.pipeline.config import PipelineConfig

    base = {"txt2img.prompt": "a red fox in the snow", "txt2img.width": 64, "txt2img.height": 64,
            "txt2img.steps": 4, "txt2img.seed": 1000}
    base.update(changes)
    return PipelineConfig().with_changes(base)
