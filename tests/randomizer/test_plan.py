"""Plans: exact counts, modes, images per variant, seed policies, reproducibility."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stablenew.pipeline.config import MAX_SEED, PipelineConfig
from stablenew.pipeline.styles import merge_prompts
from stablenew.randomizer.errors import SpecError
from stablenew.randomizer.plan import plan
from stablenew.randomizer.spec import VariationSpec

BASE = PipelineConfig()


def prompts(p):
    return [item.config.txt2img.prompt for item in p]


def test_fanout_crosses_prompt_variants_with_every_axis_value():
    spec = VariationSpec(template="a {red|blue} car",
                         axes=[{"sampler": ["Euler a", "DPM++ 2M"]}, {"steps": "20-40 (+10)"}],
                         seed=1)
    p = plan(BASE, spec)
    assert (p.count, p.variant_count) == (12, 12)
    items = list(p)
    assert len(items) == 12
    combos = {(i.config.txt2img.prompt, i.config.txt2img.sampler, i.config.txt2img.steps)
              for i in items}
    assert combos == set(itertools.product(["a red car", "a blue car"], ["Euler a", "DPM++ 2M"],
                                           [20, 30, 40]))
    assert items[0].label == "a red car, sampler=Euler a, steps=20"
    assert [i.index for i in items] == list(range(12))
    assert all(i.config.txt2img.batch_size == 1 and i.config.txt2img.batch_count == 1
               for i in items)


def test_images_per_variant_and_summary():
    spec = VariationSpec(template="{a|b|c|d|e|f|g|h}", axes=[{"cfg_scale": [5, 7, 9]}],
                         images_per_variant=1, seed=3)
    assert plan(BASE, spec).count == 24
    spec = VariationSpec(template="{a|b|c|d}", axes=[{"cfg_scale": [5, 7]}],
                         images_per_variant=3, seed=3)
    p = plan(BASE, spec)
    assert p.summary() == "This will make 24 images in 8 variants."
    items = list(p)
    assert len(items) == 24
    # the 3 images of a variant share its id and differ by seed (fixed policy: seed, +1, +2)
    first = items[:3]
    assert len({i.variant_id for i in first}) == 1
    assert [i.config.txt2img.seed for i in first] == [3, 4, 5]
    assert [i.config.txt2img.seed for i in items[3:6]] == [3, 4, 5]
    assert len({i.variant_id for i in items}) == 8


def test_rotate_takes_the_next_value_of_every_axis():
    spec = VariationSpec(template="{a|b|c|d}", mode="rotate",
                         axes=[{"steps": [10, 20]}, {"sampler": ["x", "y", "z"]}], seed=1)
    items = list(plan(BASE, spec))
    assert [(i.config.txt2img.prompt, i.config.txt2img.steps, i.config.txt2img.sampler)
            for i in items] == [("a", 10, "x"), ("b", 20, "y"), ("c", 10, "z"), ("d", 20, "x")]
    # with fewer prompt variants than axis values, the longest axis sets the number
    spec = VariationSpec(template="one", mode="rotate", axes=[{"steps": [10, 20, 30]}], seed=1)
    assert [i.config.txt2img.steps for i in plan(BASE, spec)] == [10, 20, 30]


def test_sequential_changes_one_axis_at_a_time_from_the_base():
    base = BASE.with_changes({"txt2img.steps": 25, "txt2img.sampler": "Euler"})
    spec = VariationSpec(template="x", mode="sequential",
                         axes=[{"steps": [10, 40]}, {"sampler": ["DDIM", "LMS", "Heun"]}], seed=1)
    items = list(plan(base, spec))
    assert [(i.config.txt2img.steps, i.config.txt2img.sampler) for i in items] == [
        (10, "Euler"), (40, "Euler"), (25, "DDIM"), (25, "LMS"), (25, "Heun")]
    assert items[2].label == "sampler=DDIM"


def test_random_mode_draws_without_repeats_then_starts_a_new_round():
    spec = VariationSpec(template="{a|b|c}", axes=[{"steps": [10, 20]}], mode="random",
                         count=9, seed=11)
    items = list(plan(BASE, spec))
    keys = [(i.config.txt2img.prompt, i.config.txt2img.steps) for i in items]
    assert len(keys) == 9
    assert len(set(keys[:6])) == 6  # all six combinations before any repeat
    assert len(set(keys[6:])) == 3


def test_random_mode_is_reproducible_and_seed_dependent():
    template = " ".join("{" + "|".join(f"w{i}{j}" for j in range(10)) + "}" for i in range(6))
    make = lambda seed: prompts(plan(BASE, VariationSpec(template=template, mode="random",  # noqa: E731
                                                         count=20, seed=seed)))
    assert make(5) == make(5)
    assert make(5) != make(6)
    assert len(set(make(5))) == 20


def test_random_mode_follows_weights():
    spec = VariationSpec(template="{9::common|1::rare} {x|y|z|w|v|u|t|s|r|q}", mode="random",
                         count=10, seed=2)
    words = [p.split()[0] for p in prompts(plan(BASE, spec))]
    assert words.count("common") > words.count("rare")


def test_wildcard_weights_bias_random_picks(wildcards):
    spec = VariationSpec(template="__colors__ {a|b|c|d|e|f|g|h|i|j}", mode="random", count=8,
                         seed=4, wildcard_weights={"colors": {"red": 50.0}})
    firsts = [p.split()[0] for p in prompts(plan(BASE, spec, wildcards_dir=wildcards))]
    assert firsts.count("red") >= 6


def test_seed_policies():
    spec = dict(template="{a|b}", images_per_variant=2, seed=100)
    fixed = [i.config.txt2img.seed for i in plan(BASE, VariationSpec(**spec))]
    inc = [i.config.txt2img.seed for i in plan(BASE, VariationSpec(**spec, seed_policy="increment"))]
    rnd = [i.config.txt2img.seed for i in plan(BASE, VariationSpec(**spec, seed_policy="random"))]
    assert fixed == [100, 101, 100, 101]
    assert inc == [100, 101, 102, 103]
    assert len(set(rnd)) == 4 and all(0 <= s <= MAX_SEED for s in rnd)
    assert rnd == [i.config.txt2img.seed
                   for i in plan(BASE, VariationSpec(**spec, seed_policy="random"))]
    # the base config's own seed wins for image seeds when it is set
    seeded = BASE.with_changes({"txt2img.seed": 7})
    assert [i.config.txt2img.seed for i in plan(seeded, VariationSpec(**spec))] == [7, 8, 7, 8]


def test_no_seed_gives_a_recorded_random_seed():
    p = plan(BASE, VariationSpec(template="{a|b}"))
    assert 0 <= p.seed <= MAX_SEED
    assert all(i.config.txt2img.seed >= 0 for i in p)


def test_max_images_caps_count_and_iteration():
    p = plan(BASE, VariationSpec(template="{a|b|c}", images_per_variant=4, max_images=5, seed=1))
    assert (p.count, p.uncapped_count) == (5, 12)
    assert len(list(p)) == 5
    assert "limited from 12" in p.summary()


def test_base_prompt_is_the_template_when_none_given():
    base = BASE.with_changes({"txt2img.prompt": "a {cat|dog}",
                              "txt2img.negative_prompt": "{blurry|ugly}"})
    p = plan(base, VariationSpec(seed=1))
    assert p.count == 4
    assert [(i.config.txt2img.prompt, i.config.txt2img.negative_prompt) for i in p] == [
        ("a cat", "blurry"), ("a cat", "ugly"), ("a dog", "blurry"), ("a dog", "ugly")]


def test_prompt_axes_inject_loras_embeddings_and_styles():
    spec = VariationSpec(
        template="portrait", negative_template="blurry", mode="sequential", seed=1,
        axes=[{"lora": ["none", "detail:0.6", {"name": "film", "weight": 1}]},
              {"embedding": ["easynegative_pos"]},
              {"negative_embedding": ["bad-hands"]},
              {"style": [{"name": "noir", "prompt": "noir photo of {prompt}",
                          "negative_prompt": "colour"}, "cinematic lighting"]}])
    got = [(i.config.txt2img.prompt, i.config.txt2img.negative_prompt) for i in plan(BASE, spec)]
    assert got == [
        ("portrait", "blurry"),
        ("portrait, <lora:detail:0.6>", "blurry"),
        ("portrait, <lora:film:1>", "blurry"),
        ("portrait, easynegative_pos", "blurry"),
        ("portrait", "blurry, bad-hands"),
        ("noir photo of portrait", "blurry, colour"),
        ("portrait, cinematic lighting", "blurry"),
    ]


@pytest.mark.parametrize(("template", "negative", "style", "expected"), [
    # {prompt} marks where the prompt goes, every time it appears; the rest is kept as written.
    ("a cat", "blurry", {"prompt": "noir photo of {prompt}, grain"},
     ("noir photo of a cat, grain", "blurry")),
    ("a cat", "", {"prompt": "{prompt} | {prompt}"}, ("a cat | a cat", "")),
    # Without {prompt} the style is appended after a comma, both sides trimmed.
    ("a cat ", "blurry", {"prompt": " cinematic "}, ("a cat, cinematic", "blurry")),
    # An empty style still trims the prompt, as A1111's merge does.
    ("  a cat  ", " blurry ", {"prompt": "", "negative_prompt": ""}, ("a cat", "blurry")),
    # An empty prompt leaves the style alone, or the text around {prompt}.
    ("", "", {"prompt": "cinematic", "negative_prompt": "ugly"}, ("cinematic", "ugly")),
    ("", "", {"prompt": "{prompt}, 4k"}, (", 4k", "")),
    # The negative prompt follows the same rule with the style's own negative text.
    ("a cat", "blurry", {"negative_prompt": "{prompt}, lowres"}, ("a cat", "blurry, lowres")),
    ("a cat", "blurry", {"negative_prompt": "cartoon"}, ("a cat", "blurry, cartoon")),
])
def test_style_axis_merges_like_a1111_styles(template, negative, style, expected):
    spec = VariationSpec(template=template, negative_template=negative, seed=1,
                         axes=[{"style": [{"name": "s", **style}]}])
    (item,) = list(plan(BASE, spec))
    got = (item.config.txt2img.prompt, item.config.txt2img.negative_prompt)
    assert got == expected
    # The pipeline's styles (presets, styles.csv) give the same text: one rule for both.
    assert got == (merge_prompts(style.get("prompt", ""), template),
                   merge_prompts(style.get("negative_prompt", ""), negative))


def test_config_axes_reach_their_fields():
    base = BASE.with_changes({"img2img.enabled": True, "txt2img.hires.enabled": True})
    spec = VariationSpec(template="x", mode="rotate", seed=1, axes=[
        {"checkpoint": ["sdxl.safetensors"]}, {"scheduler": ["Karras"]}, {"size": ["768x512"]},
        {"denoise": [0.3]}, {"hires_scale": [1.5]}, {"hires_denoise": [0.2]},
        {"img2img.cfg_scale": ["4.5"]}])
    (item,) = list(plan(base, spec))
    c = item.config
    assert (c.txt2img.checkpoint, c.txt2img.scheduler, c.txt2img.width, c.txt2img.height) == (
        "sdxl.safetensors", "Karras", 768, 512)
    assert (c.img2img.denoise, c.txt2img.hires.scale, c.txt2img.hires.denoise,
            c.img2img.cfg_scale) == (0.3, 1.5, 0.2, 4.5)


def test_a1111_ranges_expand():
    spec = VariationSpec(template="x", axes=[{"steps": "10-30 [3]"}, {"cfg_scale": "5-6 (+0.5)"}])
    assert spec.axes[0].values == [10, 20, 30]
    assert spec.axes[1].values == [5.0, 5.5, 6.0]


def test_prompt_matrix_makes_every_subset_in_a1111_order():
    p = plan(BASE, VariationSpec(template="a cat|red|big", prompt_matrix=True, seed=1))
    assert prompts(p) == ["a cat", "a cat, red", "a cat, big", "a cat, red, big"]


def test_plan_survives_spec_yaml_round_trip():
    import yaml

    spec = VariationSpec(template="{a|b}", axes=[{"lora": ["x:0.5"]}, {"size": ["640x512"]},
                                                  {"style": ["warm"]}], seed=9)
    again = VariationSpec.model_validate(yaml.safe_load(yaml.safe_dump(spec.model_dump(mode="json"))))
    assert prompts(plan(BASE, again)) == prompts(plan(BASE, spec))


def test_huge_plan_is_lazy_and_preview_is_the_start_of_the_run():
    template = " ".join("{" + "|".join(f"w{i}_{j}" for j in range(10)) + "}" for i in range(10))
    p = plan(BASE, VariationSpec(template=template, axes=[{"steps": list(range(1, 101))}], seed=1))
    assert p.count == 10**12
    preview = p.preview(5)
    assert [i.config for i in preview] == [i.config for i in itertools.islice(p, 5)]


# --- properties ---------------------------------------------------------------------------

_options = st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=3, unique=True)


@st.composite
def specs(draw):
    groups = draw(st.lists(_options, min_size=0, max_size=3))
    template = " ".join("{" + "|".join(f"{g}{n}" for g in opts) + "}"
                        for n, opts in enumerate(groups)) or "plain"
    axes = []
    if draw(st.booleans()):
        axes.append({"steps": draw(st.lists(st.integers(1, 150), min_size=1, max_size=3))})
    if draw(st.booleans()):
        axes.append({"sampler": draw(st.lists(st.sampled_from(["A", "B", "C"]), min_size=1,
                                              max_size=3))})
    mode = draw(st.sampled_from(["fanout", "rotate", "sequential", "random"]))
    return VariationSpec(
        template=template, axes=axes, mode=mode,
        count=draw(st.integers(1, 12)) if mode == "random" else None,
        images_per_variant=draw(st.integers(1, 3)),
        seed_policy=draw(st.sampled_from(["fixed", "increment", "random"])),
        seed=draw(st.integers(0, 2**32 - 1)),
        max_images=draw(st.one_of(st.none(), st.integers(1, 40))))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_count_equals_items_and_same_seed_same_plan(spec):
    p = plan(BASE, spec)
    items = list(p)
    assert len(items) == p.count
    assert [i.index for i in items] == list(range(p.count))
    again = list(plan(BASE, spec))
    assert [(i.config, i.variant_id, i.label) for i in items] == [
        (i.config, i.variant_id, i.label) for i in again]


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(0, 2**32 - 2))
def test_different_seed_different_random_plan(seed):
    template = "{a|b|c|d|e|f} {g|h|i|j|k|l} {m|n|o|p|q|r}"  # 216 variants, 10 drawn
    one = prompts(plan(BASE, VariationSpec(template=template, mode="random", count=10, seed=seed)))
    two = prompts(plan(BASE, VariationSpec(template=template, mode="random", count=10,
                                           seed=seed + 1)))
    assert one != two


def test_iter_from_resumes_exactly_where_a_run_stopped():
    for mode, extra in (("fanout", {}), ("rotate", {}), ("sequential", {}),
                        ("random", {"count": 7})):
        spec = VariationSpec(template="{a|b|c}", axes=[{"steps": [10, 20]}], mode=mode,
                             images_per_variant=3, seed_policy="increment", seed=3, **extra)
        p = plan(BASE, spec)
        items = list(p)
        for start in (0, 1, 4, len(items) - 1, len(items)):
            resumed = list(p.iter_from(start))
            assert [(i.index, i.config) for i in resumed] == [
                (i.index, i.config) for i in items[start:]]


def test_combination_only_problems_do_not_block_valid_values():
    # each value alone is fine; checking rows together must not invent an error
    base = BASE.with_changes({"txt2img.hires.enabled": True})
    spec = VariationSpec(template="x", mode="sequential",
                         axes=[{"size": ["2048x2048", "512x512"]}, {"hires_scale": [4.0, 1.0]}])
    assert plan(base, spec).count == 4


def test_clashing_combinations_are_refused_before_the_run():
    base = BASE.with_changes({"txt2img.hires.enabled": True})
    spec = VariationSpec(template="x", axes=[{"size": ["2048x2048", "512x512"]},
                                             {"hires_scale": [4.0, 1.0]}])
    with pytest.raises(SpecError) as caught:
        plan(base, spec)
    assert "Size = 2048x2048, Hires scale = 4" in caught.value.message
    assert "MP" in caught.value.message


def test_random_and_cyclical_nodes_count_once_and_reproduce():
    # {~…} and {@…} add no combinations (as in dynamicprompts' combinatorial mode); their
    # picks come from the plan seed, so the same seed gives the same prompts.
    spec = VariationSpec(template="{~x|y|z} {c|d|e|f|g|h}", seed=8)
    first = prompts(plan(BASE, spec))
    assert len(first) == 6 and first == prompts(plan(BASE, spec))
    assert {p.split()[1] for p in first} == set("cdefgh")
    cyc = prompts(plan(BASE, VariationSpec(template="{@a|b|c} {1|2|3|4}", seed=1)))
    assert [p.split()[0] for p in cyc] == ["a", "b", "c", "a"]


def test_immediate_variables_are_one_axis_with_a_consistent_value():
    # `!` evaluates once per prompt: every use shows the same season, and each season is a
    # variant. (dynamicprompts' combinatorial generator keeps only the first value here.)
    spec = VariationSpec(template="${s=!{summer|winter}}a ${s} day, ${s} light", seed=1)
    assert prompts(plan(BASE, spec)) == ["a summer day, summer light",
                                         "a winter day, winter light"]
    lazy = VariationSpec(template="${s={summer|winter}}a ${s} day, ${s} light", seed=1)
    assert plan(BASE, lazy).count == 4  # without `!` each use varies on its own


def test_random_mode_repeats_get_new_seeds_so_no_image_repeats():
    spec = VariationSpec(template="{a|b}", mode="random", count=6, images_per_variant=2, seed=5)
    items = list(plan(BASE, spec))
    made = [(i.config.txt2img.prompt, i.config.txt2img.seed) for i in items]
    assert len(made) == 12 and len(set(made)) == 12
    assert sorted({s for _, s in made}) == list(range(5, 11))  # seed, seed+1, … per round


def test_model_family_and_guidance_are_axes_like_any_setting():
    spec = VariationSpec(template="a fox", axes=[{"family": ["SDXL", "flux"]}, {"guidance": "2-4 [3]"}],
                         seed=1)
    p = plan(BASE, spec)
    assert p.count == 6
    got = {(i.config.txt2img.family.value, i.config.txt2img.guidance) for i in p}
    assert got == {(f, g) for f in ("sdxl", "flux") for g in (2.0, 3.0, 4.0)}
    with pytest.raises(ValueError, match="'sd9' is not a model family; use auto, sd15, sdxl"):
        VariationSpec(template="a fox", axes=[{"family": ["sd9"]}])
