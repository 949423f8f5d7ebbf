"""`stablenew lora scan|list|show|match` on generated folders, text and JSON."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

from stablenew.cli import main
from tests.catalog.factory import SDXL_CHECKPOINT_KEYS, SDXL_KEYS, civitai_info, write_json, write_model


@pytest.fixture
def folders(tmp_path):
    loras = tmp_path / "Lora"
    write_model(loras / "style" / "neon.safetensors",
                {"ss_output_name": "neon_v2", "ss_base_model_version": "sdxl_base_v1-0",
                 "ss_tag_frequency": json.dumps({"d": {"cinematic": 4, "city": 2}})}, SDXL_KEYS)
    write_json(loras / "style" / "neon.json", {"activation text": "neonstyle", "preferred weight": 0.6})
    write_model(loras / "sd1_thing.safetensors", {"ss_base_model_version": "sd_v1",
                                                  "modelspec.trigger_phrase": "cinematic thing"})
    (loras / "broken.safetensors").write_bytes(struct.pack("<Q", 2**63) + b"{}")
    write_json(loras / "sd1_thing.civitai.info", civitai_info(["thing"]))
    ckpts = tmp_path / "Stable-diffusion"
    write_model(ckpts / "juggernautXL.safetensors", None, SDXL_CHECKPOINT_KEYS)
    return loras, ckpts


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_scan_list_show_match(folders, capsys):
    loras, ckpts = folders
    assert main(["lora", "list"]) == 1
    assert "no folders scanned yet" in capsys.readouterr().err

    assert main(["lora", "scan", str(loras)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Read 3 LoRAs and 0 checkpoints; 1 file with problems:")
    assert "broken.safetensors" in out and "more than" in out
    assert main(["lora", "scan", str(ckpts), "--checkpoints", "--json"]) == 0
    [ckpt] = _json(capsys)
    data = (ckpts / "juggernautXL.safetensors").read_bytes()
    assert ckpt["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert ckpt["hashes"]["autov2"] == ckpt["hashes"]["sha256"][:10] and ckpt["base_model"] == "SDXL"

    assert main(["lora", "list", "--json"]) == 0
    listed = {e["name"]: e for e in _json(capsys)}
    assert sorted(listed) == ["broken", "neon", "sd1_thing"]
    neon = listed["neon"]
    keys = ("alias", "display_name", "base_model", "triggers", "weight", "category")
    assert {k: neon[k] for k in keys} == {
        "alias": "neon_v2", "display_name": "neon_v2", "base_model": "SDXL", "triggers": ["neonstyle"],
        "weight": 0.6, "category": "style"}
    assert neon["tags"] == ["cinematic", "city"]
    raw = (loras / "style" / "neon.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert neon["hashes"]["lora"] == hashlib.sha256(raw[8 + n:]).hexdigest()
    assert neon["hashes"]["autov3"] == neon["hashes"]["lora"][:12]
    assert listed["broken"]["problems"] and listed["broken"]["hashes"]["sha256"] is None

    assert main(["lora", "list"]) == 0
    text = capsys.readouterr().out
    assert "style:\n  neon (neon_v2)  [SDXL]  neonstyle" in text and text.rstrip().endswith("3 LoRAs")

    assert main(["lora", "show", "neon_v2"]) == 0
    shown = capsys.readouterr().out
    assert "<lora:neon:0.6>" in shown and "from your activation text" in shown

    assert main(["lora", "show", "nope"]) == 1
    assert "nothing named 'nope'" in capsys.readouterr().err

    assert main(["lora", "match", "a cinematic city", "--checkpoint", "juggernautXL", "--json"]) == 0
    matched = _json(capsys)
    assert [m["name"] for m in matched] == ["neon"]
    assert matched[0]["reasons"] == ["'cinematic' is one of its tags", "'city' is one of its tags"]
    assert main(["lora", "match", "a cinematic thing", "--checkpoint", "SD1"]) == 0
    out = capsys.readouterr().out
    assert "sd1_thing" in out and "'cinematic thing' is one of its trigger words" in out and "neon" not in out


def test_list_with_a_node_marks_what_the_server_has(folders, capsys):
    from tests.fakes.sdwebui import FakeSDWebUI

    loras, _ckpts = folders
    assert main(["lora", "scan", str(loras), "--no-hashes"]) == 0
    capsys.readouterr()
    fake = FakeSDWebUI(loras=("neon", "server_only"))
    fake.lora_metadata["server_only"] = {"ss_base_model_version": "sdxl_base_v1-0"}
    with fake.running_in_thread():
        assert main(["lora", "list", "--node", fake.url, "--json"]) == 0
        listed = {e["name"]: e for e in _json(capsys)}
        assert main(["lora", "list", "--node", fake.url]) == 0
        text = capsys.readouterr().out
    assert listed["neon"]["nodes"] == [fake.url] and listed["sd1_thing"]["nodes"] == []
    assert listed["server_only"]["nodes"] == [fake.url] and listed["server_only"]["base_model"] == "SDXL"
    assert "neon (neon_v2)  [SDXL]  neonstyle  (on the server)" in text
    assert "sd1_thing" in text and "(not on the server)" in text and "(only on the server)" in text
    assert main(["lora", "list", "--node", "http://127.0.0.1:9"]) == 1
    assert "No Stable Diffusion server answers" in capsys.readouterr().err
