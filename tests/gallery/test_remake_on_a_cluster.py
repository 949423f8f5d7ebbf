"""The gallery's Upscale and More like this as a cluster runs them: the upscale goes to the one
node that has the upscaler (the other lacks it) and nothing is drawn; More like this goes to a
node with the image's model."""

from __future__ import annotations

import asyncio
import base64

import pytest
from PIL import Image

from stablenew.cluster.queue_store import QueueStore
from stablenew.gallery.remake import more_like_this_configs, store_start_image, upscale_config
from tests.cluster.test_dispatcher import SD15, TXT2IMG, XL, dispatcher, fakes, node
from tests.gallery.factory import a1111_text, png

UPSCALE = "/sdapi/v1/extra-single-image"
IMG2IMG = "/sdapi/v1/img2img"


@pytest.fixture
def store(tmp_path):
    s = QueueStore(tmp_path / "q.db")
    yield s
    s.close()


async def test_upscale_goes_to_the_node_with_the_upscaler(store, tmp_path):
    picture = png(tmp_path / "pics" / "castle.png",
                  {"parameters": a1111_text("a castle", seed=5, model="dreamshaper_8")}, size=(96, 64))
    stored = store_start_image(picture, tmp_path / "start")
    async with fakes({"step_ms": 1, "upscalers": ("None", "Lanczos")},
                     {"step_ms": 1, "checkpoints": (XL,)}) as (plain, has_it):
        store.add_job([upscale_config(picture, stored, upscaler="R-ESRGAN 4x+")],
                      name="Upscale castle.png", output_dir=tmp_path / "out")
        d = dispatcher(store, [node("plain", plain), node("has-it", has_it)])
        await d.monitor.check_all()
        summary = await asyncio.wait_for(d.run(until_empty=True), 20)
    assert summary.done == 1 and summary.failed == 0
    assert plain.requests_to(UPSCALE) == [] and plain.requests_to(TXT2IMG) == []
    (request,) = has_it.requests_to(UPSCALE)
    assert base64.b64decode(request.payload["image"]) == picture.read_bytes()
    assert has_it.requests_to(TXT2IMG) == [] and has_it.requests_to(IMG2IMG) == []
    (item,) = store.reads.items()
    with Image.open(item.outputs[0]) as image:
        assert image.size == (192, 128)


async def test_more_like_this_goes_to_a_node_with_the_images_model(store, tmp_path):
    picture = png(tmp_path / "pics" / "owl.png",
                  {"parameters": a1111_text("an owl", seed=9, model="sd_xl_base_1.0")}, size=(64, 64))
    stored = store_start_image(picture, tmp_path / "start")
    async with fakes({"step_ms": 1, "checkpoints": (SD15,)},
                     {"step_ms": 1, "checkpoints": (XL,)}) as (sd15, xl):
        store.add_job(more_like_this_configs(picture, stored), name="More like owl.png",
                      output_dir=tmp_path / "out")
        d = dispatcher(store, [node("sd15", sd15), node("xl", xl)])
        await d.monitor.check_all()
        summary = await asyncio.wait_for(d.run(until_empty=True), 20)
    assert summary.done == 3 and sd15.requests_to(IMG2IMG) == []
    sent = sorted((r.payload["denoising_strength"], r.payload["seed"]) for r in xl.requests_to(IMG2IMG))
    assert sent == [(0.3, 9), (0.4, 9), (0.5, 9)]
