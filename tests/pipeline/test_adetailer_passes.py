"""ADetailer passes switched off one by one: configs, infotext and runs keep every pass's number."""

from __future__ import annotations

import asyncio
import logging

import pytest

from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.config import PipelineConfig, StageName
from stablenew.pipeline.events import RunStatus
from stablenew.pipeline.infotext import parse_infotext, read_image_metadata
from stablenew.pipeline.infotext_config import config_from_infotext
from stablenew.pipeline.infotext_write import build_infotext
from stablenew.pipeline.runner import PipelineRunner
from stablenew.pipeline.stages import plan_stages, stage_units
from tests.pipeline.conftest import small_config
from tests.pipeline.memory_backend import png

FACE = {"model": "face_yolov8n.pt"}
HANDS_OFF = {"model": "hand_yolov8n.pt", "denoise": 0.25, "enabled": False}
PERSON = {"model": "person_yolov8n-seg.pt", "denoise": 0.2}


def with_passes(*passes: dict, **changes) -> PipelineConfig:
    return small_config(**{"adetailer.enabled": True, "adetailer.passes": list(passes), **changes})


def test_a_config_written_before_the_switch_existed_loads_with_every_pass_on():
    text = """version: 1
txt2img:
  prompt: a fox
adetailer:
  enabled: true
  passes:
  - model: face_yolov8n.pt
  - model: hand_yolov8n.pt
    confidence: 0.5
"""
    config = PipelineConfig.from_yaml(text)
    assert [(p.model, p.enabled) for p in config.adetailer.passes] == [
        ("face_yolov8n.pt", True), ("hand_yolov8n.pt", True)]
    assert config.adetailer.passes[1].confidence == 0.5
    assert "enabled: true" not in config.to_yaml(only_changes=True).split("passes:")[1], \
        "a pass that is on saves as it did before"
    off = config.with_changes({"adetailer.passes.1.enabled": False})
    assert PipelineConfig.from_yaml(off.to_yaml(only_changes=True)) == off


def test_infotext_names_only_the_passes_that_ran_under_their_own_tab():
    config = with_passes(FACE, HANDS_OFF, PERSON)
    text = build_infotext(config, 1000, ["txt2img", "adetailer"])
    parsed = parse_infotext(text)
    assert parsed["ADetailer model"] == "face_yolov8n.pt"
    assert parsed["ADetailer model 3rd"] == "person_yolov8n-seg.pt"
    assert not any(key.endswith(" 2nd") for key in parsed), text

    back, loaded, unknown = config_from_infotext(parsed)
    assert "adetailer.passes" in loaded and unknown == []
    passes = back.adetailer.passes
    assert [p.enabled for p in passes] == [True, False, True], "the third pass is still third"
    assert (passes[0].model, passes[2].model, passes[2].denoise) == (
        "face_yolov8n.pt", "person_yolov8n-seg.pt", 0.2)
    # Written again, the numbering is the same: the round trip is stable.
    assert parse_infotext(build_infotext(back, 1000, ["txt2img", "adetailer"])) == parsed


def test_infotext_tabs_a_config_cannot_hold_are_reported_not_renumbered():
    parsed = {"Steps": "20", "Seed": "1", "ADetailer model": "face_yolov8n.pt",
              "ADetailer model 6th": "hand_yolov8n.pt"}
    config, _, unknown = config_from_infotext(parsed)
    assert [p.model for p in config.adetailer.passes] == ["face_yolov8n.pt"]
    assert unknown == ["ADetailer model 6th"]


def test_every_pass_off_is_adetailer_off(caplog):
    config = with_passes({**FACE, "enabled": False}, HANDS_OFF, **{"img2img.enabled": True})
    assert config.enabled_stages() == (StageName.txt2img, StageName.img2img)
    with caplog.at_level(logging.INFO, logger="stablenew.pipeline.stages"):
        assert plan_stages(config, from_images=False) == (StageName.txt2img, StageName.img2img)
    assert "all its detector passes are off" in caplog.text
    some = with_passes(FACE, HANDS_OFF, PERSON)
    assert stage_units(some, StageName.adetailer) == pytest.approx(
        stage_units(with_passes(FACE, PERSON), StageName.adetailer))


async def _run(node, tmp_path, config, **kwargs):
    return await asyncio.wait_for(PipelineRunner(tmp_path / "out").run(
        config, node.backend, CancelToken(), lambda _e: None, **kwargs), 20)


async def test_a_run_sends_the_switched_off_pass_in_its_place_and_records_the_rest(node, tmp_path):
    result = await _run(node, tmp_path, with_passes(FACE, HANDS_OFF, PERSON))
    assert result.status is RunStatus.completed, result.errors
    parsed = read_image_metadata(result.records[0].path).parsed
    assert (parsed["ADetailer model"], parsed["ADetailer model 3rd"]) == (
        "face_yolov8n.pt", "person_yolov8n-seg.pt")
    assert "ADetailer model 2nd" not in parsed
    if node.kind == "a1111":
        (ad,) = node.server.requests_to("/sdapi/v1/img2img")
        tabs = ad.payload["alwayson_scripts"]["ADetailer"]["args"][2:]
        assert [(t["ad_model"], t["ad_tab_enable"]) for t in tabs] == [
            ("face_yolov8n.pt", True), ("hand_yolov8n.pt", False), ("person_yolov8n-seg.pt", True)]
    elif node.kind == "comfyui":
        (graph,) = node.server.prompts_of("adetailer")
        detectors = [n["inputs"]["model_name"] for n in graph["prompt"].values()
                     if n["class_type"] == "UltralyticsDetectorProvider"]
        assert detectors == ["bbox/face_yolov8n.pt", "segm/person_yolov8n-seg.pt"]


async def test_every_pass_off_sends_no_adetailer_request(node, tmp_path):
    config = with_passes({**FACE, "enabled": False}, HANDS_OFF)
    result = await _run(node, tmp_path, config)
    assert result.status is RunStatus.completed, result.errors
    assert result.records[0].stages == ("txt2img",)
    assert node.calls("adetailer") == 0 and node.calls("img2img") == 0

    only_detail = await _run(node, tmp_path, config, input_images=[png(32, 32, 1)])
    assert only_detail.status is RunStatus.failed
    assert "all its detector passes are off" in only_detail.message
