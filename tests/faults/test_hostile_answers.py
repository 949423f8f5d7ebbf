"""Both clients share one HTTP layer that bounds memory under hostile answers (huge chunked
bodies, endless streams, huge model lists), refuses redirects saying where they pointed, and
keeps nothing of a refused answer alive."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest

from stablenew.backends import http
from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.comfyui import ComfyUIBackend
from stablenew.backends.errors import AnswerTooLarge, BackendError, ProtocolError, Redirected
from stablenew.backends.http import DEFAULT_MAX_BODY, LISTING_MAX_BODY, HttpClient
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.hostile import MB, HostileNode
from tests.fakes.sdwebui import FakeSDWebUI

SLACK = 16 * MB  # socket buffers between the hostile writer and our reader


@pytest.fixture
async def a1111_node():
    async with FakeSDWebUI(step_ms=1) as fake, HostileNode(fake.url) as node:
        yield node


@pytest.fixture
async def comfy_node():
    async with FakeComfyUI(step_ms=1) as fake, HostileNode(fake.url) as node:
        yield node


async def test_a_huge_chunked_generation_answer_is_cut_off_at_the_cap(a1111_node):
    a1111_node.huge("/sdapi/v1/txt2img", 1500 * MB)
    client = HttpClient(a1111_node.url)
    try:
        with pytest.raises(AnswerTooLarge) as info:
            await client.request("POST", "/sdapi/v1/txt2img", json_body={}, timeout=60,
                                 max_body=DEFAULT_MAX_BODY)
    finally:
        await client.aclose()
    assert "protect memory" in info.value.message
    assert a1111_node.sent["/sdapi/v1/txt2img"] < DEFAULT_MAX_BODY + SLACK
    assert DEFAULT_MAX_BODY <= 128 * MB  # with the interpreter, under 300 MB for the process
    assert http.IN_FLIGHT.used == 0


async def test_an_endless_stream_ends_at_the_cap_not_at_the_deadline(a1111_node):
    a1111_node.endless("/sdapi/v1/progress")
    client = HttpClient(a1111_node.url)
    try:
        with pytest.raises(AnswerTooLarge):
            await client.request("GET", "/sdapi/v1/progress", timeout=60)
    finally:
        await client.aclose()
    assert a1111_node.sent["/sdapi/v1/progress"] < LISTING_MAX_BODY + SLACK


async def test_a_refused_answer_is_not_kept_alive_by_its_error(a1111_node):
    a1111_node.huge("/sdapi/v1/sd-models", 64 * MB)
    client = HttpClient(a1111_node.url)
    tracemalloc.start()
    try:
        try:
            await client.request("GET", "/sdapi/v1/sd-models", max_body=8 * MB)
        except AnswerTooLarge as exc:
            kept = exc  # held, as a node's last error is held for its status line
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await client.aclose()
    assert kept.__traceback__ is not None
    assert held < 2 * MB, f"{held / MB:.1f} MB still held after the refused answer"


async def test_huge_model_lists_are_refused_at_the_listing_cap(a1111_node):
    a1111_node.huge_list("/sdapi/v1/sd-models", 100 * MB)
    backend = A1111Backend(a1111_node.url)
    try:
        with pytest.raises(AnswerTooLarge):
            await backend.probe()
    finally:
        await backend.aclose()
    assert a1111_node.sent["/sdapi/v1/sd-models"] < 16 * MB + SLACK


async def test_comfyui_uses_the_same_layer_caps_and_words(comfy_node):
    comfy_node.huge_list("/object_info/CheckpointLoaderSimple", 100 * MB)
    backend = ComfyUIBackend(comfy_node.url, name="den")
    try:
        with pytest.raises(AnswerTooLarge) as info:
            await backend.probe()
    finally:
        await backend.aclose()
    assert "protect memory" in info.value.message and "(den)" in info.value.message
    assert comfy_node.sent["/object_info/CheckpointLoaderSimple"] < LISTING_MAX_BODY + SLACK


async def test_comfyui_has_a_whole_call_deadline(comfy_node, monkeypatch):
    # A server that drips forever used to hold a ComfyUI call open with no end (raw httpx has
    # per-read timeouts only); the shared layer gives every call one deadline.
    comfy_node.endless("/system_stats")
    monkeypatch.setattr(ComfyUIBackend, "short_timeout", 0.5)
    monkeypatch.setattr(http, "LISTING_MAX_BODY", 10**12)
    backend = ComfyUIBackend(comfy_node.url, name="den")
    try:
        with pytest.raises(AnswerTooLarge):
            await asyncio.wait_for(backend.ping(), 30)
    finally:
        await backend.aclose()


@pytest.mark.parametrize("kind", ["a1111", "comfyui"])
async def test_a_redirect_says_where_it_pointed_and_is_not_followed(a1111_node, comfy_node, kind):
    node = a1111_node if kind == "a1111" else comfy_node
    path = "/sdapi/v1/progress" if kind == "a1111" else "/system_stats"
    node.redirect(path, "https://user:secret@login.example.net/sso?next=/")
    backend = (A1111Backend(node.url, auth=("me", "pw")) if kind == "a1111"
               else ComfyUIBackend(node.url, auth=("me", "pw")))
    try:
        with pytest.raises(Redirected) as info:
            await backend.ping()
    finally:
        await backend.aclose()
    text = info.value.message
    assert "https://login.example.net/sso?next=/" in text
    assert "does not follow redirects" in text and "HTTP 302" in text
    assert "secret" not in text
    assert node.hits[path] == 1


async def test_answers_read_at_once_share_one_budget(a1111_node, monkeypatch):
    monkeypatch.setattr(http.IN_FLIGHT, "limit", 24 * MB)
    a1111_node.huge("/sdapi/v1/txt2img", 20 * MB)
    a1111_node.huge("/sdapi/v1/img2img", 20 * MB)
    client = HttpClient(a1111_node.url)
    gate = asyncio.Event()
    try:
        results = await asyncio.gather(
            *(client.request("POST", path, json_body={}, timeout=60, max_body=DEFAULT_MAX_BODY)
              for path in ("/sdapi/v1/txt2img", "/sdapi/v1/img2img")), return_exceptions=True)
    finally:
        gate.set()
        await client.aclose()
    refused = [r for r in results if isinstance(r, ProtocolError)]
    assert refused and "already reading" in refused[0].message and refused[0].transient
    assert http.IN_FLIGHT.used == 0


async def test_control_characters_from_a_server_never_reach_the_terminal(a1111_node):
    a1111_node.answer("/sdapi/v1/progress", {"error": "RuntimeError", "detail": "", "body": "",
                                             "errors": "\x1b]0;pwned\x07\x1b[2J boom\r"}, status=500)
    backend = A1111Backend(a1111_node.url)
    try:
        with pytest.raises(BackendError) as info:
            await backend.ping()
    finally:
        await backend.aclose()
    for text in (info.value.message, info.value.detail):
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\\x1b]0;pwned" in info.value.message and "boom" in info.value.message


async def test_health_checks_of_a_node_with_huge_model_lists_keep_memory_flat(a1111_node):
    from stablenew.cluster.health import NodeMonitor, NodeState
    from stablenew.cluster.nodes import NodeConfig

    a1111_node.huge_list("/sdapi/v1/sd-models", 100 * MB)
    monitor = NodeMonitor([NodeConfig(name="big", url=a1111_node.url, kind="a1111")],
                          timeout=30, probe_timeout=30)
    tracemalloc.start()
    held = []
    try:
        for _ in range(4):
            health = await monitor.check("big")
            gc.collect()
            held.append(tracemalloc.get_traced_memory()[0])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        await monitor.aclose()
    assert health.state is NodeState.unhealthy and "much larger answer" in health.message
    assert max(held) < 8 * MB, [f"{h / MB:.1f} MB" for h in held]  # nothing kept between checks
    assert peak < 24 * MB, f"a check of the lists peaked at {peak / MB:.0f} MB"
