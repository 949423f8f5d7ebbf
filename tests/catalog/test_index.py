"""The catalog reads headers, sidecars and previews of generated files, and survives bad ones."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from stablenew.catalog.cache import CatalogCache
from stablenew.catalog.entry import BaseModel, ModelEntry, ModelKind
from stablenew.catalog.hashes import HashWorker, file_hashes, hash_entries
from stablenew.catalog.index import Catalog, scan, scan_folder
from stablenew.catalog.safetensors import HeaderError, read_header
from tests.catalog.factory import (
    FLUX_KEYS,
    PNG_2PX,
    SD1_CHECKPOINT_KEYS,
    SDXL_CHECKPOINT_KEYS,
    SDXL_KEYS,
    civitai_info,
    safetensors_bytes,
    write_json,
    write_model,
)


def _by_name(entries):
    return {e.name: e for e in entries}


def test_header_gives_metadata_and_tensor_names(tmp_path):
    path = write_model(tmp_path / "a.safetensors", {"ss_output_name": "Alpha"})
    header = read_header(path)
    assert header.metadata == {"ss_output_name": "Alpha"}
    assert "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight" in header.tensor_names
    assert header.data_end == path.stat().st_size


def test_header_is_read_without_the_tensors(tmp_path):
    # A sparse 3 GB file: reading its tensors would take seconds and gigabytes.
    raw = safetensors_bytes({"ss_output_name": "big"}, tensor_bytes=8)
    header_len = struct.unpack("<Q", raw[:8])[0]
    body = json.loads(raw[8:8 + header_len])
    key = next(k for k in body if k != "__metadata__")
    body = {"__metadata__": body["__metadata__"],
            key: {"dtype": "F16", "shape": [1], "data_offsets": [0, 3 * 1024**3]}}
    text = json.dumps(body).encode()
    path = tmp_path / "big.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    os.truncate(path, 8 + len(text) + 3 * 1024**3)
    import tracemalloc

    tracemalloc.start()
    header = read_header(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert header.metadata["ss_output_name"] == "big"
    assert peak < 10 * 1024**2


@pytest.mark.parametrize(("data", "words"), [
    (b"\x01\x02", "too short"),
    (struct.pack("<Q", 2**63) + b"{}", "more than"),
    (struct.pack("<Q", 50 * 1024**2) + b"{", "more than"),
    (struct.pack("<Q", 400) + b'{"__metadata__": {}}', "cut off"),
    (struct.pack("<Q", 8) + b"not json", "not valid JSON"),
    (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
])
def test_bad_headers_are_refused_in_words(tmp_path, data, words):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(HeaderError) as info:
        read_header(path)
    assert words in info.value.message


def test_a_real_50_mb_header_is_refused_before_it_is_read(tmp_path):
    text = json.dumps({"__metadata__": {"ss_tag_frequency": "x" * (50 * 1024**2)}}).encode()
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(HeaderError, match="more than"):
        read_header(path)


def test_truncated_tensor_data_is_reported(tmp_path):
    raw = safetensors_bytes({"ss_output_name": "t"}, tensor_bytes=64)
    path = tmp_path / "t.safetensors"
    path.write_bytes(raw[:-10])
    with pytest.raises(HeaderError, match="cut off"):
        read_header(path)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bad_files_are_listed_with_their_reason_and_the_rest_loads(tmp_path):
    lib = tmp_path / "loras"
    write_model(lib / "good.safetensors", {"ss_output_name": "good"})
    (lib / "truncated.safetensors").write_bytes(safetensors_bytes({"a": "b"}, tensor_bytes=64)[:-5])
    (lib / "huge_length.safetensors").write_bytes(struct.pack("<Q", 2**63) + b"{}")
    (lib / "notjson.safetensors").write_bytes(struct.pack("<Q", 4) + b"oops")
    (lib / "good.json").write_text('{"activation text": ', encoding="utf-8")  # garbage
    write_json(lib / "good.civitai.info", {"trainedWords": "glowing", "baseModel": 15,
                                           "model": ["not", "an", "object"]})
    (lib / "good.png").write_bytes(b"<html>not an image</html>")
    before = _snapshot(lib)

    entries = _by_name(scan_folder(lib, ModelKind.lora))

    assert sorted(entries) == ["good", "huge_length", "notjson", "truncated"]
    assert "cut off" in entries["truncated"].problems[0]
    assert "more than" in entries["huge_length"].problems[0]
    assert "not valid JSON" in entries["notjson"].problems[0]
    assert not entries["truncated"].readable
    good = entries["good"]
    assert good.readable
    assert "good.json is not valid JSON; ignored." in good.problems
    assert "good.civitai.info: 'baseModel' should be text; ignored." in good.problems
    assert "good.civitai.info: 'model' should be an object; ignored." in good.problems
    assert "good.png is not an image; not used as the preview." in good.problems
    assert good.preview is None
    # A single string where a list belongs is still read as one word.
    assert good.triggers == ["glowing"]
    assert _snapshot(lib) == before  # nothing rewritten


def test_sidecars_feed_the_derived_fields_with_the_issue_precedence(tmp_path):
    lib = tmp_path / "loras"
    meta = {"ss_output_name": "neon_v2", "ss_base_model_version": "sdxl_base_v1-0",
            "modelspec.trigger_phrase": "neon glow", "modelspec.title": "Neon Lights",
            "ss_tag_frequency": json.dumps({"10_neon": {"neon": 30, "city": 12, "night": 20},
                                            "5_more": {"city": 10}})}
    write_model(lib / "style" / "neon.safetensors", meta, SDXL_KEYS)
    write_json(lib / "style" / "neon.json", {"activation text": "neonstyle, glowing lines",
                                             "preferred weight": 0.6, "sd version": "SDXL",
                                             "description": "Neon city lights"})
    write_json(lib / "style" / "neon.civitai.info",
               civitai_info(["neonword"], base_model="Pony", name="Neon (CivitAI)"))
    (lib / "style" / "neon.preview.png").write_bytes(PNG_2PX)

    [entry] = scan_folder(lib, ModelKind.lora)

    assert entry.name == "neon" and entry.alias == "neon_v2"
    assert entry.display_name == "Neon Lights"
    assert entry.triggers == ["neonstyle", "glowing lines"]
    assert entry.triggers_from == "your activation text"
    assert entry.weight == 0.6
    assert entry.base_model is BaseModel.pony  # header says SDXL, CivitAI narrows it
    assert "ss_base_model_version" in entry.base_model_from
    assert entry.tags[:3] == ["neon", "city", "night"]  # by frequency, summed over folders
    assert entry.category == "style"
    assert entry.preview == str(lib / "style" / "neon.preview.png")
    assert entry.description == "Neon city lights"
    assert entry.problems == []


def test_fallbacks_when_the_user_wrote_nothing(tmp_path):
    lib = tmp_path / "loras"
    write_model(lib / "a.safetensors", {"modelspec.trigger_phrase": "aaa, bbb",
                                        "modelspec.usage_hint": "Use at weight 0.8",
                                        "modelspec.architecture": "stable-diffusion-v1/lora"})
    write_json(lib / "a.json", {"activation text": "", "preferred weight": 0})
    write_model(lib / "b.safetensors", {"ss_output_name": "bee"})
    write_json(lib / "b.civitai.info", civitai_info(["bzz, buzz", "hive"], base_model="SD 1.5", name="Bees"))
    write_json(lib / "b.metadata.json", {"usage_tips": json.dumps({"strength": 0.45}), "favorite": True,
                                         "tags": ["character"], "base_model": "SD 1.5"})
    write_model(lib / "c.safetensors", None, FLUX_KEYS)
    (lib / "c.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    (lib / "c.png").write_bytes(b"not a png")

    e = _by_name(scan_folder(lib, ModelKind.lora))

    assert e["a"].triggers == ["aaa", "bbb"] and e["a"].weight == 0.8 and e["a"].base_model is BaseModel.sd1
    assert e["b"].triggers == ["bzz", "buzz", "hive"] and e["b"].triggers_from == "CivitAI's trained words"
    assert e["b"].display_name == "Bees" and e["b"].weight == 0.45 and e["b"].favorite
    assert e["b"].category == "character"
    # No version key in the header: its tensor names say SD1.
    assert e["b"].base_model is BaseModel.sd1 and e["b"].base_model_from == "its tensor names"
    assert e["c"].base_model is BaseModel.flux and e["c"].display_name == "c" and e["c"].triggers == []
    # A1111's order: c.png comes first but is not an image, c.jpg is.
    assert e["c"].preview == str(lib / "c.jpg")


def test_a_sidecar_cannot_change_the_architecture_only_narrow_it(tmp_path):
    lib = tmp_path / "loras"
    write_model(lib / "x.safetensors", {"ss_base_model_version": "sd_v1"})
    write_json(lib / "x.civitai.info", civitai_info(["x"], base_model="Illustrious"))
    write_model(lib / "y.safetensors", {"ss_v2": "True"})
    write_model(lib / "z.safetensors", None, keys=("some.unknown.tensor",))
    write_json(lib / "z.civitai.info", civitai_info(["z"], base_model="SDXL 1.0"))
    e = _by_name(scan_folder(lib, ModelKind.lora))
    assert e["x"].base_model is BaseModel.sd1
    assert any("header wins" in p for p in e["x"].problems)
    assert e["y"].base_model is BaseModel.sd2
    assert e["z"].base_model is BaseModel.sdxl and "CivitAI" in e["z"].base_model_from


def test_checkpoints_get_family_size_and_preview(tmp_path):
    ckpt = tmp_path / "ckpt"
    write_model(ckpt / "xl" / "juggernaut.safetensors", None, SDXL_CHECKPOINT_KEYS, tensor_bytes=32)
    write_model(ckpt / "dreamshaper_8.safetensors", {}, SD1_CHECKPOINT_KEYS)
    (ckpt / "dreamshaper_8.png").write_bytes(PNG_2PX)
    write_json(ckpt / "xl" / "juggernaut.civitai.info", civitai_info([], base_model="Pony"))
    catalog = scan([(ckpt, ModelKind.checkpoint)])
    jug = catalog.find("xl/juggernaut.safetensors [0123456789]")
    assert jug is not None and jug.kind is ModelKind.checkpoint
    assert jug.base_model is BaseModel.pony
    assert jug.size == (ckpt / "xl" / "juggernaut.safetensors").stat().st_size
    assert catalog.checkpoint_base("dreamshaper_8") is BaseModel.sd1
    assert catalog.find("dreamshaper_8").preview.endswith("dreamshaper_8.png")


def test_hashes_are_a1111s(tmp_path):
    path = write_model(tmp_path / "h.safetensors", {"ss_output_name": "h"}, tensor_bytes=16, fill=b"\x07")
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    tail, whole = file_hashes(path, after_header=True)
    assert tail == hashlib.sha256(data[8 + n:]).hexdigest()
    assert whole == hashlib.sha256(data).hexdigest()
    embedded = write_model(tmp_path / "e.safetensors", {"sshs_model_hash": "ab" * 32})
    entries = _by_name(scan_folder(tmp_path, ModelKind.lora))
    hash_entries(list(entries.values()), None)
    assert entries["h"].lora_hash == tail and entries["h"].autov3 == tail[:12]
    assert entries["h"].autov2 == whole[:10]
    assert entries["e"].lora_hash == "ab" * 32  # embedded, even though stale
    assert entries["e"].sha256 == hashlib.sha256(embedded.read_bytes()).hexdigest()


def test_the_cache_skips_unchanged_files_and_rereads_changed_sidecars(tmp_path):
    lib = tmp_path / "loras"
    path = write_model(lib / "a.safetensors", {"modelspec.trigger_phrase": "first"})
    write_model(lib / "gone.safetensors", {})
    cache = CatalogCache(tmp_path / "catalog.db")
    [a, _gone] = scan_folder(lib, ModelKind.lora, cache)
    assert a.triggers == ["first"]
    worker = HashWorker(cache)
    worker.start([a])
    assert worker.wait(10)

    # Same size and mtime: the cache answers without reading the file (it still says "first").
    stat = path.stat()
    path.write_bytes(path.read_bytes().replace(b"first", b"secnd"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (lib / "gone.safetensors").unlink()
    [a2] = scan_folder(lib, ModelKind.lora, cache)
    assert a2.triggers == ["first"] and a2.sha256 == a.sha256 and a2.lora_hash == a.lora_hash

    # A new sidecar changes the entry, not the hashes.
    write_json(lib / "a.json", {"activation text": "mine"})
    [a3] = scan_folder(lib, ModelKind.lora, cache)
    assert a3.triggers == ["mine"] and a3.sha256 == a.sha256

    # A new mtime re-reads the file and forgets its hashes.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    [a4] = scan_folder(lib, ModelKind.lora, cache)
    assert a4.sha256 is None
    assert a4.triggers == ["mine"]
    cache.close()
    reopened = CatalogCache(tmp_path / "catalog.db")
    assert reopened.roots() == [(str(lib.resolve()), "lora")]
    assert list(reopened.rows_under(str(lib.resolve()))) == [str(lib.resolve() / "a.safetensors")]
    reopened.close()


def test_an_unreachable_folder_keeps_its_cache(tmp_path):
    lib = tmp_path / "nas" / "loras"
    write_model(lib / "a.safetensors", {})
    cache = CatalogCache(tmp_path / "catalog.db")
    [a] = scan_folder(lib, ModelKind.lora, cache)
    hash_entries([a], cache)
    lib.rename(tmp_path / "nas" / "offline")
    catalog = scan([(lib, ModelKind.lora)], cache)
    assert catalog.entries == [] and "cannot be read" in catalog.problems[0]
    (tmp_path / "nas" / "offline").rename(lib)
    [again] = scan_folder(lib, ModelKind.lora, cache)
    assert again.sha256 == a.sha256  # not forgotten while the share was away
    cache.close()


def test_the_listing_is_made_once_per_catalog_and_again_after_it_grows():
    def entry(name, display, tags=(), triggers=()):
        return ModelEntry(name=name, alias=name, kind=ModelKind.lora, path=f"/l/{name}.safetensors",
                          display_name=display, tags=list(tags), triggers=list(triggers))

    catalog = Catalog([entry("b", "beta", tags=[" Neon "]), entry("a", "Alpha", triggers=["glow"])])
    listed = catalog.listing(ModelKind.lora)
    assert [row.entry.name for row in listed] == ["a", "b"]  # by display name, any case
    assert "glow" in listed[0].text and listed[1].tags == {"neon"}
    assert catalog.listing(ModelKind.lora) is listed
    assert catalog.listing(ModelKind.checkpoint) == ()
    catalog.extend([entry("c", "aardvark")])
    assert [row.entry.name for row in catalog.listing(ModelKind.lora)] == ["c", "a", "b"]
