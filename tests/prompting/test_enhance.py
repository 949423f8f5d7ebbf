"""Enhance against the fake LLM: the answer is cleaned and checked, a failure keeps the prompt."""

from __future__ import annotations

import pytest

from stablenew.prompting.client import LLMClient
from stablenew.prompting.enhance import check_enhanced, enhance, enhance_or_keep
from stablenew.prompting.errors import LLMBadOutput, LLMModelMissing
from stablenew.prompting.templates import ModelFamily, get_template

CINEMATIC = get_template("cinematic")
PROMPT = "a (red hair:1.2) woman, <lora:add_detail:0.8>, __city__ street"


async def test_the_system_prompt_carries_the_syntax_rules_and_the_style(fake_llm):
    fake_llm.reply(PROMPT + ", 85mm, rim light")
    async with LLMClient(fake_llm.url) as client:
        result = await enhance(client, PROMPT, CINEMATIC, model="llama3.2:3b")
    assert result.prompt == PROMPT + ", 85mm, rim light" and result.checks == []
    body = fake_llm.requests[-1][1]
    system, user = body["messages"]
    assert "(red hair:1.2)" in system["content"] and "<lora:name:0.8>" in system["content"]
    assert "__animal__" in system["content"] and "comma-separated" in system["content"]
    assert "75 tokens" in system["content"] and "film" in system["content"]
    assert user["content"] == f"Prompt: {PROMPT}"
    assert body["temperature"] == CINEMATIC.template.temperature


async def test_a_sloppy_answer_is_cleaned_and_its_syntax_restored(fake_llm):
    fake_llm.reply("Here is your enhanced prompt:\n\n\"a red hair woman on a neon city street, "
                   "<lora:add_detail:1>, <lora:film_noir:0.6>, 35mm\"",
                   think="The user wants a cinematic look. I will add a lens.")
    async with LLMClient(fake_llm.url) as client:
        result = await enhance(client, PROMPT, CINEMATIC, model="llama3.2:3b")
    assert result.prompt == ("a (red hair:1.2) woman on a neon city street, <lora:add_detail:0.8>, "
                             "35mm, __city__")
    assert "removed <lora:film_noir:0.6>, which the LLM made up" in result.checks
    assert result.original == PROMPT and result.template == "cinematic"


async def test_flux_asks_for_sentences(fake_llm):
    fake_llm.reply("A woman with red hair walks down a rainy street at night.")
    async with LLMClient(fake_llm.url) as client:
        result = await enhance(client, "woman, red hair, rain", CINEMATIC, model="llama3.2:3b",
                               family=ModelFamily.flux)
    assert "natural sentences" in fake_llm.requests[-1][1]["messages"][0]["content"]
    assert result.prompt == "A woman with red hair walks down a rainy street at night."


def test_parts_of_the_users_prompt_the_llm_dropped_come_back():
    text, notes = check_enhanced("a cat, red scarf", "a cat in the snow, soft light", ModelFamily.sdxl)
    assert text == "a cat in the snow, soft light, red scarf"
    assert notes == ["kept 'red scarf', which the LLM dropped"]


def test_only_added_phrases_are_trimmed_to_the_budget():
    added = ", ".join(f"detail number {i}" for i in range(60))
    text, notes = check_enhanced("a cat, red scarf", f"a cat, red scarf, {added}", ModelFamily.sd15)
    assert text.startswith("a cat, red scarf, detail number 0")
    from stablenew.prompting.syntax import estimate_tokens

    assert estimate_tokens(text) <= 75 and "trimmed" in notes[-1]


async def test_an_empty_answer_is_bad_output(fake_llm):
    fake_llm.reply("<think>Let me think about this for a long while", )
    async with LLMClient(fake_llm.url) as client:
        with pytest.raises(LLMBadOutput):
            await enhance(client, PROMPT, CINEMATIC, model="llama3.2:3b")


async def test_a_failing_llm_keeps_the_original_prompt_with_a_notice(fake_llm):
    async with LLMClient(fake_llm.url) as client:
        result = await enhance_or_keep(client, PROMPT, CINEMATIC, model="no-such-model")
    assert result.prompt == PROMPT and not result.changed
    assert isinstance(result.error, LLMModelMissing)
    assert result.notice.startswith("The prompt was not enhanced and is used as you wrote it:")


async def test_a_down_llm_keeps_the_original_prompt():
    async with LLMClient("http://127.0.0.1:9") as client:
        result = await enhance_or_keep(client, PROMPT, CINEMATIC, model="x")
    assert result.prompt == PROMPT and "No LLM server answers" in result.notice
