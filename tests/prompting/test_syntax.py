"""SD syntax the LLM must not touch is put back in code, and what it invents is taken out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stablenew.prompting.syntax import (
    estimate_tokens,
    protected,
    remove_phrase,
    restore_protected,
    split_parts,
)

ORIGINAL = "a (red hair:1.2) woman, <lora:add_detail:0.8>, __animal__ friend, {day|night}"


def test_protected_tokens_are_found_in_order():
    assert protected(ORIGINAL) == ["(red hair:1.2)", "<lora:add_detail:0.8>", "__animal__", "{day|night}"]


def test_an_untouched_answer_needs_no_repair():
    answer = ORIGINAL + ", cinematic lighting"
    assert restore_protected(ORIGINAL, answer) == (answer, [])


def test_a_dropped_weight_is_put_back_in_place():
    text, notes = restore_protected("(red hair:1.2), woman", "red hair, woman, soft light")
    assert text == "(red hair:1.2), woman, soft light"
    assert notes == ["kept the weight (red hair:1.2) as you wrote it"]


def test_a_changed_weight_and_lora_strength_are_reset():
    text, _ = restore_protected("(red hair:1.2), <lora:add_detail:0.8>",
                                "(red hair:1.5), <lora:add_detail:1.0>, moody")
    assert text == "(red hair:1.2), <lora:add_detail:0.8>, moody"


def test_dropped_wildcards_and_variants_are_appended():
    text, notes = restore_protected("__animal__ in {day|night}", "a fox in the forest")
    assert text == "a fox in the forest, __animal__, {day|night}"
    assert len(notes) == 2


def test_invented_loras_and_wildcards_are_removed():
    text, notes = restore_protected("a cat", "a cat, <lora:epic_realism:0.7>, __style__, sharp")
    assert text == "a cat, sharp"
    assert notes == ["removed <lora:epic_realism:0.7>, which the LLM made up",
                     "removed __style__, which the LLM made up"]


def test_commas_inside_syntax_do_not_split():
    assert split_parts("a, (b, c:1.1), {d, e|f}") == ["a", "(b, c:1.1)", "{d, e|f}"]


def test_remove_phrase_tidies_commas():
    assert remove_phrase("a cat, red scarf, snow", "red scarf") == "a cat, snow"
    assert remove_phrase("a cat in a red scarf, snow", "red scarf") == "a cat, snow"


def test_lora_tags_and_weights_cost_no_tokens():
    assert estimate_tokens("<lora:x:0.8> (red hair:1.2), cat") == estimate_tokens("red hair, cat")


WORDS = st.sampled_from(["cat", "red hair", "snow", "neon city", "portrait", "rain", "85mm"])
TOKENS = st.sampled_from(["(red hair:1.2)", "<lora:add_detail:0.8>", "__animal__", "{day|night}",
                          "(snow:0.9)", "<lora:film_grain:0.5>"])


@settings(max_examples=200, deadline=None)
@given(original=st.lists(st.one_of(WORDS, TOKENS), min_size=1, max_size=8),
       keep=st.lists(st.booleans(), min_size=8, max_size=8),
       invented=st.lists(st.sampled_from(["<lora:epic:0.7>", "__style__", "masterpiece"]), max_size=2))
def test_whatever_the_llm_drops_or_invents_the_users_syntax_survives(original, keep, invented):
    text = ", ".join(original)
    answer = ", ".join([p for p, k in zip(original, keep, strict=False) if k] + invented)
    repaired, _notes = restore_protected(text, answer)
    for token in protected(text):
        assert token in repaired
    assert "<lora:epic:0.7>" not in repaired and "__style__" not in repaired
