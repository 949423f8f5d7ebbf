"""Facts read from each tool's metadata: ours, A1111, ComfyUI, InvokeAI, SwarmUI, EXIF."""

from __future__ import annotations

import json

import pytest

from stablenew.gallery.metadata import MAX_TEXT, content_hash, read_facts
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.infotext import ImageMetadataError
from stablenew.pipeline.infotext_write import stablenew_payload
from stablenew.pipeline.records import RunTags
from tests.gallery.factory import (
    COMFY_GRAPH,
    INVOKE_META,
    SWARM_PARAMS,
    a1111_text,
    png,
    with_exif_comment,
)


def test_our_chunk_wins_and_names_pack_and_node(tmp_path):
    config = PipelineConfig().with_changes({"txt2img.prompt": "a castle <lora:moss:0.6>",
                                            "txt2img.checkpoint": "SDXL/juggernautXL.safetensors",
                                            "txt2img.steps": 31})
    ours = stablenew_payload(config=config, seed=123, stages=["txt2img"], run_id="r1",
                             image_index=0, tags=RunTags(pack="Castles"), node="gpu-2",
                             node_kind="a1111")
    path = png(tmp_path / "a.png", {"stablenew": json.dumps(ours),
                                    "parameters": a1111_text("something else")})
    facts = read_facts(path)
    assert (facts.source, facts.prompt, facts.model, facts.seed, facts.steps) == (
        "stablenew", "a castle <lora:moss:0.6>", "juggernautXL", 123, 31)
    assert (facts.pack, facts.node, facts.loras) == ("Castles", "gpu-2", ("moss",))


def test_a1111_parameters_with_lora_tokens_and_hashes(tmp_path):
    text = a1111_text("a cat <lora:neon:0.5>", extra=', Lora hashes: "neon: abc123, extra_det: def"')
    facts = read_facts(png(tmp_path / "a.png", {"parameters": text}))
    assert (facts.source, facts.prompt, facts.negative, facts.seed, facts.cfg, facts.sampler) == (
        "a1111", "a cat <lora:neon:0.5>", "ugly", 42, 7.0, "Euler a")
    assert set(facts.loras) == {"neon", "extra_det"}
    assert (facts.width, facts.height, facts.media) == (8, 8, "png")


def test_comfyui_graph_traced_from_the_sampler(tmp_path):
    facts = read_facts(png(tmp_path / "c.png", {"prompt": COMFY_GRAPH, "workflow": "{}"}))
    assert (facts.source, facts.prompt, facts.negative, facts.model) == (
        "comfyui", "a lighthouse in a storm", "blurry", "dreamshaper")
    assert (facts.seed, facts.steps, facts.cfg, facts.sampler, facts.loras) == (
        777, 25, 6.5, "dpmpp_2m", ("neon_glow",))


def test_invokeai_and_swarmui_chunks(tmp_path):
    invoke = read_facts(png(tmp_path / "i.png", {"invokeai_metadata": INVOKE_META}))
    assert (invoke.prompt, invoke.model, invoke.seed, invoke.loras) == (
        "an owl librarian", "invoke-sdxl", 5, ("feathers",))
    swarm = read_facts(png(tmp_path / "s.png", {"parameters": SWARM_PARAMS}))
    assert (swarm.source, swarm.prompt, swarm.model, swarm.cfg, swarm.loras) == (
        "swarmui", "a red fox in snow", "sd_xl_base_1.0", 6.0, ("winter_v2",))


@pytest.mark.parametrize("fmt,suffix,media", [("JPEG", ".jpg", "jpeg"), ("WEBP", ".webp", "webp")])
def test_exif_user_comment(tmp_path, fmt, suffix, media):
    path = with_exif_comment(tmp_path / f"x{suffix}", fmt, a1111_text("a misty valley"))
    facts = read_facts(path)
    assert (facts.prompt, facts.media, facts.width) == ("a misty valley", media, 16)


def test_bad_chunks_leave_facts_empty_not_failing(tmp_path):
    facts = read_facts(png(tmp_path / "b.png", {"prompt": "{not json", "stablenew": "[1, 2]",
                                                "invokeai_metadata": "42"}))
    assert facts.prompt == "" and facts.seed is None
    long = read_facts(png(tmp_path / "l.png", {"parameters": a1111_text("word " * 10_000)}))
    assert len(long.prompt) == MAX_TEXT


def test_not_an_image_raises_a_plain_error(tmp_path):
    (tmp_path / "n.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ImageMetadataError):
        read_facts(tmp_path / "n.png")


def test_content_hash_follows_content_not_name(tmp_path):
    a = png(tmp_path / "a.png", {"parameters": a1111_text("x")}, size=(300, 300))
    b = tmp_path / "b.png"
    b.write_bytes(a.read_bytes())
    c = png(tmp_path / "c.png", {"parameters": a1111_text("y")}, size=(300, 300))
    size = a.stat().st_size
    assert content_hash(a, size) == content_hash(b, size)
    assert content_hash(a, size) != content_hash(c, c.stat().st_size)
