"""Template errors are typed, name the position and the wildcard, and never start a run."""

from __future__ import annotations

import pytest

from stablenew.pipeline.config import PipelineConfig
from stablenew.randomizer.counting import compile_template
from stablenew.randomizer.errors import (
    BadWeight,
    EmptyVariant,
    MissingWildcard,
    RecursiveTemplate,
    SpecError,
    TemplateError,
    TemplateSyntaxError,
    UnbalancedBraces,
    UndefinedVariable,
)
from stablenew.randomizer.plan import plan
from stablenew.randomizer.spec import VariationSpec


@pytest.mark.parametrize(("template", "error", "line", "column"), [
    ("a {b|c", UnbalancedBraces, 1, 3),
    ("a b|c}", UnbalancedBraces, 1, 6),
    ("{a|b}}", UnbalancedBraces, 1, 6),
    ("ok\n{a|{b|c}", UnbalancedBraces, 2, 1),
    ("a {x::b|c}", BadWeight, 1, 4),
    ("a {1::b|-2::c}", BadWeight, 1, 9),
    ("{2$$one::a|b}", BadWeight, 1, 5),
    ("x {} y", EmptyVariant, 1, 3),
    ("x {|} y", EmptyVariant, 1, 3),
    ("${season} walk", UndefinedVariable, 1, 1),
])
def test_template_errors_name_the_position(template, error, line, column):
    with pytest.raises(error) as caught:
        compile_template(template)
    exc = caught.value
    assert isinstance(exc, TemplateError)
    assert (exc.line, exc.column) == (line, column)
    assert f"line {line}, column {column}" in exc.message


def test_weights_that_are_numbers_are_fine():
    assert compile_template("{2::a|0.5::b|.5::c|1.::d}").size == 4
    assert compile_template("<lora:x:0.5> {a:1.2|b}").size == 2  # ':' alone is not a weight


def test_missing_wildcard_names_the_wildcard_and_position(wildcards):
    with pytest.raises(MissingWildcard) as caught:
        compile_template("a photo of __colours__", wildcards=wildcards)
    exc = caught.value
    assert exc.wildcard == "colours"
    assert (exc.line, exc.column) == (1, 12)
    assert "__colours__" in exc.message and str(wildcards) in exc.message


def test_missing_wildcard_inside_a_wildcard_file_names_the_chain(wildcards):
    (wildcards / "outer.txt").write_text("a __inner__ b\n", encoding="utf-8")
    with pytest.raises(MissingWildcard) as caught:
        compile_template("x __outer__", wildcards=wildcards)
    assert caught.value.wildcard == "inner"
    assert "inside __outer__" in caught.value.message


def test_wildcard_without_folder_says_to_choose_one():
    with pytest.raises(MissingWildcard, match="no wildcards folder"):
        compile_template("__colors__")


def test_bad_line_in_a_wildcard_file_names_the_wildcard(wildcards):
    (wildcards / "broken.txt").write_text("fine\n{unclosed\n", encoding="utf-8")
    with pytest.raises(UnbalancedBraces) as caught:
        compile_template("__broken__", wildcards=wildcards)
    assert caught.value.wildcard == "broken"
    assert "broken" in caught.value.message


def test_self_referencing_wildcard_is_refused(wildcards):
    (wildcards / "loop.txt").write_text("again __loop__\n", encoding="utf-8")
    with pytest.raises(RecursiveTemplate):
        compile_template("__loop__", wildcards=wildcards)


def test_unreadable_syntax_is_a_typed_error():
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template("a ${=x}")
    assert (caught.value.line, caught.value.column) == (1, 3)
    with pytest.raises(EmptyVariant):
        compile_template("a {2$$}")


def test_errors_stop_planning_before_any_item(wildcards):
    with pytest.raises(TemplateError):
        plan(PipelineConfig(), VariationSpec(template="a {b|c"))
    with pytest.raises(TemplateError, match="Negative prompt"):
        plan(PipelineConfig(), VariationSpec(template="ok", negative_template="{x::a|b}"))


@pytest.mark.parametrize(("axis", "needle"), [
    ({"steps": [20, 500]}, "Steps"),
    ({"cfg_scale": [0.1]}, "CFG"),
    ({"size": ["513x512"]}, "Size"),
    ({"txt2img.no_such_field": [1]}, "no_such_field"),
])
def test_bad_axis_values_are_plain_errors(axis, needle):
    with pytest.raises(SpecError) as caught:
        plan(PipelineConfig(), VariationSpec(template="x", axes=[axis]))
    assert needle in caught.value.message
    assert caught.value.field == "axes.0"


def test_random_mode_without_count_is_refused():
    with pytest.raises(ValueError, match="count"):
        VariationSpec(mode="random")


def test_double_colons_outside_variants_are_text():
    assert compile_template("a|b::c").size == 1  # top-level '|' is text to dynamicprompts
    assert compile_template("{x|y} then a|b::c").size == 2
    with pytest.raises(BadWeight):
        compile_template("a|b {c|d::e}")
