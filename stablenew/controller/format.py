"""Numbers in words for the status bar and editors ("about 2 min left", token counts)."""

from __future__ import annotations

import re

from stablenew.storage.words import duration, plural

#: `plural` and `duration` are the words room's, offered here so views need not reach below controllers.
__all__ = ["duration", "estimate_tokens", "eta_in_words", "plural", "prompt_stats"]


def eta_in_words(seconds: float | None) -> str:
    """A human ETA: rounded so it does not flicker, never falsely precise."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "estimating time left…"
    if seconds < 10:
        return "a few seconds left"
    if seconds < 55:
        return f"about {max(10, round(seconds / 5) * 5)} s left"
    minutes = seconds / 60
    if minutes < 1.5:
        return "about 1 min left"
    if minutes < 59.5:
        return f"about {round(minutes)} min left"
    hours, rest = divmod(round(minutes), 60)
    if rest == 0:
        return f"about {hours} h left"
    return f"about {hours} h {rest} min left"


# CLIP's tokenizer splits words and punctuation; this estimate follows the same split, and
# counts long words as more than one token the way byte-pair encoding does.
_TOKEN = re.compile(r"<[^>]*>|[A-Za-z]+|\d|[^\sA-Za-z\d]", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """An estimate of CLIP tokens (A1111 shows 75 per chunk); exact counts need the model's vocab."""
    count = 0
    for match in _TOKEN.finditer(text):
        piece = match.group(0)
        if piece.startswith("<"):
            continue  # <lora:...> and similar are removed before the prompt reaches CLIP
        count += 1 + (len(piece) - 1) // 8 if piece.isalpha() else 1
    return count


def prompt_stats(text: str) -> str:
    tokens = estimate_tokens(text)
    chunks = max(1, -(-tokens // 75))
    return f"{len(text)} characters · about {tokens} tokens ({chunks}×75)"
