"""An image made on ComfyUI names the LoRAs of its graph's LoraLoader chain in `Lora hashes`
as A1111 writes them (name: AutoV3), from the catalog's hashes, so CivitAI and image browsers
recognise them; the fake ComfyUI over real HTTP + WS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stablenew.backends.connect import connect
from stablenew.catalog.entry import ModelKind
from stablenew.catalog.hashes import hash_entries
from stablenew.catalog.index import scan
from stablenew.catalog.prompt import lora_hashes_for_files
from stablenew.cli import main
from stablenew.community.meta import parse_item
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.events import RunStatus
from stablenew.pipeline.infotext import read_image_metadata
from stablenew.pipeline.runner import PipelineRunner
from tests.catalog.factory import SD1_KEYS, write_model
from tests.fakes.comfyui import FakeComfyUI


@pytest.fixture
def catalog(tmp_path):
    loras = tmp_path / "loras"
    write_model(loras / "style" / "neon.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS,
                tensor_bytes=32, fill=b"\x07")
    write_model(loras / "grain.safetensors", {"sshs_model_hash": "9f" * 32})
    write_model(loras / "unhashed.safetensors", {})
    found = scan([(loras, ModelKind.lora)])
    hash_entries([e for e in found.entries if e.name != "unhashed"], None)
    return found


def config(prompt: str) -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.prompt": prompt, "txt2img.checkpoint": "sd15_base.safetensors",
        "txt2img.width": 64, "txt2img.height": 64, "txt2img.steps": 2, "txt2img.seed": 7})


async def test_comfyui_image_carries_lora_hashes_of_its_loraloader_chain(tmp_path, catalog):
    neon, grain = catalog.find("neon"), catalog.find("grain")
    assert neon.autov3 and grain.autov3 == "9f" * 6 and catalog.find("unhashed").autov3 is None
    async with FakeComfyUI(step_ms=1, loras=("style/neon.safetensors", "grain.safetensors",
                                             "unhashed.safetensors")) as fake:
        backend = await connect(fake.url, timeout=20)
        try:
            runner = PipelineRunner(tmp_path / "out",
                                    lora_hashes=lambda files: lora_hashes_for_files(files, catalog))
            prompt = "a city at night, <lora:neon:0.7>, <lora:grain:0.3>, <lora:unhashed:1>"
            result = await asyncio.wait_for(runner.run(config(prompt), backend, CancelToken()), 20)
        finally:
            await backend.aclose()
        graph = fake.received[-1]["prompt"]
    assert result.status is RunStatus.completed, result.errors
    loaders = [n["inputs"]["lora_name"] for n in graph.values() if n["class_type"] == "LoraLoader"]
    assert loaders == ["style/neon.safetensors", "grain.safetensors", "unhashed.safetensors"]
    meta = read_image_metadata(result.records[0].path)
    expected = f"neon: {neon.autov3}, grain: {'9f' * 6}"  # no hash known: left out, as A1111 does
    assert meta.parsed["Lora hashes"] == expected
    assert f'Lora hashes: "{expected}"' in meta.parameters  # quoted, as A1111 writes it
    # Before the Version key, after the base generation's, where A1111 puts it.
    line = meta.parameters.splitlines()[-1]
    assert line.index("Seed: 7") < line.index("Lora hashes") < line.index("Version:")
    # The prompt keeps its <lora:…> tags, so a reader pairs each hash with its weight;
    assert meta.parsed["Prompt"] == prompt
    # CivitAI keeps an uploaded A1111 image's line in its meta: both LoRAs are found by hash.
    image, _why = parse_item({"id": 1, "meta": {"prompt": meta.parsed["Prompt"],
                                                "Lora hashes": meta.parsed["Lora hashes"]}})
    assert image is not None
    refs = {ref.name: (ref.weight, ref.hash) for ref in image.loras if ref.hash}
    assert refs == {"neon": (0.7, neon.autov3), "grain": (0.3, "9f" * 6)}


async def test_without_the_catalog_the_image_has_no_lora_hashes(tmp_path):
    async with FakeComfyUI(step_ms=1, loras=("neon.safetensors",)) as fake:
        backend = await connect(fake.url, timeout=20)
        try:
            result = await asyncio.wait_for(PipelineRunner(tmp_path / "out").run(
                config("a city, <lora:neon:0.7>"), backend, CancelToken()), 20)
        finally:
            await backend.aclose()
    assert result.status is RunStatus.completed, result.errors
    assert "Lora hashes" not in read_image_metadata(result.records[0].path).parsed


def test_stablenew_run_on_comfyui_names_the_hashes_lora_scan_cached(tmp_path, capsys):
    """Without a window: `stablenew run` reads the catalog cache `lora scan` (or the window)
    keeps, on the first image that loaded LoRAs."""
    loras = tmp_path / "Lora"
    write_model(loras / "neon.safetensors", {"sshs_model_hash": "ab" * 32})
    assert main(["lora", "scan", str(loras)]) == 0
    capsys.readouterr()
    config = tmp_path / "cfg.yaml"
    config.write_text('version: 1\ntxt2img:\n  prompt: "a city, <lora:neon:0.7>"\n'
                      "  checkpoint: sd15_base.safetensors\n  width: 64\n  height: 64\n"
                      "  steps: 2\n  seed: 5\n", encoding="utf-8")
    with FakeComfyUI(step_ms=1, loras=("neon.safetensors",)).running_in_thread() as fake:
        code = main(["run", str(config), "--node", fake.url, "--kind", "comfyui",
                     "--out", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code == 0, out.err
    [image] = [Path(line) for line in out.out.splitlines()]
    assert read_image_metadata(image).parsed["Lora hashes"] == f"neon: {'ab' * 6}"
