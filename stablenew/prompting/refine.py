"""Refine a prompt from the user's words about the images, in three steps, each checked.

One LLM call drifts from intent and adds flowery words, so: (1) interpret turns the feedback
into structured changes (JSON validated with pydantic, one retry with the error); (2) rewrite
applies them, and code then holds the answer to them: nothing in `keep` dropped, everything in
`remove` gone, nothing new that neither the changes nor the original (nor a picked image's
description) contain, emphasis as weights; (3) describe, optional, has a vision model put a
picked image into words for "more like this". The result carries a diff for the user to accept
or edit.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stablenew.pipeline.cancel import CancelToken
from stablenew.prompting.cleaning import clean_prompt, extract_json
from stablenew.prompting.client import LLMClient, Message, TokenCallback, image_message
from stablenew.prompting.enhance import syntax_rules
from stablenew.prompting.errors import LLMBadOutput
from stablenew.prompting.syntax import (
    WEIGHT,
    contains_phrase,
    join_parts,
    literally,
    protected,
    remove_phrase,
    restore_protected,
    split_parts,
    stem,
    words,
)
from stablenew.prompting.templates import ModelFamily

if TYPE_CHECKING:
    from stablenew.prompting.intent import IntentDocument

log = logging.getLogger("stablenew.prompting.refine")

UP_WEIGHT = "1.2"
DOWN_WEIGHT = "0.8"


class Modification(BaseModel):
    """One phrase of the prompt replaced by another."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    from_: str = Field(..., alias="from", min_length=1)
    to: str = Field(..., min_length=1)


class Changes(BaseModel):
    """What the user's feedback asks of the prompt, as step 1 must answer it."""

    model_config = ConfigDict(extra="ignore")

    keep: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    add: list[str] = Field(default_factory=list)
    modify: list[Modification] = Field(default_factory=list)
    emphasis_up: list[str] = Field(default_factory=list)
    emphasis_down: list[str] = Field(default_factory=list)

    @field_validator("keep", "remove", "add", "emphasis_up", "emphasis_down")
    @classmethod
    def _phrases(cls, value: list[str]) -> list[str]:
        return [p.strip() for p in value if p.strip()]

    @model_validator(mode="after")
    def _no_contradiction(self) -> Changes:
        both = {p.lower() for p in self.keep} & {p.lower() for p in self.remove}
        if both:
            raise ValueError(f"{sorted(both)} cannot be in both keep and remove")
        return self

    def phrases(self) -> list[str]:
        """Every phrase the changes name (what the rewrite may bring in)."""
        out = [*self.keep, *self.add, *self.emphasis_up, *self.emphasis_down]
        out += [m.to for m in self.modify]
        return out

    def is_empty(self) -> bool:
        return not (self.remove or self.add or self.modify or self.emphasis_up or self.emphasis_down)


CHANGES_SHAPE = ('{"keep": [], "remove": [], "add": [], "modify": [{"from": "", "to": ""}], '
                 '"emphasis_up": [], "emphasis_down": []}')


@dataclass
class RefineResult:
    """A refined prompt: what was asked, what the LLM wrote, what code changed and the diff."""

    original: str
    prompt: str
    changes: Changes
    checks: list[str] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)
    unasked: list[str] = field(default_factory=list)  # new words code could not take out
    descriptions: list[str] = field(default_factory=list)
    attempts: int = 1  # interpret answers needed (2: the retry was used)
    model: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"original": self.original, "prompt": self.prompt,
                "changes": self.changes.model_dump(by_alias=True), "checks": self.checks,
                "diff": self.diff, "unasked": self.unasked, "descriptions": self.descriptions,
                "interpret_attempts": self.attempts, "model": self.model}


# --- step 1: interpret -------------------------------------------------------------------

def interpret_messages(prompt: str, feedback: str, picked: Sequence[str], rejected: Sequence[str],
                       intent: IntentDocument | None) -> list[Message]:
    system = (
        "You turn a user's feedback about images made from a Stable Diffusion prompt into "
        "structured changes to that prompt. Answer with one JSON object only, shaped like "
        f"{CHANGES_SHAPE}. keep: phrases of the current prompt the user wants to stay; remove: "
        "phrases of the current prompt to take out; add: new phrases; modify: a phrase of the "
        "prompt and what replaces it; emphasis_up / emphasis_down: phrases of the prompt to make "
        "stronger / weaker. Use the user's own words; never add changes the user did not ask for.")
    lines = [f"Current prompt: {prompt}", f"Feedback: {feedback}"]
    lines += [f"An image the user liked shows: {d}" for d in picked]
    lines += [f"An image the user rejected shows: {d}" for d in rejected]
    if intent is not None and not intent.is_empty():
        lines.append(f"Earlier in this session:\n{intent.summary()}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def parse_changes(text: str) -> Changes:
    """Changes from a model's answer; ValueError (or ValidationError) saying what is wrong."""
    data = extract_json(text)
    if not isinstance(data, dict):
        raise ValueError("the answer must be one JSON object")
    return Changes.model_validate(data)


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'object'}: {e['msg']}"
                         for e in exc.errors(include_url=False))
    return str(exc)


