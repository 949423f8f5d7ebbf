"""The LLM client against the fake server: both APIs, streaming, and every way it can fail."""

from __future__ import annotations

import asyncio
import logging

import pytest

from stablenew.pipeline.cancel import CancelToken
from stablenew.prompting.addresses import address_warning, normalise_url
from stablenew.prompting.client import LLMClient, LLMKind, image_message
from stablenew.prompting.errors import (
    LLMAnswerTooLarge,
    LLMAuthFailed,
    LLMCancelled,
    LLMModelMissing,
    LLMProtocolError,
    LLMRejected,
    LLMTimeout,
    LLMUnreachable,
)
from tests.fakes.llm import HUGE_ANSWER, FakeLLM

OLLAMA = pytest.mark.parametrize("fake_llm", [{"flavor": "ollama"}], indirect=True)
USER = [{"role": "user", "content": "a cat"}]


async def test_openai_server_is_detected_and_lists_its_models(fake_llm):
    async with LLMClient(fake_llm.url + "/v1/") as client:
        assert await client.detect() is LLMKind.openai
        assert await client.models() == ["llama3.2:3b", "llava:7b"]


@OLLAMA
async def test_ollama_is_detected_by_its_native_api(fake_llm):
    async with LLMClient(fake_llm.url) as client:
        assert await client.detect() is LLMKind.ollama
        assert await client.models() == ["llama3.2:3b", "llava:7b"]


async def test_openai_chat_streams_tokens_to_the_callback(fake_llm):
    fake_llm.reply("a cat, golden hour, 85mm")
    seen: list[str] = []
    async with LLMClient(fake_llm.url) as client:
        answer = await client.chat(USER, model="llama3.2:3b", on_token=seen.append, temperature=0.3)
    assert answer.text == "a cat, golden hour, 85mm"
    assert len(seen) > 3 and "".join(seen) == answer.text
    path, body = fake_llm.requests[-1]
    assert path == "/v1/chat/completions" and body["stream"] is True and body["temperature"] == 0.3


@OLLAMA
async def test_ollama_chat_goes_native_with_keep_alive(fake_llm):
    fake_llm.reply("a cat, rim light")
    seen: list[str] = []
    async with LLMClient(fake_llm.url) as client:
        answer = await client.chat(USER, model="llama3.2:3b", on_token=seen.append, keep_alive="10m",
                                   max_tokens=50)
        assert await client.loaded_models() == ["llama3.2:3b"]
        assert await client.unload("llama3.2:3b") is True
        assert await client.loaded_models() == []
    assert answer.text == "a cat, rim light" and "".join(seen) == answer.text
    path, body = fake_llm.requests[0]
    assert path == "/api/chat" and body["keep_alive"] == "10m" and body["options"]["num_predict"] == 50


async def test_openai_server_cannot_be_asked_to_unload(fake_llm):
    async with LLMClient(fake_llm.url) as client:
        assert await client.unload("llama3.2:3b") is False


@pytest.mark.parametrize("fake_llm", [{"flavor": "ollama"}, {"flavor": "openai"}], indirect=True)
async def test_unknown_model_is_a_typed_error_in_plain_words(fake_llm):
    async with LLMClient(fake_llm.url) as client:
        with pytest.raises(LLMModelMissing) as err:
            await client.chat(USER, model="mistral:7b")
    assert "no model called 'mistral:7b'" in err.value.message


@OLLAMA
async def test_images_go_to_ollama_as_bare_base64(fake_llm):
    fake_llm.reply("a red square on white")
    async with LLMClient(fake_llm.url) as client:
        await client.chat([image_message("Describe it.", b"\x89PNG fake")], model="llava:7b")
    body = fake_llm.requests[-1][1]
    assert body["messages"][0]["content"] == "Describe it."
    assert body["messages"][0]["images"] == ["iVBORyBmYWtl"]


