"""SD prompt syntax the LLM must not touch, and the word-level tools the checks share.

`(word:1.2)` weights, `<lora:name:0.8>` (and lyco/hypernet) tags, `__wildcards__` and
`{a|b}` variants mean something to the SD server or the randomizer; an LLM tends to drop,
reformat or invent them. The checks here run on every answer, in code, whatever the model did.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from stablenew.backends.lora_tags import NETWORK_TAG

#: Extra-network tags: LoRAs (`<lora:…>`, `<lyco:…>`) and hypernetworks.
LORA = NETWORK_TAG
WILDCARD = re.compile(r"__[\w\-/*.~@]+__")
VARIANT = re.compile(r"\{[^{}]*\|[^{}]*\}")
WEIGHT = re.compile(r"\(((?:[^():]|\([^()]*\))+):\s*(-?\d+(?:\.\d+)?)\s*\)")
PROTECTED = re.compile("|".join(p.pattern for p in (LORA, WILDCARD, VARIANT, WEIGHT)), re.IGNORECASE)

#: Little words that carry no content: rewording may add or drop them freely.
STOPWORDS = frozenset((
    "a", "an", "the", "of", "with", "in", "on", "at", "and", "or", "to", "by", "for", "from",
    "her", "his", "its", "their", "is", "are", "very", "into", "over", "under", "behind", "near",
    "wearing", "while", "as"))


def literally(text: str) -> Callable[[re.Match[str]], str]:
    """A `re.sub` replacement that puts *text* in as written (a string replacement would read
    its backslashes as escapes)."""
    return lambda _match: text


def protected(text: str) -> list[str]:
    """The syntax tokens in *text*, in order, each once."""
    seen: dict[str, None] = {}
    for match in PROTECTED.finditer(text):
        seen.setdefault(match.group(0), None)
    return list(seen)


def lora_name(token: str) -> str:
    return token[1:-1].split(":")[1].strip().lower()


def words(text: str) -> set[str]:
    """Content words of *text*, lower case, without syntax punctuation, weights, LoRA tags or
    little words."""
    plain = WEIGHT.sub(lambda m: m.group(1), LORA.sub(" ", text))
    return {w for w in re.findall(r"[a-z0-9]+(?:'[a-z]+)?", plain.lower()) if w not in STOPWORDS}


def stem(word: str) -> str:
    """A crude stem, so "rainy", "rain" and "rains" count as one word in the checks."""
    return re.sub(r"(?:ing|ed|es|ies|ly|y|s)$", "", word) if len(word) > 4 else word


def split_parts(text: str) -> list[str]:
    """A prompt's comma-separated parts, stripped; commas inside (…) or {…} do not split."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "({[<":
            depth += 1
        elif ch in ")}]>":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def join_parts(parts: Iterable[str]) -> str:
    return ", ".join(p for p in parts if p)


def estimate_tokens(text: str) -> int:
    """Roughly what a CLIP tokenizer counts: words, numbers and punctuation marks; LoRA tags
    and weight syntax cost nothing (the server strips them before encoding)."""
    plain = LORA.sub(" ", text)
    plain = WEIGHT.sub(lambda m: m.group(1), plain)
    return len(re.findall(r"[A-Za-z]+|\d+|[^\w\s]", plain))


def restore_protected(original: str, answer: str) -> tuple[str, list[str]]:
    """*answer* with every syntax token of *original* back as written (in place where the model
    only reformatted it, appended where it dropped it) and the LoRA tags and wildcards it
    invented removed; with one plain note per repair."""
    notes: list[str] = []
    kept = protected(original)
    for token in kept:
        if token in answer:
            continue
        weight = WEIGHT.fullmatch(token)
        if weight:
            inner = re.escape(weight.group(1).strip())
            reweighted = re.compile(r"\(\s*" + inner + r"\s*:\s*-?[\d.]+\s*\)", re.IGNORECASE)
            bare = re.compile(r"(?<![\w(])" + inner + r"(?![\w:])", re.IGNORECASE)
            if reweighted.search(answer):
                answer = reweighted.sub(literally(token), answer, count=1)
            elif bare.search(answer):
                answer = bare.sub(literally(token), answer, count=1)
            else:
                answer = join_parts([answer, token])
            notes.append(f"kept the weight {token} as you wrote it")
            continue
        if LORA.fullmatch(token):
            name = lora_name(token)
            changed = [t for t in LORA.findall(answer) if lora_name(t) == name]
            if changed:
                answer = answer.replace(changed[0], token, 1)
                notes.append(f"kept {token} as you wrote it")
                continue
        answer = join_parts([answer, token])
        notes.append(f"put back {token}, which the LLM dropped")
    for token in protected(answer):
        if token in kept:
            continue
        if LORA.fullmatch(token) and lora_name(token) in {lora_name(t) for t in kept if LORA.fullmatch(t)}:
            continue
        if LORA.fullmatch(token) or WILDCARD.fullmatch(token):
            answer = remove_phrase(answer, token)
            notes.append(f"removed {token}, which the LLM made up")
    return answer, notes


def remove_phrase(text: str, phrase: str) -> str:
    """*text* without *phrase* (case-insensitive, whole words), tidied at the commas."""
    pattern = re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", re.IGNORECASE)
    parts = []
    for part in split_parts(text):
        if not pattern.search(part):
            parts.append(part)
            continue
        left = re.sub(r"\s{2,}", " ", pattern.sub("", part)).strip(" .")
        # "a cat in a red scarf" without "red scarf" is "a cat", not "a cat in a".
        bits = left.split()
        while bits and bits[-1].lower() in STOPWORDS:
            bits.pop()
        left = " ".join(bits)
        if left and left not in ("()", "( )"):
            parts.append(left)
    return join_parts(parts)


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether *phrase* occurs in *text* as whole words (case-insensitive), weighted or not."""
    return re.search(r"(?<!\w)" + re.escape(phrase.strip()) + r"(?!\w)", text, re.IGNORECASE) is not None