async def interpret(client: LLMClient, prompt: str, feedback: str, *, model: str,
                    picked: Sequence[str] = (), rejected: Sequence[str] = (),
                    intent: IntentDocument | None = None, cancel: CancelToken | None = None,
                    on_token: TokenCallback | None = None) -> tuple[Changes, int]:
    """The feedback as validated Changes and how many answers it took (1 or 2); a second
    unusable answer is LLMBadOutput."""
    messages = interpret_messages(prompt, feedback, picked, rejected, intent)
    problem = ""
    for attempt in (1, 2):
        answer = await client.chat(messages, model=model, temperature=0.2, max_tokens=600,
                                   cancel=cancel, on_token=on_token)
        try:
            return parse_changes(answer.text), attempt
        except (ValueError, ValidationError) as exc:
            problem = _problem(exc)
            log.info("refine: interpret answer %d unusable: %s", attempt, problem)
            messages = [*messages, {"role": "assistant", "content": answer.text},
                        {"role": "user", "content": f"That answer could not be used: {problem}. "
                         f"Answer again with only the JSON object, shaped like {CHANGES_SHAPE}."}]
    raise LLMBadOutput("The LLM did not turn your feedback into changes StableNew can check; the "
                       "prompt was left as it was. Try saying it more simply, or another model.",
                       detail=f"two unusable answers; last problem: {problem}")


# --- step 2: rewrite ---------------------------------------------------------------------

def rewrite_messages(prompt: str, changes: Changes, family: ModelFamily,
                     descriptions: Sequence[str], intent: IntentDocument | None) -> list[Message]:
    system = (
        "You rewrite a Stable Diffusion prompt by applying a list of changes, and nothing else: "
        "keep every other phrase as it is, add no new ideas, no flowery words.\n"
        f"{syntax_rules(family)}")
    lines = [f"Current prompt: {prompt}",
             f"Changes: {json.dumps(changes.model_dump(by_alias=True))}"]
    lines += [f"The user wants more like an image that shows: {d}" for d in descriptions]
    if intent is not None and intent.avoid:
        lines.append("Never use: " + ", ".join(intent.avoid))
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def _weighted(text: str, phrase: str, weight: str) -> tuple[str, bool]:
    """*text* with *phrase* carrying *weight* (its old weight replaced); whether it was found."""
    for match in WEIGHT.finditer(text):
        if match.group(1).strip().lower() == phrase.lower():
            return text[: match.start()] + f"({match.group(1).strip()}:{weight})" + text[match.end():], True
    bare = re.compile(r"(?<![\w(])" + re.escape(phrase) + r"(?![\w:])", re.IGNORECASE)
    found = bare.search(text)
    if not found:
        return text, False
    return text[: found.start()] + f"({found.group(0)}:{weight})" + text[found.end():], True


def check_rewrite(original: str, answer: str, changes: Changes, family: ModelFamily,
                  descriptions: Sequence[str] = ()) -> tuple[str, list[str], list[str]]:
    """*answer* held to *changes*: (prompt, notes on what code repaired, unasked words left in
    sentences it could not cut)."""
    notes: list[str] = []
    base = original
    for phrase in changes.remove:
        base = remove_phrase(base, phrase) if phrase in protected(original) else base
    text, syntax_notes = restore_protected(base, answer)
    notes += syntax_notes
    for phrase in changes.remove:
        if contains_phrase(text, phrase):
            text = remove_phrase(text, phrase)
            notes.append(f"took out '{phrase}', which you asked to remove")
    for mod in changes.modify:
        if contains_phrase(text, mod.to):
            if contains_phrase(text, mod.from_) and not contains_phrase(mod.to, mod.from_):
                text = remove_phrase(text, mod.from_)
                notes.append(f"took out '{mod.from_}', replaced by '{mod.to}'")
        elif contains_phrase(text, mod.from_):
            pattern = re.compile(r"(?<!\w)" + re.escape(mod.from_) + r"(?!\w)", re.IGNORECASE)
            text = pattern.sub(literally(mod.to), text, count=1)
            notes.append(f"changed '{mod.from_}' to '{mod.to}'")
        else:
            text = join_parts([text, mod.to])
            notes.append(f"added '{mod.to}'")
    replaced = {m.from_.lower() for m in changes.modify}
    for phrase in changes.keep:
        if phrase.lower() not in replaced and not contains_phrase(text, phrase):
            text = join_parts([text, phrase])
            notes.append(f"kept '{phrase}', which the LLM dropped")
    for phrase in changes.add:
        if not words(phrase) <= words(text):
            text = join_parts([text, phrase])
            notes.append(f"added '{phrase}', which the LLM left out")
    for phrases, weight in ((changes.emphasis_up, UP_WEIGHT), (changes.emphasis_down, DOWN_WEIGHT)):
        for phrase in phrases:
            fixed, found = _weighted(text, phrase, weight)
            if found and fixed != text:
                if f"({phrase}:{weight})".lower() not in text.lower():
                    notes.append(f"weighted '{phrase}' as ({phrase}:{weight})")
                text = fixed
    allowed = {stem(w) for w in words(original) | words(" ".join(changes.phrases()))
               | words(" ".join(descriptions))}
    unasked: list[str] = []
    if family.sentences:
        unasked = sorted({w for w in words(text) if stem(w) not in allowed})
    else:
        kept_parts = []
        for part in split_parts(text):
            new = {w for w in words(part) if stem(w) not in allowed}
            if new and part not in protected(original):
                notes.append(f"dropped '{part}', which nobody asked for")
                continue
            kept_parts.append(part)
        text = join_parts(kept_parts)
    return text, notes, unasked


