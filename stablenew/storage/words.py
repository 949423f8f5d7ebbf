"""Counted nouns for messages: "1 image", "2 images", never "1 images" or "image(s)"."""

from __future__ import annotations

#: Nouns whose plural is not the singular plus "s".
_IRREGULAR = {"batch": "batches", "entry": "entries", "is": "are", "was": "were",
              "has": "have"}


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`count` and the noun in the form that count takes ("1 image", "0 images", "1,200 images")."""
    return f"{count:,} {noun_for(count, noun, plural_form)}"


def noun_for(count: int, noun: str, plural_form: str | None = None) -> str:
    """The noun (or verb) alone in the form that *count* takes."""
    if count == 1:
        return noun
    return plural_form or _IRREGULAR.get(noun, noun + "s")
