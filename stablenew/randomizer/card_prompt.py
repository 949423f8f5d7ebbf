"""Choices in the card's own prompt while variations are off.

A prompt typed on the card with `{red|blue}` or `__animal__` is picked at random for each image,
as ComfyUI's page does when it queues and as the Dynamic Prompts extension does in A1111: the
servers' APIs take the text as written, so sent unresolved the braces would land in the image.
Each image is one variant of a random-mode plan (seeds counting up from the card's, as A1111
counts a batch), so the image count is the card's batch count × batch size, as without
choices, and every image's infotext carries the prompt it was made with.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING

from stablenew.pipeline.config import PipelineConfig
from stablenew.randomizer.counting import compile_template
from stablenew.randomizer.plan import Plan, plan
from stablenew.randomizer.spec import SeedPolicy, VariationMode, VariationSpec

if TYPE_CHECKING:
    from dynamicprompts.wildcards import WildcardManager

#: What can open a choice or a wildcard; a prompt without any runs as written, without a plan.
_MARKS = ("{", "__")
#: A wildcard token, `__animals/cat*__`.
_WILDCARD = re.compile(r"__[^_\s{}|][^\s{}|]*?__")


def may_have_choices(config: PipelineConfig) -> bool:
    """A cheap test (on the Qt thread) whether the card's prompts might hold choices."""
    t = config.txt2img
    return any(mark in text for text in (t.prompt, t.negative_prompt) for mark in _MARKS)


def card_choices_plan(config: PipelineConfig,
                      wildcards: str | Path | WildcardManager | None = None) -> Plan | None:
    """A plan that picks the card prompt's choices at random for each image; None when the
    prompts have no choices (the config runs as it is). A bad template raises TemplateError
    with its position, before anything runs."""
    t = config.txt2img
    if wildcards is None and any(_WILDCARD.search(x) for x in (t.prompt, t.negative_prompt)):
        return None  # wildcards left for the server: the run step picks the braces (pick_choices)
    images = t.batch_count * t.batch_size
    spec = VariationSpec(mode=VariationMode.random, count=images, images_per_variant=1,
                         seed_policy=SeedPolicy.increment)
    made = plan(config, spec, wildcards_dir=wildcards)
    if (made.positive.size <= 1 and made.negative.size <= 1
            and made.positive.text(0) == t.prompt and made.negative.text(0) == t.negative_prompt):
        return None  # nothing to pick (a lone `{`, a `__` in a word): the prompt as written
    return made


def pick_choices(config: PipelineConfig,
                 wildcards: str | Path | WildcardManager | None = None) -> PipelineConfig:
    """*config* with the choices of its prompts picked, for work that reaches the runner with
    them unresolved (Add to queue, a funnel's drafts, a queued job from before): the same pick
    for the same seed and prompt, a fresh one when the seed is random (-1). Unchanged when the
    prompts have none; a bad template raises TemplateError with its position."""
    if not may_have_choices(config):
        return config
    t = config.txt2img
    seed = t.seed if t.seed >= 0 else secrets.randbelow(2**32)
    rng = Random(f"{seed}:{t.prompt}:{t.negative_prompt}")
    prompt = _picked(t.prompt, rng, wildcards)
    negative = _picked(t.negative_prompt, rng, wildcards)
    if (prompt, negative) == (t.prompt, t.negative_prompt):
        return config
    return config.model_copy(update={"txt2img": t.model_copy(
        update={"prompt": prompt, "negative_prompt": negative})})


def _picked(text: str, rng: Random, wildcards: str | Path | WildcardManager | None) -> str:
    if not any(mark in text for mark in _MARKS):
        return text
    kept: list[str] = []
    if wildcards is None:
        # No wildcards folder here: `__name__` stays as written for the server's own Dynamic
        # Prompts extension (and its wildcards) to resolve; the braces are still picked.
        def keep(match: re.Match[str]) -> str:
            kept.append(match.group(0))
            return f"\u2983{len(kept) - 1}\u2984"

        text = _WILDCARD.sub(keep, text)
    space = compile_template(text, wildcards=wildcards)
    picked = space.text(0) if space.size <= 1 else space.sample(rng)
    for i, token in enumerate(kept):
        picked = picked.replace(f"\u2983{i}\u2984", token)
    return picked
