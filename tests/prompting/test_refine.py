"""Refine from feedback: interpret (validated, one retry), rewrite (held to the changes in
code, with a diff), describe (vision, base64 in the OpenAI format), and the intent document."""

from __future__ import annotations

import base64
import json

import pytest

from stablenew.prompting.client import LLMClient
from stablenew.prompting.errors import LLMBadOutput
from stablenew.prompting.intent import FeedbackRound, IntentDocument
from stablenew.prompting.refine import (
    Changes,
    check_rewrite,
    describe,
    interpret,
    parse_changes,
    prompt_diff,
    refine,
)
from stablenew.prompting.templates import ModelFamily

PROMPT = "a woman in a red coat, standing pose, city street, daylight, <lora:add_detail:0.8>"
FEEDBACK = "moodier, keep the pose, rainy city behind her, no daylight"
CHANGES = {"keep": ["standing pose"], "remove": ["daylight"], "add": ["rainy city", "moody"],
           "modify": [{"from": "city street", "to": "rainy city street"}],
           "emphasis_up": ["red coat"], "emphasis_down": []}
MODEL = "llama3.2:3b"


def test_changes_validate_and_refuse_contradictions():
    changes = parse_changes(json.dumps(CHANGES))
    assert changes.modify[0].from_ == "city street"
    with pytest.raises(ValueError, match="both keep and remove"):
        Changes(keep=["rain"], remove=["Rain"])
    with pytest.raises(ValueError):
        parse_changes('{"keep": "not a list"}')


async def test_interpret_reads_json_in_fences_after_thinking(fake_llm):
    fake_llm.reply(json.dumps(CHANGES), fence=True, think="The user wants rain.")
    async with LLMClient(fake_llm.url) as client:
        changes, attempts = await interpret(client, PROMPT, FEEDBACK, model=MODEL,
                                            picked=["a woman under neon"], rejected=["bright beach"])
    assert attempts == 1 and changes.remove == ["daylight"]
    user = fake_llm.requests[-1][1]["messages"][1]["content"]
    assert FEEDBACK in user and "liked shows: a woman under neon" in user
    assert "rejected shows: bright beach" in user


async def test_interpret_retries_once_with_the_validation_error(fake_llm):
    fake_llm.reply('{"keep": "standing pose", "remove": []}')
    fake_llm.reply(json.dumps(CHANGES))
    async with LLMClient(fake_llm.url) as client:
        changes, attempts = await interpret(client, PROMPT, FEEDBACK, model=MODEL)
    assert attempts == 2 and changes.keep == ["standing pose"]
    retry = fake_llm.requests[-1][1]["messages"]
    assert retry[-2]["role"] == "assistant"
    assert "keep: Input should be a valid list" in retry[-1]["content"]


async def test_two_bad_answers_are_bad_output(fake_llm):
    fake_llm.reply("Sure, the user wants it moodier!")
    fake_llm.reply("I think it should be darker.")
    async with LLMClient(fake_llm.url) as client:
        with pytest.raises(LLMBadOutput) as err:
            await interpret(client, PROMPT, FEEDBACK, model=MODEL)
    assert "no JSON object" in err.value.detail and len(fake_llm.requests) == 2


def test_the_rewrite_is_held_to_the_changes():
    changes = Changes.model_validate(CHANGES)
    # The LLM dropped the pose, kept daylight, forgot "moody", invented "bokeh, masterpiece",
    # and changed the LoRA strength.
    answer = ("a woman in a red coat, rainy city street, daylight, bokeh, masterpiece, "
              "<lora:add_detail:1.0>, rainy city")
    text, notes, unasked = check_rewrite(PROMPT, answer, changes, ModelFamily.sdxl)
    assert text == ("a woman in a (red coat:1.2), rainy city street, <lora:add_detail:0.8>, "
                    "rainy city, standing pose, moody")
    assert "took out 'daylight', which you asked to remove" in notes
    assert "kept 'standing pose', which the LLM dropped" in notes
    assert "dropped 'bokeh', which nobody asked for" in notes
    assert "dropped 'masterpiece', which nobody asked for" in notes
    assert "weighted 'red coat' as (red coat:1.2)" in notes
    assert unasked == []


