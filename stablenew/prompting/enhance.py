"""Enhance: the local LLM enriches a prompt in one style; code then checks the answer.

Whatever the model wrote, the result keeps every syntax token the user wrote (weights, LoRA
tags, wildcards, variants), every part of the user's prompt, and the family's token budget
(only words the LLM added are trimmed). `enhance_or_keep` is what a run calls: a failing LLM
leaves the original prompt and a notice, never an exception.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from stablenew.pipeline.cancel import CancelToken
from stablenew.prompting.cleaning import clean_prompt
from stablenew.prompting.client import LLMClient, Message, TokenCallback
from stablenew.prompting.errors import LLMBadOutput, LLMError
from stablenew.prompting.syntax import (
    estimate_tokens,
    join_parts,
    protected,
    restore_protected,
    split_parts,
    words,
)
from stablenew.prompting.templates import ModelFamily, NamedTemplate

log = logging.getLogger("stablenew.prompting.enhance")


def syntax_rules(family: ModelFamily) -> str:
    """The prompt-syntax rules every system prompt of this room carries."""
    if family.sentences:
        form = ("Write one to three natural sentences that describe the image; no lists of "
                "keywords.")
    elif family is ModelFamily.pony:
        form = "Write booru-style tags separated by commas (short phrases), no sentences."
    else:
        form = "Write short comma-separated phrases (tags), no full sentences."
    return (
        f"The image model is {family.label}. {form}\n"
        "Copy these exactly as written and where they stand, never change or explain them: "
        "weights like (red hair:1.2), LoRA tags like <lora:name:0.8>, wildcards like __animal__ "
        "and variants like {red|blue}. Never invent LoRA tags or wildcards.\n"
        f"Keep the whole prompt under about {family.token_budget} tokens.\n"
        "Answer with the prompt only: no introduction, no explanation, no quotes, no code fences.")


def enhance_messages(prompt: str, template: NamedTemplate, family: ModelFamily) -> list[Message]:
    system = (
        "You improve prompts for a Stable Diffusion image generator. Keep every subject, object "
        "and detail the user wrote; add to it, never replace it.\n"
        f"{syntax_rules(family)}\n"
        f"Style: {template.template.label}. {template.template.instructions.strip()}")
    return [{"role": "system", "content": system}, {"role": "user", "content": f"Prompt: {prompt}"}]


@dataclass
class EnhanceResult:
    """What a prompt became: `prompt` is what to send (the original when the LLM failed)."""

    original: str
    prompt: str
    template: str
    model: str = ""
    family: ModelFamily = ModelFamily.sdxl
    checks: list[str] = field(default_factory=list)  # what code repaired in the answer
    error: LLMError | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return self.prompt != self.original

    @property
    def notice(self) -> str:
        """One plain sentence for the user when the prompt could not be enhanced."""
        if self.error is None:
            return ""
        return f"The prompt was not enhanced and is used as you wrote it: {self.error.message}"


def check_enhanced(original: str, answer: str, family: ModelFamily) -> tuple[str, list[str]]:
    """*answer* repaired against *original*: syntax tokens back, the user's dropped parts back,
    over-budget additions trimmed from the end; with one note per repair."""
    text, notes = restore_protected(original, answer)
    tokens = set(protected(original))
    answer_words = words(text)
    for part in split_parts(original):
        if part in tokens or part in text:
            continue
        if not words(part) <= answer_words:
            text = join_parts([text, part]) if not family.sentences else f"{text.rstrip('.')}, {part}."
            notes.append(f"kept '{part}', which the LLM dropped")
            answer_words |= words(part)
    budget = max(family.token_budget, estimate_tokens(original))
    if estimate_tokens(text) > budget and not family.sentences:
        parts = split_parts(text)
        mine = set(split_parts(original)) | tokens
        trimmed = 0
        for i in range(len(parts) - 1, -1, -1):
            if estimate_tokens(join_parts(parts)) <= budget:
                break
            if parts[i] not in mine:
                parts.pop(i)
                trimmed += 1
        if trimmed:
            text = join_parts(parts)
            notes.append(f"trimmed {trimmed} added phrase{'s' if trimmed != 1 else ''} to stay "
                         f"within about {budget} tokens")
    return text, notes


async def enhance(client: LLMClient, prompt: str, template: NamedTemplate, *, model: str,
                  family: ModelFamily = ModelFamily.sdxl, on_token: TokenCallback | None = None,
                  cancel: CancelToken | None = None, keep_alive: str | int | None = None,
                  seed: int | None = None) -> EnhanceResult:
    """The enhanced prompt, checked; raises LLMError (LLMBadOutput for an empty answer)."""
    answer = await client.chat(enhance_messages(prompt, template, family), model=model,
                               temperature=template.template.temperature, max_tokens=400,
                               on_token=on_token, cancel=cancel, keep_alive=keep_alive, seed=seed)
    cleaned = clean_prompt(answer.text, sentences=family.sentences)
    if not cleaned:
        raise LLMBadOutput("The LLM answered without a prompt; the prompt was left as it was.",
                           detail=f"raw answer: {answer.text[:200]!r}")
    text, checks = check_enhanced(prompt, cleaned, family)
    log.info("enhance: %s with %s (%s) in %.2f s, %d repair(s)", template.name, answer.model,
             family.value, answer.seconds, len(checks))
    return EnhanceResult(prompt, text, template.name, answer.model, family, checks,
                         seconds=answer.seconds)


async def enhance_or_keep(client: LLMClient, prompt: str, template: NamedTemplate, *, model: str,
                          family: ModelFamily = ModelFamily.sdxl,
                          on_token: TokenCallback | None = None, cancel: CancelToken | None = None,
                          keep_alive: str | int | None = None, seed: int | None = None) -> EnhanceResult:
    """`enhance`, or the original prompt with the error kept when the LLM fails: a run goes on."""
    try:
        return await enhance(client, prompt, template, model=model, family=family,
                             on_token=on_token, cancel=cancel, keep_alive=keep_alive, seed=seed)
    except LLMError as exc:
        log.warning("enhance: kept the original prompt: %s (%s)", exc.message, exc.detail)
        return EnhanceResult(prompt, prompt, template.name, model, family, error=exc)
