"""Server LoRA lists against the fake A1111/Forge and ComfyUI servers over real HTTP."""

from __future__ import annotations

import json

import pytest

from stablenew.backends.errors import ProtocolError
from stablenew.backends.http import HttpClient
from stablenew.catalog.entry import BaseModel, ModelKind
from stablenew.catalog.index import scan
from stablenew.catalog.servers import (
    a1111_loras,
    a1111_refresh_loras,
    comfyui_loras,
    comfyui_metadata,
    merge_server_loras,
)
from tests.catalog.factory import write_model
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.sdwebui import FakeSDWebUI

NEON_META = {"ss_output_name": "neon_v2", "ss_base_model_version": "sdxl_base_v1-0",
             "modelspec.trigger_phrase": "neonstyle",
             "ss_tag_frequency": json.dumps({"10_neon": {"neon": 3, "city": 1}})}


@pytest.mark.parametrize("flavor", ["a1111", "forge"])
async def test_a1111_list_marks_availability_and_adds_server_only_loras(tmp_path, flavor):
    write_model(tmp_path / "loras" / "add_detail.safetensors", {"ss_output_name": "add_detail"})
    write_model(tmp_path / "loras" / "local_only.safetensors", {})
    catalog = scan([(tmp_path / "loras", ModelKind.lora)])
    async with FakeSDWebUI(flavor=flavor, loras=("add_detail", "style/neon")) as fake:
        fake.lora_metadata["style/neon"] = NEON_META
        http = HttpClient(fake.url, node="gpu1")
        try:
            items = await a1111_loras(http)
            await a1111_refresh_loras(http)
        finally:
            await http.aclose()
    assert [i.name for i in items] == ["add_detail", "neon"]
    neon = items[1]
    assert neon.alias == "neon_v2" and neon.path.endswith("Lora\\style\\neon.safetensors")
    # A1111 parses the tag list into an object; we keep it as the header's text.
    assert json.loads(neon.metadata["ss_tag_frequency"]) == {"10_neon": {"neon": 3, "city": 1}}
    assert len(fake.requests_to("/sdapi/v1/refresh-loras")) == 1

    added = merge_server_loras(catalog, "gpu1", items)
    assert [e.name for e in added] == ["neon"]
    server_neon = catalog.find("neon")
    assert server_neon.origin == "gpu1" and server_neon.base_model is BaseModel.sdxl
    assert server_neon.triggers == ["neonstyle"] and server_neon.tags == ["neon", "city"]
    assert server_neon.category == "style"
    assert catalog.available_on(catalog.find("add_detail"), "gpu1") is True
    assert catalog.available_on(catalog.find("local_only"), "gpu1") is False
    assert catalog.available_on(catalog.find("local_only"), "gpu2") is None
    assert catalog.nodes_with(catalog.find("add_detail")) == ["gpu1"]


async def test_a_lora_list_over_the_cap_is_refused_in_words():
    async with FakeSDWebUI(loras=("big",)) as fake:
        tags = {f"tag{i}": i for i in range(60000)}
        fake.lora_metadata["big"] = {"ss_tag_frequency": json.dumps({"d": tags})}
        http = HttpClient(fake.url)
        try:
            with pytest.raises(ProtocolError, match="much larger answer"):
                await a1111_loras(http, max_body=256 * 1024)
            assert len(await a1111_loras(http)) == 1  # under the normal cap it is read
        finally:
            await http.aclose()


async def test_comfyui_lora_choices_and_view_metadata(tmp_path):
    async with FakeComfyUI(loras=("Detail_Tweaker.safetensors", "style/ink.safetensors")) as fake:
        fake.model_metadata["style/ink.safetensors"] = {"ss_v2": "True", "ss_output_name": "ink"}
        http = HttpClient(fake.url, node="comfy")
        try:
            items = await comfyui_loras(http)
            ink = await comfyui_metadata(http, "style/ink.safetensors")
            none = await comfyui_metadata(http, "Detail_Tweaker.safetensors")
            missing = await comfyui_metadata(http, "nope.safetensors")
        finally:
            await http.aclose()
    assert [(i.name, i.path) for i in items] == [("Detail_Tweaker", "Detail_Tweaker.safetensors"),
                                                 ("ink", "style/ink.safetensors")]
    assert ink == {"ss_v2": "True", "ss_output_name": "ink"}
    assert none is None and missing is None
    write_model(tmp_path / "l" / "ink.safetensors", {})
    catalog = scan([(tmp_path / "l", ModelKind.lora)])
    added = merge_server_loras(catalog, "comfy", items)
    assert [e.name for e in added] == ["Detail_Tweaker"]  # the token keeps the file's case
    assert catalog.available_on(catalog.find("ink"), "comfy")