async def test_a_model_without_vision_says_so(fake_llm):
    async with LLMClient(fake_llm.url) as client:
        with pytest.raises(LLMRejected) as err:
            await client.chat([image_message("Describe it.", b"png")], model="llama3.2:3b")
    assert "cannot look at images" in err.value.message
    body = fake_llm.requests[-1][1]
    assert body["messages"][0]["content"][1]["image_url"]["url"] == "data:image/png;base64,cG5n"


async def test_nothing_listening_is_unreachable():
    fake = FakeLLM()
    url = await fake.start()
    await fake.stop()
    async with LLMClient(url) as client:
        with pytest.raises(LLMUnreachable) as err:
            await client.detect()
    assert "No LLM server answers" in err.value.message


async def test_a_dropped_stream_is_a_protocol_error(fake_llm):
    fake_llm.reply("a cat sitting on a very long wall in the rain", drop_after=10)
    async with LLMClient(fake_llm.url) as client:
        with pytest.raises(LLMProtocolError) as err:
            await client.chat(USER, model="llama3.2:3b")
    assert "broke off" in err.value.message or "stopped answering" in err.value.message


async def test_a_2mb_answer_is_refused_as_it_arrives(fake_llm):
    fake_llm.reply(HUGE_ANSWER)
    seen: list[str] = []
    async with LLMClient(fake_llm.url) as client:
        with pytest.raises(LLMAnswerTooLarge):
            await client.chat(USER, model="llama3.2:3b", on_token=seen.append)
    # Refused at the cap (256 KB), not after reading all of it.
    assert sum(map(len, seen)) <= 256 * 1024


async def test_tokens_too_slow_time_out_on_the_idle_deadline(fake_llm):
    fake_llm.reply("one two three four", token_ms=2000)
    async with LLMClient(fake_llm.url, first_token_timeout=0.3, idle_timeout=0.3) as client:
        with pytest.raises(LLMTimeout) as err:
            await client.chat(USER, model="llama3.2:3b")
    assert "stopped sending" in err.value.message


async def test_a_slow_whole_answer_times_out_on_the_total_deadline(fake_llm):
    fake_llm.reply("one two three four five six seven eight", token_ms=100)
    async with LLMClient(fake_llm.url, timeout=0.3) as client:
        with pytest.raises(LLMTimeout) as err:
            await client.chat(USER, model="llama3.2:3b")
    assert "did not finish within 0.3 seconds" in err.value.message


async def test_cancel_stops_a_streaming_answer_at_once(fake_llm):
    fake_llm.reply("one two three four five six seven eight", token_ms=500)
    token = CancelToken()
    seen: list[str] = []

    def first_token(text: str) -> None:
        seen.append(text)
        token.cancel()

    async with LLMClient(fake_llm.url) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(LLMCancelled):
            await client.chat(USER, model="llama3.2:3b", on_token=first_token, cancel=token)
        assert asyncio.get_running_loop().time() - started < 1.5
    assert len(seen) == 1


async def test_api_key_is_sent_and_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    async with FakeLLM(api_key="sk-secret-123") as fake:
        async with LLMClient(fake.url) as client:
            with pytest.raises(LLMAuthFailed):
                await client.detect()
        fake.reply("a cat")
        async with LLMClient(fake.url, api_key="sk-secret-123") as client:
            assert (await client.chat(USER, model="llama3.2:3b")).text == "a cat"
            assert "sk-secret" not in repr(client)
    assert "sk-secret" not in caplog.text


@pytest.mark.parametrize("url", ["http://127.0.0.1:1234", "http://localhost:11434",
                                 "http://192.168.1.20:1234", "http://10.0.0.5:8080",
                                 "http://gpu-box:1234", "http://studio.local:1234", "http://[::1]:8000",
                                 "http://100.101.102.103:11434"])
def test_local_addresses_need_no_warning(url):
    assert address_warning(url) is None


@pytest.mark.parametrize("url", ["https://api.example.com", "http://8.8.8.8:1234"])
def test_addresses_outside_home_are_warned_about(url):
    warning = address_warning(url)
    assert warning and "not on this computer or your local network" in warning


def test_pasted_openai_base_urls_are_normalised():
    assert normalise_url("localhost:1234/v1/") == "http://localhost:1234"
