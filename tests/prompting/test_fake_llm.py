"""The fake LLM speaks the shapes of /work/shared/reference/local-llm-apis.md (raw HTTP here)."""

from __future__ import annotations

import json

import httpx
import pytest

OLLAMA = pytest.mark.parametrize("fake_llm", [{"flavor": "ollama"}], indirect=True)


async def test_openai_answers_whole_or_as_sse_ending_in_done(fake_llm):
    fake_llm.reply("a cat")
    fake_llm.reply("a dog")
    async with httpx.AsyncClient(base_url=fake_llm.url) as http:
        whole = (await http.post("/v1/chat/completions", json={
            "model": "llama3.2:3b", "messages": [{"role": "user", "content": "x"}]})).json()
        assert whole["choices"][0]["message"]["content"] == "a cat"
        sse = (await http.post("/v1/chat/completions", json={
            "model": "llama3.2:3b", "stream": True, "messages": [{"role": "user", "content": "x"}]})).text
    lines = [line for line in sse.split("\n") if line]
    assert lines[-1] == "data: [DONE]"
    deltas = [json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in lines[:-1]]
    assert "".join(deltas) == "a dog"


@OLLAMA
async def test_ollama_native_streams_ndjson_by_default_and_404s_unknown_models(fake_llm):
    fake_llm.reply("a cat")
    async with httpx.AsyncClient(base_url=fake_llm.url) as http:
        ndjson = (await http.post("/api/chat", json={
            "model": "llama3.2:3b", "messages": [{"role": "user", "content": "x"}]})).text
        missing = await http.post("/api/chat", json={"model": "x", "messages": []})
        v1_missing = await http.post("/v1/chat/completions", json={"model": "x", "messages": []})
    objects = [json.loads(line) for line in ndjson.splitlines()]
    assert "".join(o["message"]["content"] for o in objects) == "a cat" and objects[-1]["done"]
    assert missing.status_code == 404 and missing.json() == {"error": "model 'x' not found"}
    assert v1_missing.status_code == 404
    assert "not found, try pulling it first" in v1_missing.json()["error"]["message"]


@OLLAMA
async def test_ollama_unloads_with_keep_alive_zero(fake_llm):
    async with httpx.AsyncClient(base_url=fake_llm.url) as http:
        await http.post("/api/chat", json={"model": "llama3.2:3b", "messages": [], "keep_alive": "5m"})
        assert [m["name"] for m in (await http.get("/api/ps")).json()["models"]] == ["llama3.2:3b"]
        gone = (await http.post("/api/chat", json={"model": "llama3.2:3b", "messages": [],
                                                   "keep_alive": 0})).json()
        assert gone["done_reason"] == "unload"
        assert (await http.get("/api/ps")).json()["models"] == []


async def test_an_openai_only_server_has_no_native_routes(fake_llm):
    async with httpx.AsyncClient(base_url=fake_llm.url) as http:
        assert (await http.get("/api/tags")).status_code == 404
