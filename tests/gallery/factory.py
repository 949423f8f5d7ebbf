"""Real image files with the metadata each tool writes, for the gallery's tests and bench."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image, PngImagePlugin


def png(path: Path, chunks: dict[str, str] | None = None, *, color: tuple[int, int, int] = (9, 9, 9),
        size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    for key, value in (chunks or {}).items():
        info.add_text(key, value)
    Image.new("RGB", size, color).save(path, "PNG", pnginfo=info)
    return path


def a1111_text(prompt: str, *, negative: str = "ugly", seed: int = 42, model: str = "juggernautXL",
               extra: str = "") -> str:
    return (f"{prompt}\nNegative prompt: {negative}\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
            f"Seed: {seed}, Size: 8x8, Model: {model}{extra}")


def with_exif_comment(path: Path, fmt: str, text: str) -> Path:
    """A JPEG or WebP carrying *text* in EXIF UserComment, as A1111 saves them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (1, 2, 3)).save(buf, fmt, exif=exif.tobytes())
    path.write_bytes(buf.getvalue())
    return path


COMFY_GRAPH = json.dumps({
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "SDXL/dreamshaper.safetensors"}},
    "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "styles/neon_glow.safetensors",
                                                  "model": ["4", 0], "clip": ["4", 1]}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse in a storm", "clip": ["10", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["10", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 777, "steps": 25, "cfg": 6.5,
                                               "sampler_name": "dpmpp_2m", "positive": ["6", 0],
                                               "negative": ["7", 0], "model": ["10", 0]}},
})
INVOKE_META = json.dumps({"positive_prompt": "an owl librarian", "negative_prompt": "text",
                          "model": {"name": "invoke-sdxl"}, "seed": 5, "steps": 30,
                          "cfg_scale": 5.0, "scheduler": "euler",
                          "loras": [{"model": {"name": "feathers"}, "weight": 0.7}]})
SWARM_PARAMS = json.dumps({"sui_image_params": {
    "prompt": "a red fox in snow", "negativeprompt": "dull",
    "model": "OfficialStableDiffusion/sd_xl_base_1.0",
    "seed": 9, "steps": 22, "cfgscale": 6, "sampler": "euler", "loras": ["winter_v2"]}})
