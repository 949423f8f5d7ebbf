"""Counts and expansions agree with dynamicprompts' own CombinatorialPromptGenerator."""

from __future__ import annotations

import time

import pytest
from dynamicprompts.generators import CombinatorialPromptGenerator
from dynamicprompts.wildcards import WildcardManager
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stablenew.randomizer import counting
from stablenew.randomizer.counting import compile_template, count_prompts

TEMPLATES = [
    "plain text, no variants",
    "I {love|hate} {NY|Chicago} in {June|July|August}",
    "{summer|autumn|winter}",
    "{0.5::summer|0.1::autumn|0.3::winter} day",
    "{2$$a|b|c}",
    "{1-2$$a|b|c}",
    "{-2$$a|b|c}",
    "{2-$$a|b|c}",
    "{0-2$$a|b}",
    "{3$$a|b}",
    "{2$$ and $$a|b|c}",
    "{1-3$$ + $$a|{b|c}|d}",
    "{a|a|b}",
    "{a|{a|b}}",
    "{2$${a|b}|{c|a}}",
    "{a|}",
    "x {a|b} y {c|{d|e}} z",
    "{{a|b}|{c|d}} {e|f}",
    "%{a...b$${c|d}}",
    "${s={x|y}} ${s} and ${s}",
    "{a|b|c} ${v:default}",
    "a __colors__ b",
    "__animals__",
    "{__colors__}",
    "{2$$__colors__}",
    "{2$$__animals__}",
    "{__colors__|__animals__}",
    "__clothing/*__ and __people/names__",
    "__places/*__",
    "__art/*__ by __art/painters__",
    "__**/names__",
    "(masterpiece:1.2), [detailed], <lora:detail:0.5> {a|b}",
    "multi\nline {a|b}\nprompt",
]


@pytest.fixture
def generator(wildcards):
    return CombinatorialPromptGenerator(WildcardManager(wildcards))


@pytest.mark.parametrize("template", TEMPLATES)
def test_expansion_matches_dynamicprompts(template, wildcards, generator):
    expected = generator.generate(template, max_prompts=None)
    space = compile_template(template, wildcards=wildcards)
    assert space.size == len(expected)
    assert list(space) == expected  # same prompts, same order


@pytest.mark.parametrize("template", [t for t in TEMPLATES if "{a|a|b}" not in t and "{a|{a|b}}" not in t
                                      and "{c|a}" not in t])
def test_structural_path_matches_without_flattening(template, wildcards, generator, monkeypatch):
    # Large variants are counted and ranked structurally (never enumerated): check that path
    # against the library on templates whose variants cannot repeat a text.
    monkeypatch.setattr(counting, "FLATTEN_LIMIT", 0)
    expected = generator.generate(template, max_prompts=None)
    space = compile_template(template, wildcards=wildcards)
    assert (space.size, list(space)) == (len(expected), expected)


def test_text_at_any_rank_matches_enumeration(wildcards):
    space = compile_template("{1-3$$ + $$a|{b|c}|d|__colors__} {x|y}", wildcards=wildcards)
    listed = list(space)
    assert [space.text(r) for r in range(space.size)] == listed
    with pytest.raises(IndexError):
        space.text(space.size)


def test_huge_template_counts_instantly_and_ranks_deep():
    template = " ".join("{" + "|".join(f"w{i}_{j}" for j in range(10)) + "}" for i in range(12))
    count_prompts(template)  # parse once (cached)
    start = time.perf_counter()
    assert count_prompts(template) == 10**12
    assert time.perf_counter() - start < 0.05
    space = compile_template(template)
    last = space.text(10**12 - 1)
    assert last == " ".join(f"w{i}_9" for i in range(12))
    assert space.text(10**11) == "w0_1 " + " ".join(f"w{i}_0" for i in range(1, 12))


def test_multipick_counts_are_permutation_sums():
    # k!·e_k(sizes): {2$$…} over options of sizes 2, 3, 1 (texts distinct, so no dedupe).
    mixed = compile_template("{2$${a|b}|{c|d|e}|f}")
    assert mixed.size == 2 * (2 * 3 + 2 * 1 + 3 * 1)
    wide = compile_template("{3$$" + "|".join(f"o{i}" for i in range(60)) + "}")
    assert wide.size == 60 * 59 * 58


# Random small templates built from unique words, so no two branches can make the same text.
_words = iter(range(10**9))


@st.composite
def templates(draw, depth=0):
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["lit", "var", "pick"] if depth < 2 else ["lit"]))
        if kind == "lit":
            parts.append(f"w{next(_words)}")
        else:
            options = [draw(templates(depth + 1)) for _ in range(draw(st.integers(1, 3)))]
            if kind == "var":
                parts.append("{" + "|".join(options) + "}")
            else:
                low = draw(st.integers(0, 3))
                high = draw(st.integers(low, 3))
                parts.append("{" + f"{low}-{high}$$" + "|".join(options) + "}")
    return " ".join(parts)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(templates())
def test_random_templates_agree_with_dynamicprompts(template):
    space = compile_template(template)
    assume(space.size <= 200)  # the library enumerates; keep its side of the test fast
    expected = CombinatorialPromptGenerator().generate(template, max_prompts=None)
    assert space.size == len(expected)
    assert list(space) == expected


def test_weighted_yaml_lines_count_once_and_weight_random_picks(wildcards):
    # dynamicprompts' combinatorial mode repeats a weighted YAML line int(weight) times (its own
    # TODO); a line is one prompt here, and the weight biases random picks instead.
    (wildcards / "moods.yaml").write_text(
        "moods:\n  - {text: calm, weight: 30}\n  - {text: angry, weight: 0.5}\n  - sad\n",
        encoding="utf-8")
    space = compile_template("__moods__", wildcards=wildcards)
    assert sorted(space) == ["angry", "calm", "sad"]
    from random import Random

    rng = Random(1)
    picks = [space.sample(rng) for _ in range(200)]
    assert picks.count("calm") > 150
