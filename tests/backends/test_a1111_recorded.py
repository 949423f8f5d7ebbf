"""Pure tests on recorded answer shapes: which returned images belong to the job."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from stablenew.backends.a1111_replies import answer_images, parse_info
from stablenew.backends.a1111_truth import Expectation, compare
from stablenew.backends.types import Sampling
from tests.backends.conftest import png

DATA = Path(__file__).resolve().parents[1] / "data" / "a1111"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_grid_and_extra_images_are_left_out():
    info = json.loads((DATA / "txt2img_info_grid_extras.json").read_text(encoding="utf-8"))
    grid, detect_map = png(128, 48), png(64, 48)
    first, second = png(64, 48, (1, 2, 3)), png(64, 48, (4, 5, 6))
    images, sizes, texts = answer_images([b64(grid), b64(first), b64(second), b64(detect_map)], info,
                                         "/sdapi/v1/txt2img", "http://127.0.0.1:9", "n")
    assert [img.data for img in images] == [first, second]
    assert [img.seed for img in images] == [1234, 1235]
    assert "Seed: 1235" in images[1].infotext
    s = Sampling(prompt="a red fox", negative_prompt="blurry", sampler="Euler a", scheduler="Karras",
                 steps=6, cfg_scale=6.5, width=64, height=48, seed=1234,
                 checkpoint="sd_xl_base_1.0.safetensors")
    assert compare(Expectation(s, 2, (64, 48)), info, sizes, texts) == []


def test_info_may_arrive_already_parsed_or_empty():
    assert parse_info({"seed": 1}, "u", "e", "n") == {"seed": 1}
    assert parse_info(None, "u", "e", "n") == {}
    assert parse_info('{"seed": 2}', "u", "e", "n") == {"seed": 2}
