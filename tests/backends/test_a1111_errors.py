"""Every failure the client can meet becomes a typed error with a readable message, in time."""

from __future__ import annotations

import socket
import time

import pytest

from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.errors import (
    AuthFailed,
    BackendError,
    ProtocolError,
    RequestRejected,
    ServerError,
    ServerTimeout,
    ServerUnreachable,
)
from stablenew.backends.types import Img2ImgJob, Sampling, Txt2ImgJob
from tests.backends.conftest import png

TXT2IMG = "/sdapi/v1/txt2img"


def job(task_id: str = "t") -> Txt2ImgJob:
    return Txt2ImgJob(Sampling(prompt="a fox", steps=4, width=64, height=64, seed=1), task_id=task_id)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("fault", "error", "words"), [
    ("500", ServerError, "CUDA out of memory"),
    ("422", RequestRejected, "steps"),
    ("truncated", ProtocolError, "cut off"),
    ("bad_base64", ProtocolError, "base64"),
    ("bad_image", ProtocolError, "not a PNG"),
    ("bad_json", ProtocolError, "not valid JSON"),
    ("drop", ServerUnreachable, "closed the connection"),
    ("stall", ServerTimeout, "did not answer within 0.3 seconds"),
    ("drip", ServerTimeout, "did not answer within 0.3 seconds"),
])
async def test_each_injected_fault_maps_to_its_typed_error(fake_sdwebui, fault, error, words):
    fake_sdwebui.inject(fault, path=TXT2IMG)
    # A short timeout only where the fault is about time: elsewhere a loaded CI box may be slow.
    timeout = 0.3 if error is ServerTimeout else 10.0
    async with A1111Backend(fake_sdwebui.url, timeout=timeout, poll_interval=0.05) as backend:
        started = time.monotonic()
        with pytest.raises(error) as caught:
            await backend.txt2img(job())
        elapsed = time.monotonic() - started
        assert words in caught.value.message
        assert caught.value.detail  # the log gets the precise story
        assert caught.value.node == backend.name
        assert elapsed < timeout + 2.0  # never hangs past the configured timeout
    # The fault was one-off: the next call works (with a timeout a loaded CI machine can meet).
    async with A1111Backend(fake_sdwebui.url, timeout=10) as backend:
        result = await backend.txt2img(job("after"))
    assert len(result.images) == 1


async def test_422_names_the_rejected_fields(fake_sdwebui):
    fake_sdwebui.inject("422", path=TXT2IMG)
    async with A1111Backend(fake_sdwebui.url) as backend:
        with pytest.raises(RequestRejected) as caught:
            await backend.txt2img(job())
    assert caught.value.fields == ("steps",)


async def test_500_out_of_memory_tells_what_to_try(fake_sdwebui):
    fake_sdwebui.inject("500", path=TXT2IMG)
    async with A1111Backend(fake_sdwebui.url) as backend:
        with pytest.raises(ServerError) as caught:
            await backend.txt2img(job())
    assert "Try a smaller size or batch" in caught.value.message
    assert caught.value.transient


@pytest.mark.parametrize("fake_sdwebui", [{"flavor": "forge"}], indirect=True)
async def test_forge_error_bodies_are_read_too(fake_sdwebui):
    fake_sdwebui.inject("500", path=TXT2IMG)
    async with A1111Backend(fake_sdwebui.url, kind="forge") as backend:
        with pytest.raises(ServerError) as caught:
            await backend.txt2img(job())
    assert "CUDA out of memory" in caught.value.message


async def test_listing_faults_are_typed_too(fake_sdwebui):
    async with A1111Backend(fake_sdwebui.url, timeout=10) as backend:
        fake_sdwebui.inject("bad_json", path="/sdapi/v1/samplers")
        with pytest.raises(ProtocolError):
            await backend.probe()
        fake_sdwebui.inject("drop", path="/sdapi/v1/options")
        with pytest.raises(ServerUnreachable):
            await backend.options()
    async with A1111Backend(fake_sdwebui.url, timeout=0.3) as backend:
        fake_sdwebui.inject("stall", path="/sdapi/v1/progress")
        with pytest.raises(ServerTimeout):
            await backend.ping()


