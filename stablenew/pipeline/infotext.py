"""A1111's "parameters" infotext: its keys and quoting, the parser, and an image's metadata.

The parser follows `parse_generation_parameters` in A1111's `modules/infotext_utils.py`, so we
read A1111's files, Civitai's and image browsers' as A1111 does. Values in parsed dicts are
strings, as in A1111. What we write is `infotext_write`; turning parsed values into a
PipelineConfig is `infotext_config`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PARAMETERS_KEY = "parameters"
STABLENEW_KEY = "stablenew"

# The very expressions A1111 uses (modules/infotext_utils.py); RE_PARAM finds key: value pairs.
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")
# A1111's expression backtracks over every run of key characters, so its time grows with the
# square of a run's length: minutes for a crafted (or damaged) multi-megabyte line. A line
# longer than any real parameters line, or with a long stretch of no "," or ":", is prompt text.
MAX_PARAMS_LINE = 16_000
_RE_LONG_RUN = re.compile(r"[^,:]{1000}")

#: The suffix each ADetailer tab adds to its keys (the first tab adds none).
ORDINALS = ("", " 2nd", " 3rd", " 4th", " 5th", " 6th")


def quote(value: Any) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


_MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")


def model_name(checkpoint: str) -> str | None:
    """The model as A1111 names it in infotext: file name without folder, extension or hash
    ("SDXL/juggernaut_v9.safetensors [abc123]" -> "juggernaut_v9")."""
    name = checkpoint.strip()
    if not name:
        return None
    if name.endswith("]") and " [" in name:
        name = name.rsplit(" [", 1)[0]
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    for ext in _MODEL_EXTENSIONS:
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    # The infotext's values are read back stripped: "sub/ x" is named "x", as it reads back.
    return name.strip() or None


def server_infotext_matches(infotext: str, prompt: str, seed: int) -> bool:
    """True when the server's own infotext describes this image (same prompt and seed)."""
    if not infotext:
        return False
    parsed = parse_infotext(infotext)
    return parsed.get("Prompt") == prompt.strip() and parsed.get("Seed") == str(seed)


def parse_infotext(text: str) -> dict[str, str]:
    """A1111's parser: keys to string values, plus "Prompt" and "Negative prompt".

    `WxH` values split into `<key>-1`/`<key>-2`; unknown keys are kept as they are. Unlike
    A1111 no defaults are injected, so the dict says only what the text says.
    """
    result: dict[str, str] = {}
    prompt = ""
    negative = ""
    done_with_prompt = False
    *lines, lastline = text.strip().split("\n")
    if (len(lastline) > MAX_PARAMS_LINE or _RE_LONG_RUN.search(lastline)
            or len(RE_PARAM.findall(lastline)) < 3):
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    for key, value in RE_PARAM.findall(lastline):
        if value and value[0] == '"' and value[-1] == '"':
            value = unquote(value)
        match = _RE_IMAGESIZE.match(value)
        if match is not None:
            result[f"{key}-1"] = match.group(1)
            result[f"{key}-2"] = match.group(2)
        else:
            result[key] = value
    result["Prompt"] = prompt
    result["Negative prompt"] = negative
    return result


@dataclass(frozen=True)
class ImageMetadata:
    """What an image file says about itself: A1111 infotext, our JSON, other tools' chunks."""

    path: Path
    width: int
    height: int
    format: str
    parameters: str | None = None  # the raw A1111 infotext
    parsed: dict[str, str] = field(default_factory=dict)  # parse_infotext(parameters)
    stablenew: dict[str, Any] | None = None  # our JSON chunk
    other: dict[str, str] = field(default_factory=dict)  # ComfyUI prompt/workflow, InvokeAI...


class ImageMetadataError(ValueError):
    """An image whose metadata cannot be read; `message` is for users, `detail` for logs."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


_OTHER_KEYS = ("prompt", "workflow", "invokeai_metadata", "invokeai_workflow",
               "invokeai_graph", "fooocus_scheme", "sui_image_params")


def read_image_metadata(path: str | Path) -> ImageMetadata:
    """Read the text chunks (PNG) or EXIF UserComment (JPEG/WebP) without decoding pixels."""
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    try:
        with Image.open(file) as image:
            info = dict(image.info)
            width, height = image.size
            fmt = image.format or ""
            exif_comment = _exif_user_comment(image) if fmt in ("JPEG", "WEBP") else None
    except FileNotFoundError:
        raise ImageMetadataError(f"{file} does not exist.", detail=str(file)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageMetadataError(f"{file.name} is not an image StableNew can read.",
                                 detail=f"{file}: {exc!r}") from None
    parameters = info.get(PARAMETERS_KEY)
    if not isinstance(parameters, str):
        parameters = exif_comment
    ours = None
    raw = info.get(STABLENEW_KEY)
    if isinstance(raw, str):
        try:
            loaded = json.loads(raw)
            ours = loaded if isinstance(loaded, dict) else None
        except ValueError:
            ours = None
    other = {k: info[k] for k in _OTHER_KEYS if isinstance(info.get(k), str)}
    parsed = parse_infotext(parameters) if parameters and not parameters.lstrip().startswith("{") \
        else {}
    return ImageMetadata(file, width, height, fmt, parameters, parsed, ours, other)


def _exif_user_comment(image: Any) -> str | None:
    try:
        exif = image.getexif().get_ifd(0x8769)  # Exif IFD
        raw = exif.get(0x9286)  # UserComment
    except Exception:  # noqa: BLE001 - broken EXIF must not hide the rest of the metadata
        return None
    if isinstance(raw, bytes):
        head, body = raw[:8], raw[8:]
        if head.startswith(b"UNICODE"):
            for codec in ("utf-16-be", "utf-16-le"):
                try:
                    return body.decode(codec)
                except UnicodeDecodeError:
                    continue
        return body.decode("utf-8", "replace")
    return raw if isinstance(raw, str) else None
