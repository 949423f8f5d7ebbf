"""Cards ↔ PipelineConfig round-trip, fields described by the model, and the words the status bar uses."""

from __future__ import annotations

import pytest

from stablenew.controller.format import estimate_tokens, eta_in_words, prompt_stats
from stablenew.pipeline.config import PipelineConfig, Txt2ImgSettings


def test_gui_to_config_to_gui_round_trip(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    panel, controller = window.pipeline_panel, window.session.pipeline
    defaults = controller.default_values()
    assert panel.values() == {path: defaults[path] for path in panel.values()}, "model defaults"
    changes = {"txt2img.prompt": "a cat, <lora:x:0.5>\nsecond line", "txt2img.negative_prompt": "dog",
               "txt2img.steps": 37, "txt2img.cfg_scale": 6.5, "txt2img.width": 768,
               "txt2img.seed": 4_000_000_000, "txt2img.sampler": "Euler a",
               "txt2img.hires.enabled": True, "txt2img.hires.denoise": 0.35,
               "txt2img.refiner.enabled": True, "txt2img.refiner.checkpoint": "ref.safetensors",
               "img2img.enabled": True, "img2img.resize_mode": "crop_and_resize",
               "adetailer.enabled": True, "adetailer.passes.0.model": "hand_yolov8n.pt",
               "upscale.enabled": True, "upscale.scale": 1.5}
    for path, value in changes.items():
        panel.editor(path).set_value(value)
    config = controller.build_config(panel.values())
    assert isinstance(config, PipelineConfig)
    assert config.txt2img.seed == 4_000_000_000
    assert config.txt2img.hires.denoise == pytest.approx(0.35)
    assert config.adetailer.passes[0].model == "hand_yolov8n.pt"
    assert config.img2img.resize_mode.value == "crop_and_resize"
    # Shown again in fresh cards, the values are exactly the same.
    other = window_for(dead_url, connect=False)
    other.session.pipeline.load_config(config)
    assert other.pipeline_panel.values() == panel.values()
    assert other.session.pipeline.build_config(other.pipeline_panel.values()) == config


def test_adetailer_second_pass_is_off_until_switched_on_and_round_trips(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    panel, controller = window.pipeline_panel, window.session.pipeline
    assert panel.editor("adetailer.passes.1.enabled").value() is False
    assert panel.editor("adetailer.passes.1.model").value() == "hand_yolov8n.pt"
    panel.editor("adetailer.enabled").set_value(True)
    panel.editor("adetailer.passes.1.denoise").set_value(0.3)  # edited, but the pass is off
    assert len(controller.build_config(panel.values()).adetailer.passes) == 1

    panel.editor("adetailer.passes.1.enabled").set_value(True)
    config = controller.build_config(panel.values())
    assert [p.model for p in config.adetailer.passes] == ["face_yolov8n.pt", "hand_yolov8n.pt"]
    assert config.adetailer.passes[1].denoise == pytest.approx(0.3)
    other = window_for(dead_url, connect=False)
    other.session.pipeline.load_config(config)
    assert other.pipeline_panel.editor("adetailer.passes.1.enabled").value() is True
    assert other.pipeline_panel.values() == panel.values()
    assert other.session.pipeline.build_config(other.pipeline_panel.values()) == config


def test_a_loaded_third_adetailer_pass_is_kept_while_the_card_edits_the_first_two(qtbot, window_for,
                                                                                   dead_url):
    window = window_for(dead_url, connect=False)
    panel, controller = window.pipeline_panel, window.session.pipeline
    three = PipelineConfig().with_changes({"adetailer.enabled": True}).model_dump(mode="json")
    three["adetailer"]["passes"] = [{"model": "face_yolov8n.pt"}, {"model": "hand_yolov8n.pt"},
                                    {"model": "person_yolov8n-seg.pt", "denoise": 0.2}]
    controller.load_config(PipelineConfig.model_validate(three))
    panel.editor("adetailer.passes.1.confidence").set_value(0.5)
    config = controller.build_config(panel.values())
    assert [p.model for p in config.adetailer.passes] == [
        "face_yolov8n.pt", "hand_yolov8n.pt", "person_yolov8n-seg.pt"]
    assert config.adetailer.passes[1].confidence == pytest.approx(0.5)
    assert config.adetailer.passes[2].denoise == pytest.approx(0.2)


def test_switching_the_second_adetailer_pass_off_keeps_a_loaded_third(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    panel, controller = window.pipeline_panel, window.session.pipeline
    three = PipelineConfig().with_changes({"adetailer.enabled": True}).model_dump(mode="json")
    three["adetailer"]["passes"] = [{"model": "face_yolov8n.pt"},
                                    {"model": "hand_yolov8n.pt", "confidence": 0.6},
                                    {"model": "person_yolov8n-seg.pt", "denoise": 0.2}]
    loaded = PipelineConfig.model_validate(three)
    controller.load_config(loaded)
    assert panel.editor("adetailer.passes.1.enabled").value() is True
    assert controller.build_config(panel.values()) == loaded, "cards -> config as loaded"

    panel.editor("adetailer.passes.1.enabled").set_value(False)
    config = controller.build_config(panel.values())
    assert [p.model for p in config.adetailer.passes] == [
        "face_yolov8n.pt", "hand_yolov8n.pt", "person_yolov8n-seg.pt"], "the third stays third"
    assert [p.enabled for p in config.adetailer.passes] == [True, False, True]
    assert config.adetailer.passes[2].denoise == pytest.approx(0.2)
    # A Run (here refused by the dead server) leaves its config behind; the cards still decide.
    assert controller.run(panel.values())
    qtbot.waitUntil(lambda: controller.state == "idle", timeout=10000)
    assert controller.build_config(panel.values()) == config

    panel.editor("adetailer.passes.1.enabled").set_value(True)  # back on: the hands pass, as it was
    assert controller.build_config(panel.values()) == loaded
    assert "still runs" in panel.editor("adetailer.passes.1.enabled").widget.toolTip()


def test_cards_take_titles_tooltips_and_limits_from_the_model(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    steps = window.pipeline_panel.editor("txt2img.steps")
    field = Txt2ImgSettings.model_fields["steps"]
    assert steps.spec.title == field.title
    assert field.description in steps.widget.toolTip()
    assert (steps.widget.minimum(), steps.widget.maximum()) == (1, 150)
    denoise = window.pipeline_panel.editor("img2img.denoise")
    assert "lower keeps more" in denoise.widget.toolTip()


def test_invalid_values_give_a_plain_error_and_no_run(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    window.pipeline_panel.editor("upscale.enabled").set_value(True)
    window.pipeline_panel.editor("upscale.scale").set_value(8.0)
    window.pipeline_panel.editor("txt2img.hires.enabled").set_value(True)
    window.pipeline_panel.editor("txt2img.hires.scale").set_value(4.0)
    assert window.session.pipeline.run(window.pipeline_panel.values()) is False
    assert "cannot run" in window.notice.message and "upscale" in window.notice.message.lower()
    assert window.session.pipeline.state == "idle"


def test_prompt_editor_overlay_edits_the_same_field(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    window.pipeline_panel.editor("txt2img.prompt").set_value("short")
    window.open_prompt_editor()
    overlay = window.prompt_overlay
    assert overlay.isVisible() and overlay.editor.toPlainText() == "short"
    overlay.editor.setPlainText("a much longer prompt, with many words")
    assert "characters" in overlay.stats.text() and "tokens" in overlay.stats.text()
    overlay.accept()
    assert not overlay.isVisible()
    assert window.pipeline_panel.values()["txt2img.prompt"] == "a much longer prompt, with many words"


def test_settings_dialog_refuses_a_bad_address_and_keeps_the_input(qtbot, window_for, dead_url):
    from stablenew.gui.settings_dialog import SettingsDialog

    window = window_for(dead_url, connect=False)
    dialog = SettingsDialog(window.session.app, window)
    qtbot.addWidget(dialog)
    dialog.editors["server_url"].set_value("localhost:7860")
    dialog.save()
    assert not dialog.error.isHidden() and "http://" in dialog.error.text()
    assert dialog.editors["server_url"].value() == "localhost:7860"
    dialog.editors["server_url"].set_value("http://127.0.0.1:7999")
    dialog.editors["theme"].set_value("dark")
    dialog.save()
    assert window.session.app.settings.server_url == "http://127.0.0.1:7999"
    assert window.session.app.theme == "dark"
    qtbot.waitUntil(lambda: window.session.app.paths.settings_file.exists()
                    and "7999" in window.session.app.paths.settings_file.read_text(), timeout=3000)


@pytest.mark.parametrize(("seconds", "words"), [
    (None, "estimating time left…"), (3, "a few seconds left"), (31, "about 30 s left"),
    (80, "about 1 min left"), (125, "about 2 min left"), (3600, "about 1 h left"),
    (5400, "about 1 h 30 min left")])
def test_eta_in_words(seconds, words):
    assert eta_in_words(seconds) == words


def test_token_estimate_ignores_lora_tags_and_counts_chunks():
    assert estimate_tokens("a cat, <lora:foo:0.7>") == 3
    assert "(2×75)" in prompt_stats("word " * 80)


def test_the_upscale_card_does_not_default_to_an_upscaler_the_server_lacks(qtbot, window_for):
    """Issue 17: a ComfyUI without upscale models; the card showed 'R-ESRGAN 4x+' anyway."""
    from tests.fakes.comfyui import FakeComfyUI

    with FakeComfyUI(upscale_models=()).running_in_thread() as comfy:
        window = window_for(comfy.url)
        editor = window.pipeline_panel.editors["upscale.upscaler"]
        qtbot.waitUntil(lambda: editor.widget.count() > 0, timeout=5000)
        listed = [editor.widget.itemText(i) for i in range(editor.widget.count())]
        assert "R-ESRGAN 4x+" not in listed
        assert editor.value() == "Lanczos" and editor.value() in listed
