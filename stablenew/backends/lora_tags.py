"""LoRA tags in a prompt, A1111's syntax, read the same way in every room.

A1111 reads `<lora:name>`, `<lora:name:0.8>` and `<lora:name:te:unet>`, with named fields
(`te=0.5`, `unet=0.8`) taking precedence; the UNet weight defaults to the text-encoder one.
`<lyco:…>` is the same LoRA: A1111's built-in Lora extension registers `lyco` as an alias.
`<hypernet:…>` is an extra network too, but not a LoRA.

The ComfyUI backend turns these tags into loader nodes, which is why they live here; the
cluster (which node has the file), the learning room (a LoRA's weight as a parameter), the
catalog, the gallery and the community room read them through this module too. Pure text.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

#: A LoRA tag: group 1 the name, group 2 the fields after it, each led by ':' ('' when none).
LORA_TAG = re.compile(r"<(?:lora|lyco):([^:<>]+)((?::[^<>]*)?)>", re.IGNORECASE)
#: Any extra-network tag A1111 takes out of a prompt: a LoRA (or its alias) or a hypernetwork.
NETWORK_TAG = re.compile(r"<(?:lora|lyco|hypernet):[^<>]+>", re.IGNORECASE)


class LoraTag(NamedTuple):
    """One LoRA tag as A1111 reads it."""

    name: str
    #: The text-encoder weight as written; None when the tag gives none (A1111 uses 1.0).
    te: float | None
    #: The UNet weight as written; None when the tag gives none (A1111 uses the te weight).
    unet: float | None
    #: A field that should be a weight but is not a number ('' when every field reads).
    bad: str = ""

    @property
    def weight(self) -> float:
        """The weight a `<lora:name:weight>` tag states: the text encoder's, 1.0 when unsaid."""
        return 1.0 if self.te is None else self.te

    @property
    def unet_weight(self) -> float:
        return self.weight if self.unet is None else self.unet


def read_tag(match: re.Match[str]) -> LoraTag:
    """The tag a `LORA_TAG` match found: positional fields te, unet (then dyn, which is not a
    weight), named ones override them; a field that is no number is reported, not used."""
    positional: list[str] = []
    named: dict[str, str] = {}
    for field in match.group(2)[1:].split(":") if match.group(2) else []:
        parts = field.split("=")
        if len(parts) == 2:
            named[parts[0].strip()] = parts[1]
        else:
            positional.append(field)
    bad = ""

    def number(text: str | None) -> float | None:
        nonlocal bad
        if text is None or not text.strip():
            return None
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            bad = bad or text.strip()
            return None
        return value

    te = number(named.get("te", positional[0] if positional else None))
    unet = number(named.get("unet", positional[1] if len(positional) > 1 else None))
    return LoraTag(match.group(1).strip(), te, unet, bad)


def lora_tags(prompt: str) -> list[LoraTag]:
    """Every LoRA tag of *prompt*, in order."""
    return [read_tag(m) for m in LORA_TAG.finditer(prompt)]


def lora_names(prompt: str) -> list[str]:
    """The LoRA names a prompt mentions, in order, once each."""
    return list(dict.fromkeys(m.group(1).strip() for m in LORA_TAG.finditer(prompt)))


def lora_weights(prompt: str) -> dict[str, float]:
    """LoRA names in a prompt with their weights (1.0 when the tag gives none)."""
    return {tag.name: tag.weight for tag in lora_tags(prompt)}


def swap_lora(prompt: str, name: str, token: str) -> tuple[str, bool]:
    """*prompt* with every tag of LoRA *name* (any case, `lora` or `lyco`) replaced by *token*,
    and whether there was one."""
    key = name.strip().casefold()
    found = False

    def swap(match: re.Match[str]) -> str:
        nonlocal found
        if match.group(1).strip().casefold() != key:
            return match.group(0)
        found = True
        return token

    return LORA_TAG.sub(swap, prompt), found


__all__ = ["LORA_TAG", "NETWORK_TAG", "LoraTag", "lora_names", "lora_tags", "lora_weights",
           "read_tag", "swap_lora"]
