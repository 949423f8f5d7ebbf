"""`stablenew trending fetch|list|use` against the fake CivitAI, with a scanned LoRA folder."""

from __future__ import annotations

import json

import pytest

from stablenew.catalog.entry import ModelKind
from stablenew.catalog.hashes import hash_entries
from stablenew.catalog.index import scan
from stablenew.cli import main
from stablenew.cluster.queue_store import QueueStore
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.paths import AppPaths
from tests.catalog.factory import SD1_KEYS, write_model
from tests.fakes.civitai import wild_items


@pytest.fixture
def civitai(fake_civitai_thread, tmp_path, capsys):
    loras = tmp_path / "Lora"
    write_model(loras / "NeonGlow_v2.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS,
                tensor_bytes=64, fill=b"\x05")
    write_model(loras / "add_detail.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS,
                tensor_bytes=64, fill=b"\x06")
    assert main(["lora", "scan", str(loras)]) == 0
    capsys.readouterr()
    found = scan([(loras, ModelKind.lora)])
    hash_entries(found.entries, None)
    fake = fake_civitai_thread
    fake.items = wild_items(fake, neon_hash=found.find("NeonGlow_v2").autov3, detail_hash="ffffffffffff")
    return fake


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_list_shows_the_runnable_combos_and_why_others_were_left_out(civitai, capsys):
    assert main(["trending", "list", "--base-url", civitai.url, "--count", "50"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("8 images fetched just now. 3 combos you can use; 5 left out.")
    assert "#101  93 reactions  SD 1.5  by artist101" in out
    assert "LoRA NeonGlow_v2 0.7 (here, by its hash)" in out
    assert "LoRA add_detail 0.5 (here, by its name)" in out
    assert "(5 combos left out: --all shows why.)" in out

    assert main(["trending", "list", "--base-url", civitai.url, "--count", "50", "--json", "--all"]) == 0
    data = _json(capsys)
    assert [c["id"] for c in data["combos"]] == [101, 103, 106] and data["from_cache"] is True
    assert {d["id"]: d["reason"] for d in data["left_out"]}[108] == "xl_magic is not here"
    assert data["combos"][0]["page"] == f"{civitai.url}/images/101"
    assert len(civitai.image_requests()) == 1  # the second list came from the cache


def test_fetch_asks_again_and_honours_rating_and_key_from_the_environment(civitai, capsys, monkeypatch):
    civitai.api_key = "env-key"
    monkeypatch.setenv("MY_CIVITAI_KEY", "env-key")
    assert main(["trending", "fetch", "--base-url", civitai.url, "--rating", "r", "--count", "50",
                 "--api-key-env", "MY_CIVITAI_KEY", "--json"]) == 0
    data = _json(capsys)
    assert data["images"] == 9 and [c["id"] for c in data["combos"]] == [107, 101, 103, 106]
    request = civitai.image_requests()[-1]
    assert request.query["browsingLevel"] == "7" and request.authorization == "Bearer env-key"


def test_lookup_names_a_missing_lora_and_where_to_get_it(civitai, capsys):
    civitai.add_version(555001, "Watercolor Fox", base_model="SD 1.5")
    assert main(["trending", "list", "--base-url", civitai.url, "--count", "50", "--any", "--lookup"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "CivitAI does not know hash abcdefabcdef." in captured.err
    assert (f"LoRA Watercolor Fox 0.8 (missing) — SD 1.5, {civitai.url}/models/655001?modelVersionId=555001"
            in out)


def test_use_prints_a_config_and_queues_a_batch_tagged_with_the_sources(civitai, capsys, tmp_path):
    assert main(["trending", "use", "101", "--base-url", civitai.url, "--count", "50", "--settings"]) == 0
    config = PipelineConfig.from_yaml(capsys.readouterr().out)
    assert config.txt2img.prompt == "a neon city at night, masterpiece, <lora:NeonGlow_v2:0.7>"
    t2i = config.txt2img
    assert (t2i.steps, t2i.sampler, t2i.scheduler) == (28, "DPM++ 2M", "Karras")

    assert main(["trending", "use", "108", "--base-url", civitai.url, "--count", "50"]) == 1
    assert "Image 108 cannot be used: xl_magic is not here." in capsys.readouterr().err

    assert main(["trending", "use", "101", "103", "--base-url", civitai.url, "--count", "50", "--queue"]) == 0
    assert "2 images, \"2 trending combos\"" in capsys.readouterr().out
    with QueueStore(AppPaths.default().database_file) as store:
        [job] = store.reads.list_jobs()
        items = store.reads.items(job.id)
        assert [i.variant.id for i in items] == ["civitai:101", "civitai:103"]
        assert store.reads.config_for(items[1]).txt2img.prompt == "portrait, <lora:add_detail:0.5>"


def test_an_unreachable_site_with_nothing_cached_is_a_plain_error(civitai, capsys, dead_url):
    assert main(["trending", "fetch", "--base-url", dead_url, "--count", "50"]) == 1
    assert "127.0.0.1 cannot be reached. Check your connection" in capsys.readouterr().err


def test_download_asks_then_saves_the_verified_file(civitai, capsys, tmp_path, monkeypatch):
    civitai.add_version(555001, "Watercolor Fox", base_model="SD 1.5")
    answers = iter(["n", "y"])
    monkeypatch.setattr("builtins.input", lambda prompt: (print(prompt), next(answers))[1])
    args = ["trending", "download", "102", "--base-url", civitai.url, "--count", "50"]
    assert main(args) == 0
    assert "Skipped Watercolor Fox." in capsys.readouterr().out
    assert main(args) == 0
    out = capsys.readouterr().out
    loras = tmp_path / "Lora"
    assert f"Download Watercolor Fox (4 KB) from CivitAI into {loras}?" in out
    assert f"Saved {loras / 'Watercolor Fox.safetensors'} (sha256 checked)." in out
    assert main(["trending", "download", "101", "--base-url", civitai.url, "--count", "50"]) == 0
    assert "nothing to download; every LoRA is here." in capsys.readouterr().out


def test_trending_without_an_action_lists(civitai, capsys):
    assert main(["trending", "--base-url", civitai.url, "--count", "50", "--runnable", "--json"]) == 0
    assert [c["id"] for c in _json(capsys)["combos"]] == [101, 103, 106]
