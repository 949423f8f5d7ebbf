"""A LoRA picked from the catalog runs on the fake A1111, whose saved image carries the same
`Lora hashes` the catalog computes (A1111's LoRA hash, first 12 hex digits)."""

from __future__ import annotations

import json
from pathlib import Path

from stablenew.catalog.cache import CatalogCache, default_cache_path
from stablenew.catalog.entry import ModelKind
from stablenew.catalog.index import scan
from stablenew.catalog.prompt import insert_lora, lora_hashes
from stablenew.cli import main
from stablenew.pipeline.infotext import read_image_metadata
from tests.catalog.factory import SDXL_KEYS, write_model
from tests.fakes.sdwebui import FakeSDWebUI


def test_saved_image_carries_the_catalogs_lora_hashes(tmp_path, capsys):
    loras = tmp_path / "Lora"
    write_model(loras / "style" / "neon.safetensors", {"modelspec.trigger_phrase": "neonstyle"},
                SDXL_KEYS, tensor_bytes=32, fill=b"\x05")
    write_model(loras / "grain.safetensors", {"sshs_model_hash": "9f" * 32, "ss_output_name": "film_grain"})
    assert main(["lora", "scan", str(loras)]) == 0  # hashes too
    capsys.readouterr()
    cache = CatalogCache(default_cache_path())
    catalog = scan([(loras, ModelKind.lora)], cache)
    cache.close()
    prompt = insert_lora("a city at night", catalog.find("neon"), 0.7)
    prompt = insert_lora(prompt, catalog.find("grain"), 0.3)
    assert prompt == "a city at night, neonstyle, <lora:neon:0.7>, <lora:grain:0.3>"
    expected = lora_hashes(prompt, catalog)
    assert expected == f"neon: {catalog.find('neon').autov3}, grain: {'9f' * 6}"

    config = tmp_path / "cfg.yaml"
    config.write_text(f"version: 1\ntxt2img:\n  prompt: {json.dumps(prompt)}\n  width: 64\n  height: 64\n"
                      "  steps: 2\n  seed: 5\n", encoding="utf-8")
    fake = FakeSDWebUI(step_ms=0.0)
    fake.lora_dir = loras
    with fake.running_in_thread():
        code = main(["run", str(config), "--node", fake.url, "--kind", "a1111",
                     "--out", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code == 0, out.err
    [image] = [Path(line) for line in out.out.splitlines()]
    meta = read_image_metadata(image)
    assert meta.parsed["Lora hashes"] == expected
    assert f'Lora hashes: "{expected}"' in meta.parameters  # quoted, as A1111 writes it
