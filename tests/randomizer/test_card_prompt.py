"""Choices left in a config's prompts are picked before it is sent, whatever path queued it."""

from __future__ import annotations

import pytest

from stablenew.pipeline.config import PipelineConfig
from stablenew.randomizer.card_prompt import pick_choices
from stablenew.randomizer.errors import TemplateError


def config(prompt: str, seed: int = 5, negative: str = "") -> PipelineConfig:
    return PipelineConfig().with_changes({"txt2img.prompt": prompt, "txt2img.seed": seed,
                                          "txt2img.negative_prompt": negative})


def test_the_same_seed_picks_the_same_and_seeds_spread_over_the_choices():
    picks = {pick_choices(config("a {red|blue|green} sky", seed=s)).txt2img.prompt
             for s in range(40)}
    assert picks == {"a red sky", "a blue sky", "a green sky"}
    once = pick_choices(config("a {red|blue|green} sky", seed=7)).txt2img.prompt
    assert pick_choices(config("a {red|blue|green} sky", seed=7)).txt2img.prompt == once


def test_negative_prompts_and_wildcards_are_picked_too(tmp_path):
    (tmp_path / "animal.txt").write_text("cat\ndog\n")
    done = pick_choices(config("a __animal__", negative="{blurry|grainy}"), tmp_path)
    assert done.txt2img.prompt in ("a cat", "a dog")
    assert done.txt2img.negative_prompt in ("blurry", "grainy")


def test_a_prompt_without_choices_is_the_same_object_and_a_bad_one_is_said():
    plain = config("snake_case, (word:1.2), <lora:x:0.5>")
    assert pick_choices(plain) is plain
    with pytest.raises(TemplateError, match="never closed"):
        pick_choices(config("a {red|blue sky"))


def test_without_a_wildcards_folder_wildcards_are_left_for_the_server():
    """A1111 users with the Dynamic Prompts extension keep their wildcards on the server: with
    no folder set here, `__animal__` goes as written, the braces are still picked."""
    done = pick_choices(config("a __animal__ under a {red|blue} sky"))
    assert done.txt2img.prompt in ("a __animal__ under a red sky", "a __animal__ under a blue sky")
    assert pick_choices(config("a __animal__")).txt2img.prompt == "a __animal__"
