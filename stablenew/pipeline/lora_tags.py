"""LoRA tags in a prompt (`<lora:name:weight>`, A1111's syntax): which LoRAs, at what weight.

Pure text, apart from the learning room that varies the weights, so a run that only needs the
names (the cluster's requirements of an item) does not load that room at start."""

from __future__ import annotations

import re

#: A LoRA tag: group 1 the name, group 2 the weight (absent: 1.0); more fields are ignored.
LORA_TAG = re.compile(r"<lora:([^:>]+)(?::([-+]?\d*\.?\d+))?(?::[^>]*)?>", re.IGNORECASE)


def lora_weights(prompt: str) -> dict[str, float]:
    """LoRA names in a prompt with their weights (1.0 when the tag gives none)."""
    found: dict[str, float] = {}
    for match in LORA_TAG.finditer(prompt):
        weight = match.group(2)
        found[match.group(1).strip()] = float(weight) if weight else 1.0
    return found
