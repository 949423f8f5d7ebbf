"""A1111 makes an image without a LoRA it cannot find and says so only on its console: the
client asks before it sends, and refuses in words a job whose LoRA the server lacks."""

from __future__ import annotations

import pytest

from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.errors import MissingResource
from stablenew.backends.types import ADetailerJob, ADetailerPass, Sampling, Txt2ImgJob
from tests.backends.conftest import png
from tests.fakes.sdwebui import FakeSDWebUI

TXT2IMG = "/sdapi/v1/txt2img"


def job(prompt: str, negative: str = "") -> Txt2ImgJob:
    return Txt2ImgJob(Sampling(prompt=prompt, negative_prompt=negative, steps=2, width=64,
                               height=64, seed=7), task_id="t1")


def client(fake: FakeSDWebUI) -> A1111Backend:
    return A1111Backend(fake.url, name="den", poll_interval=0.01, timeout=10.0)


async def test_a_lora_the_server_lacks_is_refused_before_anything_runs(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        await backend.probe()
        with pytest.raises(MissingResource) as err:
            await backend.txt2img(job("a fox, <lora:add_detail:0.5>, <lyco:not_here:0.6>"))
        with pytest.raises(MissingResource):
            await backend.txt2img(job("a fox", negative="<lora:bad_hands_v2:1>"))
    assert err.value.what == "lora" and err.value.name == "not_here"
    assert "LoRA 'not_here' is not installed on node 'den'" in str(err.value)
    assert "add_detail" in str(err.value)  # what the server has instead
    assert fake_sdwebui.requests_to(TXT2IMG) == []
    # The server was asked to read its folder again before the job was refused.
    assert len(fake_sdwebui.requests_to("/sdapi/v1/refresh-loras")) == 2


async def test_a_lora_copied_in_after_the_probe_is_found_by_a_rescan(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        await backend.probe()
        fake_sdwebui.add_files(loras=("new_style",))
        result = await backend.txt2img(job("a fox, <LoRA:New_Style:0.8>, <lora:film_grain>"))
    assert len(result.images) == 1
    assert len(fake_sdwebui.requests_to(TXT2IMG)) == 1
    assert len(fake_sdwebui.requests_to("/sdapi/v1/refresh-loras")) == 1


async def test_prompts_without_loras_cost_no_request(fake_sdwebui):
    async with client(fake_sdwebui) as backend:  # no probe: the list is never read either
        await backend.txt2img(job("a fox"))
    assert fake_sdwebui.requests_to("/sdapi/v1/loras") == []


async def test_an_adetailer_pass_prompt_is_checked_too(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        passes = (ADetailerPass(prompt="a smiling face, <lora:face_fix_v3:0.7>"),)
        with pytest.raises(MissingResource) as err:
            await backend.adetailer(ADetailerJob(Sampling(prompt="a fox", steps=2, width=64,
                                                          height=64), png(64, 64), "t2", passes))
    assert err.value.name == "face_fix_v3"


@pytest.mark.parametrize("fake_sdwebui", [{"step_ms": 0, "loras": ()}], indirect=True)
async def test_a_server_that_lists_no_loras_decides_for_itself(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        await backend.probe()
        await backend.txt2img(job("a fox, <lora:anything:0.5>"))
    assert len(fake_sdwebui.requests_to(TXT2IMG)) == 1


async def test_a_lora_list_that_cannot_be_read_leaves_it_to_the_server(fake_sdwebui):
    fake_sdwebui.inject("500", path="/sdapi/v1/loras", times=5)
    async with client(fake_sdwebui) as backend:
        await backend.txt2img(job("a fox, <lora:anything:0.5>"))
    assert len(fake_sdwebui.requests_to(TXT2IMG)) == 1
