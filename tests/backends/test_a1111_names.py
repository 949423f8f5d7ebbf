"""A1111 makes an image without a LoRA it cannot find, and on the loaded model when the model
asked for is not an exact alias of one of its own; it says so only on its console, if at all.
The client asks before it sends: a model is sent as the server spells it, and a job whose LoRA
or model the server lacks is refused in words."""

from __future__ import annotations

import pytest

from stablenew.backends.a1111 import A1111Backend
from stablenew.backends.errors import MissingResource
from stablenew.backends.types import ADetailerJob, ADetailerPass, Sampling, Txt2ImgJob
from tests.backends.conftest import png
from tests.fakes.sdwebui import FakeSDWebUI

TXT2IMG = "/sdapi/v1/txt2img"


def job(prompt: str, negative: str = "", checkpoint: str = "") -> Txt2ImgJob:
    return Txt2ImgJob(Sampling(prompt=prompt, negative_prompt=negative, steps=2, width=64,
                               height=64, seed=7, checkpoint=checkpoint), task_id="t1")


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


def sent_checkpoints(fake: FakeSDWebUI) -> list[str]:
    return [r.payload["override_settings"].get("sd_model_checkpoint", "")
            for r in fake.requests_to(TXT2IMG)]


async def test_a_model_is_sent_as_the_server_spells_it(fake_sdwebui):
    """A preset from another PC names 'dreamshaper_8.safetensors'; this server keeps it in a
    subfolder, and A1111 would drop that name for the loaded model without a word."""
    async with client(fake_sdwebui) as backend:
        await backend.probe()
        result = await backend.txt2img(job("a fox", checkpoint="dreamshaper_8.safetensors"))
        await backend.txt2img(job("a fox", checkpoint="SD15_dreamshaper_8"))
    assert sent_checkpoints(fake_sdwebui) == ["SD15/dreamshaper_8.safetensors"] * 2
    assert not any("Checkpoint" in w for w in result.warnings), result.warnings
    assert result.ran is not None and "dreamshaper_8" in result.ran.checkpoint


async def test_a_model_the_server_lacks_is_refused_and_one_copied_in_is_found(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        await backend.probe()
        with pytest.raises(MissingResource) as err:
            await backend.txt2img(job("a fox", checkpoint="juggernautXL_v9.safetensors"))
        assert fake_sdwebui.requests_to(TXT2IMG) == []
        fake_sdwebui.add_files(checkpoints=("XL/juggernautXL_v9.safetensors",))
        await backend.txt2img(job("a fox", checkpoint="juggernautXL_v9.safetensors"))
    assert err.value.what == "checkpoint" and err.value.name == "juggernautXL_v9.safetensors"
    assert "sd_xl_base_1.0.safetensors" in str(err.value)
    assert sent_checkpoints(fake_sdwebui) == ["XL/juggernautXL_v9.safetensors"]
    assert len(fake_sdwebui.requests_to("/sdapi/v1/refresh-checkpoints")) == 2


async def test_a_model_named_by_its_hash_is_left_to_the_server(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        await backend.probe()
        await backend.txt2img(job("a fox", checkpoint="0123abcd"))
    assert sent_checkpoints(fake_sdwebui) == ["0123abcd"]
    assert fake_sdwebui.requests_to("/sdapi/v1/refresh-checkpoints") == []


async def test_a_lora_written_in_another_case_is_sent_as_the_server_names_it(fake_sdwebui):
    """A1111 finds a LoRA by its exact name: `<lora:Add_Detail>` for add_detail.safetensors
    would be left out in silence. It is sent as the server spells it, in every prompt."""
    async with client(fake_sdwebui) as backend:
        await backend.probe()
        await backend.txt2img(job("a fox, <LORA:Add_Detail:0.5>, <lora:film_grain>",
                                  negative="<lyco:FILM_GRAIN:0.2>"))
        passes = (ADetailerPass(prompt="a face, <lora:Add_Detail:0.3>"),)
        await backend.adetailer(ADetailerJob(Sampling(prompt="a fox", steps=2, width=64,
                                                      height=64), png(64, 64), "t3", passes))
    (sent,) = fake_sdwebui.requests_to(TXT2IMG)
    assert sent.payload["prompt"] == "a fox, <LORA:add_detail:0.5>, <lora:film_grain>"
    assert sent.payload["negative_prompt"] == "<lyco:film_grain:0.2>"
    (detail,) = fake_sdwebui.requests_to("/sdapi/v1/img2img")
    args = detail.payload["alwayson_scripts"]["ADetailer"]["args"]
    assert any(isinstance(a, dict) and a.get("ad_prompt") == "a face, <lora:add_detail:0.3>"
               for a in args), args
