"""What models wrap around answers comes off; JSON is found inside the wrapping."""

from __future__ import annotations

import pytest

from stablenew.prompting.cleaning import clean_prompt, extract_json, strip_think


@pytest.mark.parametrize("raw", [
    "a cat, golden hour",
    '"a cat, golden hour"',
    "Here is your enhanced prompt:\n\na cat, golden hour",
    "Sure! Here's an improved version:\n“a cat, golden hour”",
    "```\na cat, golden hour\n```",
    "```text\na cat, golden hour\n```\nI added lighting words.",
    "<think>\nThe user wants a cat. Add light.\n</think>\n\na cat, golden hour",
    "Enhanced prompt: a cat, golden hour",
    "Here is your prompt: a cat, golden hour",
    "Sure! Here's the enhanced prompt: a cat, golden hour",
    "**Prompt:** a cat, golden hour\n\nNote: golden hour gives warm light.",
    "a cat,\ngolden hour",
])
def test_wrapping_comes_off(raw):
    assert clean_prompt(raw) == "a cat, golden hour"


def test_sentences_are_joined_with_spaces():
    assert clean_prompt("A cat sleeps.\nGolden light falls.", sentences=True) == \
        "A cat sleeps. Golden light falls."


def test_syntax_survives_cleaning():
    assert clean_prompt("'(red hair:1.2), <lora:add_detail:0.8>, __animal__'") == \
        "(red hair:1.2), <lora:add_detail:0.8>, __animal__"


def test_an_unclosed_think_block_is_all_thinking():
    assert strip_think("<think>I should add light and") == ""
    assert strip_think("reasoning here</think>a cat") == "a cat"


@pytest.mark.parametrize("raw", [
    '{"keep": ["cat"]}',
    '```json\n{"keep": ["cat"]}\n```',
    '<think>hmm {not json}</think>\nHere you go: {"keep": ["cat"]} hope it helps',
])
def test_json_is_dug_out(raw):
    assert extract_json(raw) == {"keep": ["cat"]}


def test_no_json_is_a_value_error():
    with pytest.raises(ValueError):
        extract_json("I cannot help with that.")
