"""The enhance step before a variant's first stage, through the real runner and fake servers:
the infotext carries what was sent, our chunk the original prompt and the template."""

from __future__ import annotations

import asyncio

from pydantic import SecretStr

from stablenew.backends.a1111 import A1111Backend
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.events import RunStatus
from stablenew.pipeline.infotext import read_image_metadata
from stablenew.pipeline.records import RunTags
from stablenew.pipeline.runner import PipelineRunner
from stablenew.prompting.step import EnhanceOptions, PromptEnhancer, family_for_checkpoint
from stablenew.prompting.templates import ModelFamily
from stablenew.storage.settings import AppSettings
from tests.fakes.llm import FakeLLM
from tests.fakes.sdwebui import FakeSDWebUI
from tests.pipeline.conftest import small_config

PROMPT = "a red fox, (snow:1.1), <lora:add_detail:0.8>"


async def test_an_enhanced_variant_runs_and_its_image_keeps_both_prompts(tmp_path):
    async with FakeLLM() as llm, FakeSDWebUI(step_ms=1) as sd:
        llm.reply("Here is your prompt: a red fox, snow, <lora:add_detail:0.8>, golden hour, 85mm")
        enhancer = PromptEnhancer(EnhanceOptions(llm.url, template="cinematic"))
        config = small_config(**{"txt2img.prompt": PROMPT})
        sent, tags, result = await enhancer.prepare(config, RunTags(variant_id="v1"))
        await enhancer.aclose()
        assert result.error is None
        assert sent.txt2img.prompt == "a red fox, (snow:1.1), <lora:add_detail:0.8>, golden hour, 85mm"
        assert tags == RunTags(variant_id="v1", original_prompt=PROMPT, enhance_template="cinematic")
        assert llm.requests[-1][1]["seed"] == 1000  # the variant's seed: same question, same answer

        backend = A1111Backend(sd.url)
        try:
            run = await asyncio.wait_for(PipelineRunner(tmp_path / "out").run(
                sent, backend, CancelToken(), tags=tags), 30)
        finally:
            await backend.aclose()
    assert run.status is RunStatus.completed, run.errors
    meta = read_image_metadata(run.records[0].path)
    assert meta.parsed["Prompt"] == sent.txt2img.prompt  # what was sent
    assert meta.stablenew["tags"]["original_prompt"] == PROMPT
    assert meta.stablenew["tags"]["enhance_template"] == "cinematic"
    assert run.records[0].tags.original_prompt == PROMPT  # what the learning hook receives


async def test_a_down_llm_leaves_the_variant_as_it_was(tmp_path):
    llm = FakeLLM()
    url = await llm.start()
    await llm.stop()
    enhancer = PromptEnhancer(EnhanceOptions(url, model="llama3.2:3b"))
    config = small_config(**{"txt2img.prompt": PROMPT})
    sent, tags, result = await enhancer.prepare(config)
    await enhancer.aclose()
    assert sent is config and tags == RunTags()
    assert result.notice.startswith("The prompt was not enhanced")


async def test_the_same_variant_is_asked_once_and_the_llm_unloaded_before_generating():
    async with FakeLLM(flavor="ollama") as llm:
        enhancer = PromptEnhancer(EnhanceOptions(llm.url, unload_before_generate=True))
        config = small_config()
        first = await enhancer.prepare(config)
        again = await enhancer.prepare(config)
        assert first[0] == again[0] and len([r for r in llm.requests if r[1]["messages"]]) == 1
        assert llm.loaded
        assert await enhancer.before_generate() == ""
        assert llm.loaded == {}
        await enhancer.aclose()


def test_options_come_from_settings_only_when_switched_on():
    assert EnhanceOptions.from_settings(AppSettings(llm_url="http://127.0.0.1:1234")) is None
    assert EnhanceOptions.from_settings(AppSettings(llm_enhance=True)) is None
    options = EnhanceOptions.from_settings(AppSettings(
        llm_enhance=True, llm_url="http://127.0.0.1:1234", llm_api_key=SecretStr("k"),
        llm_template="anime", llm_unload_before_generate=True))
    assert options == EnhanceOptions("http://127.0.0.1:1234", "", "k", "anime", True)


def test_the_family_follows_the_checkpoint_name():
    assert family_for_checkpoint("flux1-dev-fp8.safetensors") is ModelFamily.flux
    assert family_for_checkpoint("SD15/dreamshaper_8.safetensors") is ModelFamily.sd15
    assert family_for_checkpoint("ponyDiffusionV6XL.safetensors") is ModelFamily.pony
    assert family_for_checkpoint("sd_xl_base_1.0.safetensors") is ModelFamily.sdxl
    assert family_for_checkpoint("") is ModelFamily.sdxl


def test_a_run_in_the_window_is_enhanced_when_settings_turn_it_on(qtbot, qloop, tmp_path):
    """Issue 20's hook: every Run, batch and learning run goes through the runner's prompt
    step; with Enhance on in the settings, the server gets the enhanced prompt and the image
    keeps the one the user typed."""
    from PySide6.QtCore import Qt

    from stablenew.controller.app_controller import start_up
    from stablenew.gui.main_window import build_main_window
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import save_settings
    from tests.gui.conftest import close_window

    with FakeLLM().running_in_thread() as llm, FakeSDWebUI(step_ms=1).running_in_thread() as sd:
        llm.reply("a red fox in the snow, golden hour, 85mm")
        save_settings(AppPaths.default(), AppSettings(server_url=sd.url, llm_enhance=True,
                                                      llm_url=llm.url, llm_template="cinematic"))
        window = build_main_window(start_up())
        window.show()
        window.start_after_first_paint()
        try:
            qtbot.waitUntil(lambda: window.session.server.state == "connected", timeout=60000)
            qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=10000)
            for path, value in {"txt2img.prompt": "a red fox", "txt2img.steps": 2,
                                "txt2img.width": 64, "txt2img.height": 64}.items():
                window.pipeline_panel.editor(path).set_value(value)
            saved = []
            window.session.queued_image_saved.connect(saved.append)
            qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: len(saved) == 1, timeout=30000)
        finally:
            close_window(window)
            window.close()
    sent = sd.requests_to("/sdapi/v1/txt2img")[-1].payload["prompt"]
    assert sent == "a red fox in the snow, golden hour, 85mm"
    meta = read_image_metadata(saved[0].path)
    assert meta.parsed["Prompt"] == sent
    assert meta.stablenew["tags"]["original_prompt"] == "a red fox"
    assert meta.stablenew["tags"]["enhance_template"] == "cinematic"


def test_queue_run_enhances_when_settings_turn_it_on(tmp_path):
    from stablenew.cli import main
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import save_settings

    with FakeLLM().running_in_thread() as llm, FakeSDWebUI(step_ms=1).running_in_thread() as sd:
        llm.reply("a red fox in the snow, golden hour")
        save_settings(AppPaths.default(), AppSettings(llm_enhance=True, llm_url=llm.url))
        config = tmp_path / "fox.yaml"
        config.write_text(small_config(**{"txt2img.prompt": "a red fox"}).to_yaml(), encoding="utf-8")
        assert main(["queue", "add", str(config), "--output", str(tmp_path / "out")]) == 0
        assert main(["queue", "run", "--node", sd.url, "--until-empty", "--quiet"]) == 0
    assert sd.requests_to("/sdapi/v1/txt2img")[-1].payload["prompt"] == "a red fox in the snow, golden hour"
