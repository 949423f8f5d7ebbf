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


def duration(seconds: float, *, compact: bool = False, tenths: bool = False) -> str:
    """A length of time for people: "42 s", "2 min 05 s", "2 min", "2 h 01 min"; *compact* for
    tables, every part kept so columns line up ("42s", "2m05s", "2m00s", "2h01m"); *tenths*
    keeps one decimal under a minute ("4.2 s")."""
    sec, mins, hrs, gap = ("s", "m", "h", "") if compact else (" s", " min", " h", " ")
    if seconds < (59.95 if tenths else 59.5):
        return f"{seconds:.1f}{sec}" if tenths else f"{round(seconds)}{sec}"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        if secs == 0 and not compact:
            return f"{minutes}{mins}"  # "2 min", not "2 min 00 s"
        return f"{minutes}{mins}{gap}{secs:02d}{sec}"
    hours, minutes = divmod(minutes, 60)
    if minutes == 0 and not compact:
        return f"{hours}{hrs}"
    return f"{hours}{hrs}{gap}{minutes:02d}{mins}"
