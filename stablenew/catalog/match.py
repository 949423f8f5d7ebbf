"""Matching a prompt against the catalog: a score per LoRA and the reasons in words.

An inverted index (phrase -> the LoRAs that carry it as a trigger word, tag, name or
description word) is built once per catalog, so matching one prompt costs a few dictionary
lookups per prompt word, not a pass over every LoRA.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from stablenew.catalog.entry import BaseModel, ModelEntry
from stablenew.catalog.index import Catalog

#: What a hit is worth, and how the reason says it, by where the phrase was found.
_FIELDS = {
    "trigger": (5.0, "'{}' is one of its trigger words"),
    "tag": (3.0, "'{}' is one of its tags"),
    "name": (2.0, "'{}' is in its name"),
    "description": (1.0, "'{}' is in its description"),
}
_MAX_PHRASE_WORDS = 4
_WORD = re.compile(r"[\w'-]+", re.UNICODE)
_LORA_TAG = re.compile(r"<(?:lora|lyco|hypernet):[^>]*>", re.IGNORECASE)
_WEIGHT = re.compile(r":\s*-?\d+(?:\.\d+)?\s*(?=[)\]])")
_STOP_TEXT = """a an and are as at be by for from has have in into is it its of on or that the
this to with was were will your you lora model style trained version use used using"""
#: Words too common to say anything when they appear in a name or a description.
_STOPWORDS = frozenset(_STOP_TEXT.split())


def words(text: str) -> list[str]:
    return [w.strip("'-").lower() for w in _WORD.findall(text.replace("_", " ")) if w.strip("'-")]


def prompt_phrases(prompt: str) -> set[str]:
    """Every run of 1-4 words inside each comma part of *prompt*, lower-cased, syntax removed."""
    text = _WEIGHT.sub("", _LORA_TAG.sub(",", prompt))
    found: set[str] = set()
    for part in re.split(r"[,|\n.;]+", text):
        ws = words(part)
        for n in range(1, _MAX_PHRASE_WORDS + 1):
            for i in range(len(ws) - n + 1):
                found.add(" ".join(ws[i:i + n]))
    return found


def _phrase(text: str) -> str:
    return " ".join(words(text))


@dataclass
class LoraMatch:
    """One LoRA that fits a prompt: its score and why, in words."""

    entry: ModelEntry
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)


class Matcher:
    """Scores LoRAs of one catalog against prompts; rebuild it when the catalog changes."""

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self.entries = [e for e in entries if e.kind.value == "lora"]
        self._index: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
        for i, entry in enumerate(self.entries):
            seen: set[tuple[str, str]] = set()

            def add(text: str, where: str, shown: str | None = None, *, i: int = i,
                    seen: set[tuple[str, str]] = seen) -> None:
                key = _phrase(text)
                if key and len(key.split()) <= _MAX_PHRASE_WORDS and (key, where) not in seen:
                    seen.add((key, where))
                    self._index[key].append((i, where, shown or text.strip()))

            for word in entry.triggers:
                add(word, "trigger")
            for tag in entry.tags:
                add(tag, "tag")
            for name in {entry.name, entry.alias, entry.display_name}:
                for w in words(name):
                    if len(w) >= 3 and w not in _STOPWORDS and not w.isdigit():
                        add(w, "name", w)
            for w in words(entry.description):
                if len(w) >= 4 and w not in _STOPWORDS:
                    add(w, "description", w)

    def match(self, prompt: str, *, checkpoint: BaseModel = BaseModel.unknown,
              catalog: Catalog | None = None, node: str | None = None) -> list[LoraMatch]:
        """LoRAs that fit *prompt*, best first; only those usable with *checkpoint* (and on *node*)."""
        hits: dict[int, LoraMatch] = {}
        why: dict[int, list[tuple[float, str]]] = {}
        for phrase in prompt_phrases(prompt):
            for i, where, shown in self._index.get(phrase, ()):
                entry = self.entries[i]
                m = hits.get(i)
                if m is None:
                    if not entry.base_model.fits(checkpoint):
                        continue
                    if node and catalog is not None and catalog.available_on(entry, node) is False:
                        continue
                    m = hits[i] = LoraMatch(entry)
                points, reason = _FIELDS[where]
                m.score += points
                why.setdefault(i, []).append((-points, reason.format(shown)))
        ranked = sorted(hits.values(), key=lambda m: (-m.score, m.entry.name.lower()))
        for i, m in hits.items():
            m.reasons = [text for _p, text in sorted(why[i])]  # strongest reason first
        return ranked