def prompt_diff(old: str, new: str) -> list[str]:
    """The change from *old* to *new*, part by part: "- part" gone, "+ part" new."""
    a, b = split_parts(old), split_parts(new)
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag in ("delete", "replace"):
            out += [f"- {p}" for p in a[i1:i2]]
        if tag in ("insert", "replace"):
            out += [f"+ {p}" for p in b[j1:j2]]
    return out


async def rewrite(client: LLMClient, prompt: str, changes: Changes, *, model: str,
                  family: ModelFamily = ModelFamily.sdxl, descriptions: Sequence[str] = (),
                  intent: IntentDocument | None = None, cancel: CancelToken | None = None,
                  on_token: TokenCallback | None = None) -> tuple[str, list[str], list[str]]:
    answer = await client.chat(rewrite_messages(prompt, changes, family, descriptions, intent),
                               model=model, temperature=0.3, max_tokens=400, cancel=cancel,
                               on_token=on_token)
    cleaned = clean_prompt(answer.text, sentences=family.sentences)
    if not cleaned:
        raise LLMBadOutput("The LLM answered without a prompt; the prompt was left as it was.",
                           detail=f"raw answer: {answer.text[:200]!r}")
    return check_rewrite(prompt, cleaned, changes, family, descriptions)


# --- step 3: describe --------------------------------------------------------------------

DESCRIBE_ASK = ("Describe this image for someone writing a Stable Diffusion prompt: subject, "
                "composition, style, mood, colours and lighting, as short comma-separated "
                "phrases on one line. No introduction.")


async def describe(client: LLMClient, png: bytes, *, model: str, cancel: CancelToken | None = None,
                   mime: str = "image/png") -> str:
    """A vision model's words for an image; LLMRejected when the model cannot see images."""
    answer = await client.chat([image_message(DESCRIBE_ASK, png, mime)], model=model,
                               temperature=0.2, max_tokens=300, cancel=cancel)
    text = clean_prompt(answer.text)
    if not text:
        raise LLMBadOutput("The vision model gave no description of the image.",
                           detail=f"raw answer: {answer.text[:200]!r}")
    return text


# --- the three steps together ------------------------------------------------------------

async def refine(client: LLMClient, prompt: str, feedback: str, *, model: str,
                 family: ModelFamily = ModelFamily.sdxl, picked: Sequence[str] = (),
                 rejected: Sequence[str] = (), intent: IntentDocument | None = None,
                 cancel: CancelToken | None = None,
                 on_token: TokenCallback | None = None) -> RefineResult:
    """Interpret, then rewrite and check; *picked*/*rejected* are image descriptions (from
    `describe` or the user). Raises LLMError; the caller keeps *prompt* when it does."""
    changes, attempts = await interpret(client, prompt, feedback, model=model, picked=picked,
                                        rejected=rejected, intent=intent, cancel=cancel)
    if changes.is_empty() and not picked:
        return RefineResult(prompt, prompt, changes, ["the feedback asked for no change"], [],
                            attempts=attempts, model=model)
    new, checks, unasked = await rewrite(client, prompt, changes, model=model, family=family,
                                         descriptions=picked, intent=intent, cancel=cancel,
                                         on_token=on_token)
    result = RefineResult(prompt, new, changes, checks, prompt_diff(prompt, new), unasked,
                          list(picked), attempts, model)
    if intent is not None:
        intent.record(feedback, result, rejected)
    return result