def test_words_from_a_picked_image_may_come_in():
    changes = Changes(keep=["a cat"])
    text, notes, _ = check_rewrite("a cat", "a cat, neon glow", changes, ModelFamily.sdxl,
                                   descriptions=["a cat under neon glow"])
    assert text == "a cat, neon glow" and notes == []


def test_sentences_keep_unasked_words_but_name_them():
    changes = Changes(add=["rain"])
    text, _, unasked = check_rewrite("A woman walks.", "A woman walks in gentle rain, ethereal.",
                                     changes, ModelFamily.flux)
    assert "ethereal" in text and unasked == ["ethereal", "gentle"]


def test_diff_shows_parts_gone_and_new():
    assert prompt_diff("a cat, daylight, snow", "a cat, night, snow, (moody:1.2)") == \
        ["- daylight", "+ night", "+ (moody:1.2)"]


async def test_refine_runs_the_steps_and_feeds_the_intent_document(fake_llm):
    fake_llm.reply(json.dumps(CHANGES))
    fake_llm.reply("Here is the prompt:\nA woman in a (red coat:1.2), standing pose, rainy city "
                   "street, moody, <lora:add_detail:0.8>, rainy city")
    intent = IntentDocument()
    async with LLMClient(fake_llm.url) as client:
        result = await refine(client, PROMPT, FEEDBACK, model=MODEL, intent=intent,
                              rejected=["a sunny beach"])
    assert "daylight" not in result.prompt and "standing pose" in result.prompt
    assert "- daylight" in result.diff and "+ moody" in result.diff
    rewrite_user = fake_llm.requests[-1][1]["messages"][1]["content"]
    assert '"remove": ["daylight"]' in rewrite_user
    assert intent.avoid == ["daylight", "city street"] and "moody" in intent.preferences
    assert intent.rejected_images == ["a sunny beach"] and intent.rounds[0].feedback == FEEDBACK

    # The next round's interpret step sees the session so far.
    fake_llm.reply('{"emphasis_up": ["moody"]}')
    fake_llm.reply(result.prompt.replace("moody", "(moody:1.2)"))
    async with LLMClient(fake_llm.url) as client:
        again = await refine(client, result.prompt, "even moodier", model=MODEL, intent=intent)
    interpret_user = fake_llm.requests[-2][1]["messages"][1]["content"]
    assert "The user does not want: daylight, city street" in interpret_user
    assert "Feedback 1: " + FEEDBACK in interpret_user
    assert "(moody:1.2)" in again.prompt and len(intent.rounds) == 2


def test_the_intent_document_saves_and_loads(tmp_path):
    intent = IntentDocument(goal="a cat", avoid=["daylight"])
    intent.rounds.append(FeedbackRound(feedback="x", changes=Changes.model_validate(CHANGES),
                                       before="a", after="b"))
    path = intent.save(tmp_path / "session.intent.yaml")
    assert IntentDocument.load(path) == intent


@pytest.mark.parametrize("fake_llm", [{"flavor": "openai"}, {"flavor": "ollama"}], indirect=True)
async def test_describe_sends_the_image_as_base64(fake_llm):
    fake_llm.reply("Sure! Here is the description:\nwoman under neon lights, rain, teal and magenta")
    png = b"\x89PNG\r\n\x1a\n fake image bytes"
    async with LLMClient(fake_llm.url) as client:
        text = await describe(client, png, model="llava:7b")
    assert text == "woman under neon lights, rain, teal and magenta"
    path, body = fake_llm.requests[-1]
    b64 = base64.b64encode(png).decode()
    if path == "/v1/chat/completions":
        assert body["messages"][0]["content"][1]["image_url"]["url"] == f"data:image/png;base64,{b64}"
    else:
        assert body["messages"][0]["images"] == [b64]
