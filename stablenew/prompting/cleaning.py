"""What models wrap around an answer, taken off: `<think>` blocks, code fences, quotes,
"Here is your prompt:" preambles and closing notes. JSON is dug out of the same wrapping."""

from __future__ import annotations

import json
import re
from typing import Any

THINK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
FENCE = re.compile(r"```[\w-]*[ \t]*\n?(.*?)```", re.DOTALL)
PREAMBLE = re.compile(
    r"^(?:sure|okay|ok|certainly|of course|absolutely|great|here(?:'s| is| are)|below is|"
    r"i(?:'ve| have)|this is)\b[^\n]*[:!.]\s*$", re.IGNORECASE)
LABEL = re.compile(r"^\**(?:final |enhanced |improved |new |rewritten |refined |revised |"
                   r"positive |stable diffusion )?prompt\**\s*:\**\s*", re.IGNORECASE)
#: "Here is your prompt: a cat, …" on one line: the words before the colon go.
INLINE_PREAMBLE = re.compile(r"^(?:(?:sure|okay|ok|certainly|of course)[!,.]?\s*)?"
                             r"here(?:'s| is| are)\b[^:\n]{0,60}:\s*", re.IGNORECASE)
NOTE = re.compile(r"^(?:\(?note\b|notes?:|explanation:|this prompt\b|i (?:added|kept|removed)\b|"
                  r"changes?:)", re.IGNORECASE)
QUOTES = ('"', "'", "`", "“", "”", "‘", "’", "«", "»")


def strip_think(text: str) -> str:
    """Without reasoning: closed `<think>` blocks, an unclosed one (all thinking, no answer),
    and anything before a lone `</think>` (the opening tag was in the chat template)."""
    text = THINK.sub("", text)
    if "</think>" in text.lower():
        text = re.split(r"</think>", text, flags=re.IGNORECASE)[-1]
    opened = re.search(r"<think>", text, re.IGNORECASE)
    if opened:
        text = text[: opened.start()]
    return text.strip()


def clean_prompt(text: str, *, sentences: bool = False) -> str:
    """The prompt in a model's answer as one line: tags joined with commas (*sentences*:
    with spaces)."""
    text = strip_think(text)
    fenced = FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    lines = [line for line in lines if line]
    while lines and PREAMBLE.match(lines[0]):
        lines.pop(0)
    if lines:
        lines[0] = LABEL.sub("", INLINE_PREAMBLE.sub("", lines[0]))
    kept: list[str] = []
    for line in lines:
        if kept and NOTE.match(line):
            break  # everything after a closing note is commentary
        line = re.sub(r"^(?:[-*•]\s+|\d+[.)]\s+)", "", line).replace("**", "")
        if line and not LABEL.fullmatch(line):
            kept.append(_unquote(line))
    joiner = " " if sentences else ", "
    text = joiner.join(line.rstrip(",") for line in kept if line)
    text = _unquote(text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*,(?:\s*,)+", ",", text)
    return text.strip(" ,")


def _unquote(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in QUOTES and text[-1] in QUOTES:
        text = text[1:-1].strip()
    return text


def extract_json(text: str) -> Any:
    """The JSON object in a model's answer (inside fences, after reasoning, with prose around
    it); ValueError saying what is wrong when there is none."""
    text = strip_think(text)
    fenced = FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("the answer holds no JSON object")
    return json.loads(text[start:end + 1])
