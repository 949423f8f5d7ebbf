"""Putting a LoRA into a prompt, and the `Lora hashes` text A1111 writes for a prompt's LoRAs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from stablenew.backends.lora_tags import lora_names, swap_lora
from stablenew.catalog.entry import ModelEntry, ModelKind
from stablenew.catalog.index import Catalog

DEFAULT_WEIGHT = 1.0


def lora_token(entry: ModelEntry, weight: float | None = None) -> str:
    """`<lora:name:weight>`: the file stem, as A1111 and our ComfyUI graphs both resolve it."""
    w = weight if weight is not None else (entry.weight or DEFAULT_WEIGHT)
    return f"<lora:{entry.name}:{w:g}>"


def insert_lora(prompt: str, entry: ModelEntry, weight: float | None = None,
                triggers: list[str] | None = None) -> str:
    """*prompt* with the LoRA's token and the ticked trigger words (default: the first) added.

    A token already there for this LoRA gets the new weight instead of a second copy; trigger
    words already in the prompt are not repeated.
    """
    chosen = entry.triggers[:1] if triggers is None else triggers
    token = lora_token(entry, weight)
    text, replaced = swap_lora(prompt, entry.name, token)
    lowered = text.lower()
    new_words = [w for w in chosen if not re.search(rf"(?<![\w]){re.escape(w.lower())}(?![\w])", lowered)]
    parts = [text.rstrip(" ,")] if text.strip(" ,") else []
    parts += new_words
    if not replaced:
        parts.append(token)
    return ", ".join(parts)


def lora_hashes(prompt: str, catalog: Catalog) -> str:
    """What A1111 writes as `Lora hashes`: 'name: shorthash, …' for each hashed LoRA named.

    A1111 keys it by the name as written in the prompt with ':' and ',' removed, and leaves out
    LoRAs it has no hash for.
    """
    return _hashes_text((name, catalog.find(name, ModelKind.lora)) for name in lora_names(prompt))


def lora_hashes_for_files(files: Iterable[str], catalog: Catalog) -> str:
    """`Lora hashes` as A1111 writes them for the LoRA files a server loaded (ComfyUI's
    LoraLoader chain: "style/neon.safetensors"), each named by its file stem, the name its
    `<lora:…>` token uses."""
    return _hashes_text((_stem(f), catalog.find(f, ModelKind.lora)) for f in files)


def _stem(file: str) -> str:
    return os.path.splitext(file.replace("\\", "/").rsplit("/", 1)[-1])[0]


def _hashes_text(named: Iterable[tuple[str, ModelEntry | None]]) -> str:
    pairs: dict[str, str] = {}
    for name, entry in named:
        if entry is not None and entry.autov3:
            pairs.setdefault(name.replace(":", "").replace(",", ""), entry.autov3)
    return ", ".join(f"{name}: {short}" for name, short in pairs.items())