async def test_oversized_body_is_refused(fake_sdwebui):
    async with A1111Backend(fake_sdwebui.url, max_body=2000) as backend:
        with pytest.raises(ProtocolError) as caught:
            await backend.txt2img(job())
    assert "larger answer than expected" in caught.value.message


async def test_unreachable_server_says_how_to_fix_it():
    url = f"http://127.0.0.1:{free_port()}"
    async with A1111Backend(url, kind="a1111", timeout=2) as backend:
        started = time.monotonic()
        with pytest.raises(ServerUnreachable) as caught:
            await backend.txt2img(job())
    assert time.monotonic() - started < 2
    assert caught.value.message == (
        f"No Stable Diffusion server answers at {url}. Start A1111/Forge with --api "
        "(or ComfyUI with --listen) and check the address in Settings.")
    assert caught.value.fatal_for_node


async def test_missing_init_image_and_bad_input_image(fake_sdwebui):
    async with A1111Backend(fake_sdwebui.url) as backend:
        bad = Img2ImgJob(Sampling(prompt="x"), init_image=b"\x89PNG\r\n\x1a\nbroken", task_id="bad")
        with pytest.raises(ServerError) as caught:
            await backend.img2img(bad)
        assert "Invalid encoded image" in caught.value.message
        ok = Img2ImgJob(Sampling(prompt="x", width=64, height=64), init_image=png(), task_id="ok")
        assert len((await backend.img2img(ok)).images) == 1


@pytest.mark.parametrize("fake_sdwebui", [{"auth": ("ann", "s3cret")}], indirect=True)
async def test_basic_auth_accepted_and_refused(fake_sdwebui):
    async with A1111Backend(fake_sdwebui.url, auth=("ann", "s3cret")) as backend:
        await backend.ping()
        caps = await backend.probe()
        assert caps.samplers
        assert len((await backend.txt2img(job())).images) == 1
    async with A1111Backend(fake_sdwebui.url) as backend:
        with pytest.raises(AuthFailed) as caught:
            await backend.ping()
        assert caught.value.message == (f"The server at {fake_sdwebui.url} wants a user name and password "
                                        "(--api-auth). Enter them in Settings.")
        assert (await backend.loras()) == ("add_detail", "film_grain")  # extension routes are open
    async with A1111Backend(fake_sdwebui.url, auth=("ann", "wrong")) as backend:
        with pytest.raises(AuthFailed) as caught:
            await backend.txt2img(job())
        assert "refused the user name and password" in caught.value.message


async def test_every_error_is_a_backend_error_with_plain_words(fake_sdwebui):
    """No raw httpx/JSON/Pillow exception escapes, whatever the fault."""
    async with A1111Backend(fake_sdwebui.url, timeout=10.0, kind="a1111") as backend:
        for fault in ("500", "422", "truncated", "bad_base64", "bad_image", "bad_json", "drop"):
            fake_sdwebui.inject(fault, path=TXT2IMG)
            with pytest.raises(BackendError) as caught:
                await backend.txt2img(job(fault))
            assert caught.value.message.endswith(".")
            assert "Traceback" not in caught.value.message


def test_decode_image_checks_the_whole_image():
    import base64

    from stablenew.backends.a1111 import decode_image

    good = png(30, 20)
    assert decode_image(base64.b64encode(good).decode(), "t", "http://x") == (good, (30, 20))
    with pytest.raises(ProtocolError) as caught:
        decode_image(base64.b64encode(good[:-40]).decode(), "t", "http://x", "node")
    assert "does not decode" in caught.value.message and caught.value.node == "node"
    with pytest.raises(ProtocolError):
        decode_image(None, "t", "http://x")
