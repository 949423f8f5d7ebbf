"""The inspector's actions end as queue jobs a real queue runs against the fake A1111 server:
Regenerate sends the image's own seed and prompt, More like this sends the picture's bytes to
img2img at denoise 0.3–0.5 with the same seed, Upscale sends them to the upscaler, and Use as
init image fills the cards so that a Run starts from the picture. An image without settings
is refused in plain words and nothing is queued."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import pytest
import shiboken6
from PIL import Image

from stablenew.cluster.queue_store import QueueStore
from stablenew.controller.gallery_controller import GalleryController, StoredRatings
from stablenew.controller.queue_controller import QueueController
from stablenew.pipeline.config import PipelineConfig

WAIT = 10_000
SEED = 4242
PROMPT = "a lighthouse at dusk"


def _config() -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.prompt": PROMPT, "txt2img.steps": 4, "txt2img.width": 64,
        "txt2img.height": 64, "txt2img.seed": SEED, "txt2img.sampler": "Euler a",
        "txt2img.scheduler": "Automatic", "txt2img.batch_count": 2})


@pytest.fixture
def rig(qloop, qtbot, qapp, tmp_path):
    """A queue working on the fake server, and a gallery whose inspector queues there."""
    from stablenew.backends.a1111 import A1111Backend
    from tests.fakes.sdwebui import FakeSDWebUI

    out = tmp_path / "out"
    queue = QueueController(db_path=tmp_path / "queue.db", output_root=out, poll_ms=50)
    gallery = GalleryController(lambda: out, StoredRatings(tmp_path / "stablenew.db", lambda: None))
    inspector = gallery.inspector
    inspector.enqueue_plan = lambda configs, name: queue.add_plan(configs, name=name)
    inspector.start_folder = tmp_path / "data" / "start_images"
    with FakeSDWebUI(step_ms=0).running_in_thread() as fake:
        backend = A1111Backend(fake.url, timeout=10)
        queue.start_runner(backend, node="fake", backoff_base=0.01)
        yield fake, queue, gallery, tmp_path
        queue.stop_runner()
        qtbot.waitUntil(lambda: not queue.running, timeout=WAIT)
        for closing in (asyncio.ensure_future(queue.aclose()), asyncio.ensure_future(gallery.aclose()),
                        asyncio.ensure_future(backend.aclose())):
            qtbot.waitUntil(closing.done, timeout=WAIT)
    shiboken6.delete(queue)
    qapp.processEvents()


def _made(qtbot, queue: QueueController, db: Path, before: int) -> list[str]:
    """Wait for the queue to finish its work; the paths of images saved since *before*."""
    qtbot.waitUntil(lambda: queue.count == 0 and len(_outputs(db)) > before, timeout=WAIT)
    return _outputs(db)[before:]


def _outputs(db: Path) -> list[str]:
    with QueueStore(db) as store:
        return [p for item in store.reads.items() for p in item.outputs]


def _job_outputs(db: Path, name: str) -> list[str]:
    with QueueStore(db) as store:
        job = next(j for j in store.reads.list_jobs() if j.name == name)
        return [p for item in store.reads.items(job.id) for p in item.outputs]


def _queued_configs(db: Path, name: str) -> list[PipelineConfig]:
    with QueueStore(db) as store:
        job = next(j for j in store.reads.list_jobs() if j.name == name)
        return [store.reads.config_for(i) for i in store.reads.items(job.id)]


def _said(qtbot, gallery: GalleryController, act) -> tuple[str, bool]:
    with qtbot.waitSignal(gallery.inspector.message_changed, timeout=WAIT) as said:
        act()
    return said.args[0], said.args[1]


def test_each_action_is_a_queue_job_built_on_the_image(rig, qtbot):
    fake, queue, gallery, tmp = rig
    db = tmp / "queue.db"
    queue.add_config(_config(), name="first")
    _made(qtbot, queue, db, 1)
    source = Path(_job_outputs(db, "first")[1])  # the second image: seed SEED + 1
    data = source.read_bytes()
    seed = SEED + 1

    # Regenerate: the image's own settings and seed, one image.
    text, problem = _said(qtbot, gallery, lambda: gallery.inspector.regenerate(str(source)))
    assert not problem and f"({seed})" in text
    (config,) = _queued_configs(db, f"Regenerate {source.name}")
    assert (config.txt2img.seed, config.txt2img.prompt, config.txt2img.enabled) == (seed, PROMPT, True)
    _made(qtbot, queue, db, 2)
    sent = fake.requests_to("/sdapi/v1/txt2img")[-1].payload
    assert (sent["seed"], sent["prompt"], sent["n_iter"], sent["batch_size"]) == (seed, PROMPT, 1, 1)

    # More like this: img2img from the picture itself, the same seed, denoise 0.3, 0.4, 0.5.
    text, problem = _said(qtbot, gallery, lambda: gallery.inspector.more_like_this(str(source)))
    assert not problem and text == f"Queued 3 images like {source.name} (seed {seed})."
    configs = _queued_configs(db, f"More like {source.name}")
    assert [c.img2img.denoise for c in configs] == [0.3, 0.4, 0.5]
    assert {(c.txt2img.seed, c.txt2img.prompt, c.txt2img.enabled, c.img2img.enabled)
            for c in configs} == {(seed, PROMPT, False, True)}
    stored = Path(configs[0].img2img.init_image)
    assert stored.parent == tmp / "data" / "start_images", "a copy the job keeps"
    assert stored.read_bytes() == data and stored.stem == hashlib.sha256(data).hexdigest()
    _made(qtbot, queue, db, 3)
    sent = [r.payload for r in fake.requests_to("/sdapi/v1/img2img")]
    assert [r["denoising_strength"] for r in sent] == [0.3, 0.4, 0.5]
    assert {(r["seed"], r["prompt"]) for r in sent} == {(seed, PROMPT)}
    assert all(base64.b64decode(r["init_images"][0]) == data for r in sent), \
        "the picture's own bytes go to img2img"

    # Upscale: only the upscale stage, on the picture's bytes, with the cards' upscaler.
    gallery.inspector.current_config = lambda: PipelineConfig().with_changes(
        {"upscale.upscaler": "R-ESRGAN 4x+", "upscale.scale": 2.0})
    text, problem = _said(qtbot, gallery, lambda: gallery.inspector.upscale(str(source)))
    assert not problem and "upscale of" in text
    (config,) = _queued_configs(db, f"Upscale {source.name}")
    assert config.enabled_stages() == ("upscale",) and not config.txt2img.checkpoint
    before = len(fake.requests_to("/sdapi/v1/txt2img")) + len(fake.requests_to("/sdapi/v1/img2img"))
    _made(qtbot, queue, db, 6)
    (upscaled,) = _job_outputs(db, f"Upscale {source.name}")
    (request,) = fake.requests_to("/sdapi/v1/extra-single-image")
    assert base64.b64decode(request.payload["image"]) == data
    assert request.payload["upscaler_1"] == "R-ESRGAN 4x+"
    assert before == len(fake.requests_to("/sdapi/v1/txt2img")) + len(
        fake.requests_to("/sdapi/v1/img2img")), "nothing else was drawn"
    with Image.open(upscaled) as image, Image.open(source) as original:
        assert image.size == (original.width * 2, original.height * 2)


def test_use_as_init_image_fills_the_cards_and_a_run_starts_from_the_picture(rig, qtbot):
    fake, queue, gallery, tmp = rig
    db = tmp / "queue.db"
    queue.add_config(_config().with_changes({"txt2img.batch_count": 1}), name="first")
    (source,) = _made(qtbot, queue, db, 0)
    data = Path(source).read_bytes()
    shown: list[PipelineConfig] = []
    gallery.inspector.load_cards = shown.append
    gallery.inspector.current_config = lambda: PipelineConfig().with_changes(
        {"txt2img.prompt": "what the cards had", "img2img.denoise": 0.35})
    text, problem = _said(qtbot, gallery, lambda: gallery.inspector.use_as_init(source))
    assert not problem and "with its prompt and seed" in text
    (config,) = shown
    assert (config.txt2img.enabled, config.img2img.enabled) == (False, True)
    assert (config.txt2img.prompt, config.txt2img.seed) == (PROMPT, SEED)
    assert config.img2img.denoise == 0.35, "the card's own img2img settings stay"
    assert Path(config.img2img.init_image).read_bytes() == data

    # Pressing Run queues what the cards show: img2img from the picture.
    queue.add_config(config, name="from the picture")
    _made(qtbot, queue, db, 1)
    (request,) = fake.requests_to("/sdapi/v1/img2img")
    assert base64.b64decode(request.payload["init_images"][0]) == data
    assert (request.payload["seed"], request.payload["prompt"]) == (SEED, PROMPT)


def test_an_image_without_settings_is_refused_in_plain_words(rig, qtbot):
    _fake, queue, gallery, tmp = rig
    plain = tmp / "elsewhere" / "photo.png"
    plain.parent.mkdir()
    Image.new("RGB", (96, 72), "navy").save(plain)
    text, problem = _said(qtbot, gallery, lambda: gallery.inspector.regenerate(str(plain)))
    assert problem and text.startswith("This image has no parameters to regenerate from")
    text, problem = _said(qtbot, gallery, lambda: gallery.inspector.more_like_this(str(plain)))
    assert problem and text.startswith("This image has no parameters to make more like it from")
    assert queue.count == 0 and not (tmp / "data" / "start_images").exists(), \
        "nothing queued, nothing copied"

    # Its pixels can still be upscaled or started from (the cards' prompt stays).
    shown: list[PipelineConfig] = []
    gallery.inspector.load_cards = shown.append
    gallery.inspector.current_config = lambda: PipelineConfig().with_changes(
        {"txt2img.prompt": "what the cards had"})
    text, problem = _said(qtbot, gallery, lambda: gallery.inspector.use_as_init(str(plain)))
    assert not problem and "carries no prompt" in text
    assert shown[0].txt2img.prompt == "what the cards had"
    assert (shown[0].txt2img.width, shown[0].txt2img.height) == (96, 72)

    text, problem = _said(qtbot, gallery, lambda: gallery.inspector.regenerate(str(tmp / "gone.png")))
    assert problem and "gone.png" in text


def test_regenerating_an_image_whose_start_picture_was_swept_says_what_to_do(rig, qtbot):
    # start_images copies go after two weeks unused; an image redrawn from one still names it.
    _fake, queue, gallery, tmp = rig
    db = tmp / "queue.db"
    queue.add_config(_config().with_changes({"txt2img.batch_count": 1}), name="first")
    (source,) = _made(qtbot, queue, db, 0)
    _said(qtbot, gallery, lambda: gallery.inspector.more_like_this(source))
    redrawn = _made(qtbot, queue, db, 1)
    for path in (tmp / "data" / "start_images").iterdir():
        path.unlink()
    text, problem = _said(qtbot, gallery, lambda: gallery.inspector.regenerate(redrawn[0]))
    assert problem and text.startswith("The picture this image was redrawn from is no longer kept")
    assert "Use as init image" in text
    assert [j.name for j in _jobs(db)] == ["first", f"More like {Path(source).name}"], \
        "nothing queued that could only fail"


def _jobs(db: Path):
    with QueueStore(db) as store:
        return store.reads.list_jobs()


@pytest.mark.parametrize(("model", "badge"), [
    ("sd_xl_base_1.0.safetensors [31e35c80fc]", "SDXL"), ("flux1-dev-fp8", "Flux"),
    ("ponyDiffusionV6XL", "Pony"), ("SD15/dreamshaper_8.safetensors", "SD 1.5"),
    ("illustriousXL_v01", "Illustrious"), ("sd3.5_large", "SD 3.5"), ("", "")])
def test_the_family_badge_is_what_the_model_name_says(model, badge):
    from stablenew.controller.gallery_reading import family_badge

    assert family_badge(model) == badge
