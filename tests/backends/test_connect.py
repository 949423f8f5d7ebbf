"""connect(): an address becomes the right backend, its kind found by probing or stated."""

from __future__ import annotations

import socket

import pytest

from stablenew.backends import Backend
from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.connect import connect
from stablenew.backends.errors import AuthFailed, ServerUnreachable
from stablenew.backends.types import BackendKind
from tests.fakes.sdwebui import FakeSDWebUI


@pytest.mark.parametrize("flavor", ["a1111", "forge", "sdnext"])
async def test_detects_each_webui_kind(flavor):
    async with FakeSDWebUI(flavor=flavor) as fake:
        backend = await connect(fake.url)
        try:
            assert isinstance(backend, A1111Backend) and isinstance(backend, Backend)
            assert backend.kind == BackendKind(flavor)
            assert (await backend.probe()).kind == BackendKind(flavor)
        finally:
            await backend.aclose()


async def test_stated_kind_skips_probing():
    async with FakeSDWebUI(flavor="forge") as fake:
        backend = await connect(fake.url, kind="forge", name="big box")
        await backend.aclose()
    assert backend.kind == BackendKind.forge and backend.name == "big box"
    assert fake.requests == []


async def test_kind_is_detected_lazily_by_the_backend_itself():
    async with FakeSDWebUI(flavor="forge") as fake, A1111Backend(fake.url) as backend:
        assert await backend.resolve_kind() == BackendKind.forge


async def test_address_without_scheme_is_accepted():
    async with FakeSDWebUI() as fake:
        backend = await connect(fake.url.removeprefix("http://") + "/")
        await backend.aclose()
    assert backend.url == fake.url


async def test_unreachable_address_gives_the_plain_message():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(ServerUnreachable) as caught:
        await connect(url, timeout=3)
    assert caught.value.message == (
        f"No Stable Diffusion server answers at {url}. Start A1111/Forge with --api "
        "(or ComfyUI with --listen) and check the address in Settings.")


async def test_auth_is_used_while_detecting():
    async with FakeSDWebUI(flavor="forge", auth=("u", "p")) as fake:
        backend = await connect(fake.url, auth=("u", "p"))
        await backend.aclose()
        assert backend.kind == BackendKind.forge
        with pytest.raises(AuthFailed):
            await connect(fake.url)


async def test_detects_comfyui():
    comfy_fake = pytest.importorskip("tests.fakes.comfyui", reason="the ComfyUI fake is not there yet")
    comfy = pytest.importorskip("stablenew.backends.comfyui", reason="the ComfyUI client is not there yet")
    async with comfy_fake.FakeComfyUI() as fake:
        backend = await connect(fake.url)
        await backend.aclose()
    assert isinstance(backend, comfy.ComfyUIBackend)
    assert backend.kind == BackendKind.comfyui
