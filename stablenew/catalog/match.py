"""Matching a prompt against the catalog: a score per LoRA and the reasons in words.

An inverted index (phrase -> the LoRAs that carry it as a trigger word, tag, name or
description word) is built once per catalog, so matching one prompt costs a few dictionary
lookups per prompt word, not a pass over every LoRA.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from stablenew.backends.lora_tags import NETWORK_TAG
from stablenew.catalog.entry import BaseModel, ModelEntry, ModelKind
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
_WEIGHT = re.compile(r":\s*-?\d+(?:\.\d+)?\s*(?=[)\]])")
_STOP_TEXT = """a an and are as at be by for from has have in into is it its of on or that the
this to with was were will your you lora model style trained version use used using"""
#: Words too common to say anything when they appear in a name or a description.
_STOPWORDS = frozenset(_STOP_TEXT.split())


def words(text: str) -> list[str]:
    return [w.strip("'-").lower() for w in _WORD.findall(text.replace("_", " ")) if w.strip("'-")]


def prompt_phrases(prompt: str) -> set[str]:
    """Every run of 1-4 words inside each comma part of *prompt*, lower-cased, syntax removed."""
    text = _WEIGHT.sub("", NETWORK_TAG.sub(",", prompt))
    found: set[str] = set()
    for part in re.split(r"[,|\n.;]+", text):
        ws = words(part)
        for n in range(1, _MAX_PHRASE_WORDS + 1):
            for i in range(len(ws) - n + 1):
                found.add(" ".join(ws[i:i + n]))
    return found


@functools.lru_cache(maxsize=65536)
def _phrase(text: str) -> str:
    # Cached: tags repeat across a library, so most are normalised once.
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
        self.entries = [e for e in entries if e.kind is ModelKind.lora]
        self._family = [e.base_model.family for e in self.entries]
        #: phrase -> [(entry index, points, reason)], the reason already in words.
        self._index: dict[str, list[tuple[int, float, str]]] = {}
        for i, entry in enumerate(self.entries):
            seen: set[str] = set()
            for where, texts in (("trigger", entry.triggers), ("tag", entry.tags),
                                 ("name", _name_words(entry)), ("description", _description_words(entry))):
                points, reason = _FIELDS[where]
                for text in texts:
                    key = _phrase(text)
                    if not key or key in seen or key.count(" ") >= _MAX_PHRASE_WORDS:
                        continue  # a phrase counts once per LoRA, where it is worth most
                    seen.add(key)
                    shown = text.strip() if where in ("trigger", "tag") else key
                    self._index.setdefault(key, []).append((i, points, reason.format(shown)))

    def match(self, prompt: str, *, checkpoint: BaseModel = BaseModel.unknown,
              catalog: Catalog | None = None, node: str | None = None) -> list[LoraMatch]:
        """LoRAs that fit *prompt*, best first; only those usable with *checkpoint* (and on *node*)."""
        family = checkpoint.family
        any_family = checkpoint is BaseModel.unknown
        unknown = BaseModel.unknown
        hits: dict[int, list] = {}
        refused: set[int] = set()
        for phrase in prompt_phrases(prompt):
            for i, points, reason in self._index.get(phrase, ()):
                acc = hits.get(i)
                if acc is None:
                    if i in refused:
                        continue
                    fam = self._family[i]
                    if not (any_family or fam is family or fam is unknown) or (
                            node and catalog is not None
                            and catalog.available_on(self.entries[i], node) is False):
                        refused.add(i)
                        continue
                    acc = hits[i] = [0.0, []]
                acc[0] += points
                acc[1].append((-points, reason))
        ranked = [LoraMatch(self.entries[i], score, [r for _p, r in sorted(why)])
                  for i, (score, why) in hits.items()]
        ranked.sort(key=lambda m: (-m.score, m.entry.name.lower()))
        return ranked


def _name_words(entry: ModelEntry) -> list[str]:
    names = dict.fromkeys((entry.name, entry.alias, entry.display_name))
    return [w for name in names for w in words(name)
            if len(w) >= 3 and w not in _STOPWORDS and not w.isdigit()]


def _description_words(entry: ModelEntry) -> list[str]:
    return [w for w in words(entry.description) if len(w) >= 4 and w not in _STOPWORDS]
