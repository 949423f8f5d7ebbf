"""The ADetailer card's passes through the PipelineController: each pass has its own switch, and
switching one off never moves the passes after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew.controller.pipeline_controller import PipelineController
from stablenew.pipeline.config import PipelineConfig

FACE = {"model": "face_yolov8n.pt"}
HANDS = {"model": "hand_yolov8n.pt", "confidence": 0.6}
PERSON = {"model": "person_yolov8n-seg.pt", "denoise": 0.2}


@pytest.fixture
def controller(qapp):
    controller = PipelineController(None, Path)
    yield controller
    controller.deleteLater()


def preset(*passes: dict) -> PipelineConfig:
    data = PipelineConfig().with_changes({"adetailer.enabled": True}).model_dump(mode="json")
    data["adetailer"]["passes"] = list(passes)
    return PipelineConfig.model_validate(data)


def test_each_pass_on_the_card_has_its_own_switch_first(controller):
    sections = controller.sections()
    first, second = sections["adetailer.passes.0"][0], sections["adetailer.passes.1"][0]
    assert (first.path, first.title, first.default) == ("adetailer.passes.0.enabled", "First pass", True)
    assert (second.path, second.title, second.default) == (
        "adetailer.passes.1.enabled", "Second pass", False)
    assert "still runs" in second.description
    paths = {spec.path for specs in sections.values() for spec in specs}
    assert paths <= set(controller.default_values()), "every card field has a value to show"


def test_second_pass_off_keeps_a_preset_third_pass_third(controller):
    loaded = preset(FACE, HANDS, PERSON)
    controller.load_config(loaded)
    values = controller.values_of(loaded)
    assert values["adetailer.passes.1.enabled"] is True
    assert controller.build_config(values) == loaded

    config = controller.build_config({**values, "adetailer.passes.1.enabled": False})
    assert [p.model for p in config.adetailer.passes] == [
        "face_yolov8n.pt", "hand_yolov8n.pt", "person_yolov8n-seg.pt"]
    assert [p.enabled for p in config.adetailer.passes] == [True, False, True]
    assert config.adetailer.passes[1].confidence == 0.6, "its settings are kept for later"
    assert config.adetailer.passes[2].denoise == 0.2
    # Saved and shown again, the card reads the same values and builds the same config.
    again = PipelineConfig.from_yaml(config.to_yaml(only_changes=True))
    controller.load_config(again)
    shown = controller.values_of(again)
    assert shown["adetailer.passes.1.enabled"] is False
    assert controller.build_config(shown) == config


def test_the_default_second_pass_is_left_out_while_off(controller):
    controller.load_config(preset(FACE))
    values = controller.values_of(controller.config)
    assert (values["adetailer.passes.1.enabled"], values["adetailer.passes.1.model"]) == (
        False, "hand_yolov8n.pt")
    assert len(controller.build_config({**values, "adetailer.passes.1.denoise": 0.3})
               .adetailer.passes) == 1, "a preset saved with the second pass off stays small"
    on = controller.build_config({**values, "adetailer.passes.1.enabled": True})
    assert [(p.model, p.enabled) for p in on.adetailer.passes] == [
        ("face_yolov8n.pt", True), ("hand_yolov8n.pt", True)]


def test_values_without_the_switch_keep_the_pass_as_loaded(controller):
    loaded = preset(FACE, {**HANDS, "enabled": False}, PERSON)
    controller.load_config(loaded)
    assert controller.build_config({"adetailer.passes.0.denoise": 0.5}) == loaded.with_changes(
        {"adetailer.passes.0.denoise": 0.5})
