"""Tiny safetensors files and sidecars for the catalog tests and bench (no real models).

A file is a real safetensors file: an 8-byte little-endian header length, the JSON header
(tensor entries with dtype, shape, data_offsets, and `__metadata__`), then the tensor bytes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

PNG_2PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000002000000020802000000fdd49a730000001649444154789c633c"
    "2127c7c0c0c0c4c0c0c0c0c000000d0401087d71ca660000000049454e44ae426082")

SD1_KEYS = ("lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
            "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight")
SDXL_KEYS = ("lora_unet_input_blocks_4_1_proj_in.lora_down.weight",
             "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
             "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight")
FLUX_KEYS = ("lora_unet_double_blocks_0_img_attn_proj.lora_down.weight",)
SDXL_CHECKPOINT_KEYS = ("conditioner.embedders.1.model.ln_final.weight",
                        "model.diffusion_model.input_blocks.0.0.weight")
SD1_CHECKPOINT_KEYS = ("cond_stage_model.transformer.text_model.final_layer_norm.weight",
                       "model.diffusion_model.input_blocks.0.0.weight")


def safetensors_bytes(metadata: dict[str, Any] | None = None, keys: tuple[str, ...] = SD1_KEYS,
                      tensor_bytes: int = 8, fill: bytes = b"\x01") -> bytes:
    """A complete safetensors file: each tensor *tensor_bytes* of F16 data."""
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    offset = 0
    for key in keys:
        header[key] = {"dtype": "F16", "shape": [tensor_bytes // 2],
                       "data_offsets": [offset, offset + tensor_bytes]}
        offset += tensor_bytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # writers pad the header to 8 bytes
    return struct.pack("<Q", len(raw)) + raw + fill * offset


def write_model(path: Path, metadata: dict[str, Any] | None = None, keys: tuple[str, ...] = SD1_KEYS,
                **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(safetensors_bytes(metadata, keys, **kw))
    return path


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def civitai_info(trained_words: list[str], base_model: str = "SD 1.5", name: str = "A Model",
                 **extra: Any) -> dict[str, Any]:
    """The `/model-versions/by-hash` shape Civitai Helper saves as `<name>.civitai.info`."""
    return {"id": 123456, "modelId": 654321, "name": "v1.0", "baseModel": base_model,
            "trainedWords": trained_words, "description": "<p>version notes</p>",
            "model": {"name": name, "type": "LORA", "nsfw": False},
            "files": [{"name": "x.safetensors", "sizeKB": 1.0, "primary": True,
                       "hashes": {"AutoV2": "0123456789", "SHA256": "00" * 32}}],
            "images": [{"url": "https://image.civitai.com/x.jpeg", "nsfwLevel": 1}], **extra}
