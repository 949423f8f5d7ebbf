"""Choices in the card's own prompt while variations are off.

A prompt typed on the card with `{red|blue}` or `__animal__` is picked at random for each image,
as ComfyUI's page does when it queues and as the Dynamic Prompts extension does in A1111: the
servers' APIs take the text as written, so sent unresolved the braces would land in the image.
Each image is one variant of a random-mode plan (seeds counting up from the card's, as A1111
counts a batch), so the image count is the card's batch count × batch size, as without
choices, and every image's infotext carries the prompt it was made with.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.pipeline.config import PipelineConfig
from stablenew.randomizer.plan import Plan, plan
from stablenew.randomizer.spec import SeedPolicy, VariationMode, VariationSpec

if TYPE_CHECKING:
    from dynamicprompts.wildcards import WildcardManager

#: What can open a choice or a wildcard; a prompt without any runs as written, without a plan.
_MARKS = ("{", "__")


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
    images = t.batch_count * t.batch_size
    spec = VariationSpec(mode=VariationMode.random, count=images, images_per_variant=1,
                         seed_policy=SeedPolicy.increment)
    made = plan(config, spec, wildcards_dir=wildcards)
    if (made.positive.size <= 1 and made.negative.size <= 1
            and made.positive.text(0) == t.prompt and made.negative.text(0) == t.negative_prompt):
        return None  # nothing to pick (a lone `{`, a `__` in a word): the prompt as written
    return made
