"""The taste model (ratings, tags and pairwise choices in one fit) and the next experiment."""

from __future__ import annotations

import random

from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore, TasteImage, TasteInputs
from stablenew.learning.suggest import next_experiment, recommended_values
from stablenew.learning.taste import fit_inputs, fit_taste
from stablenew.pipeline.config import PipelineConfig
from tests.learning.helpers import image_record

PENALTY = {"4": 3.5, "6": 3.6, "8": 3.65, "10": 2.55}


def _rated(n: int, seed: int, means: dict[str, float]) -> list[TasteImage]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cfg = list(means)[i % len(means)]
        rating = max(1, min(5, round(rng.gauss(means[cfg], 0.95))))
        out.append(TasteImage(i, rating, {"cfg": cfg, "steps": "20",
                                          "sampler": rng.choice(["Euler a", "DPM++ 2M"])}, []))
    return out


def test_ratings_show_the_penalty_on_one_value_with_its_uncertainty():
    found = 0
    for seed in range(20):
        model = fit_inputs(TasteInputs(_rated(80, seed, PENALTY), []), "P")
        cfg = model.parameter("cfg")
        assert cfg is not None and [b.bin.short for b in cfg.bins] == ["4", "6", "8", "10"]
        found += cfg.bins[cfg.worst].bin.short == "10" and cfg.confidence_of("10") < 0.01
        assert all(0.1 < b.sd < 0.4 for b in cfg.bins)  # 20 ratings each: a few tenths of a star
    assert found >= 19
    # Fewer ratings, wider uncertainty.
    thin = fit_inputs(TasteInputs(_rated(12, 1, PENALTY), []), "P").parameter("cfg")
    assert min(b.sd for b in thin.bins) > max(b.sd for b in cfg.bins)


def test_pairwise_choices_alone_teach_which_sampler_is_liked():
    rng = random.Random(3)
    images = [TasteImage(i, None, {"sampler": "Euler a" if i % 2 else "DDIM", "steps": "20"}, [])
              for i in range(40)]
    choices = []
    for _ in range(30):
        a, b = rng.randrange(0, 40, 2), rng.randrange(1, 40, 2)  # a DDIM, b Euler a
        choices.append((b, a, False) if rng.random() < 0.8 else (a, b, False))
    model = fit_inputs(TasteInputs(images, choices), "P")
    sampler = model.parameter("sampler")
    assert model.ratings == 0 and model.choices == 30
    assert sampler.bins[sampler.best].bin.values == ("Euler a",) and sampler.confidence > 0.95
    # "The same" over and over says the sampler hardly matters.
    same = [(b, a, True) for a, b, _ in choices]
    flat = fit_inputs(TasteInputs(images, same), "P").parameter("sampler")
    assert flat.spread < 0.2 < sampler.spread


def test_a_complaint_tag_counts_against_its_image():
    images = [TasteImage(i, 4, {"cfg": "5" if i % 2 else "9"}, ["too noisy"] if i % 2 == 0 else [])
              for i in range(20)]
    cfg = fit_inputs(TasteInputs(images, []), "P").parameter("cfg")
    assert cfg.bins[cfg.best].bin.values == ("5",) and cfg.spread > 0.3


def test_the_store_feeds_the_model_per_pack(tmp_path):
    with LearningStore(tmp_path / "db.sqlite") as store:
        ids = []
        for i in range(12):
            config = PipelineConfig().with_changes({"txt2img.cfg_scale": 5 if i % 2 else 9})
            image = image_record(tmp_path, i, config=config, png=False,
                                 pack="Portraits" if i < 8 else "Cars")
            ids.append(store.add_record(LearningRecord.from_image_record(image)).id)
        for i in range(0, 8, 2):
            store.record_choice(ids[i + 1], ids[i])  # CFG 5 beats CFG 9
        store.rate(ids[9], 5)
        store.rate(ids[8], 1)
        portraits = fit_taste(store, "Portraits")
        cars = fit_taste(store, "Cars")
    assert (portraits.ratings, portraits.choices) == (0, 4)
    assert portraits.parameter("cfg").bins[portraits.parameter("cfg").best].bin.values == ("5",)
    assert (cars.ratings, cars.choices) == (2, 0)


def test_the_next_experiment_goes_where_few_ratings_disagree():
    rng = random.Random(1)
    images = [TasteImage(i, max(1, min(5, round(rng.gauss(3.0 if i % 2 else 3.8, 0.8)))),
                         {"steps": "20" if i % 2 else "30", "cfg": "7", "sampler": "Euler a",
                          "scheduler": "Karras"}, []) for i in range(60)]
    for i, (cfg, stars) in enumerate([("5", 4), ("6", 3), ("7", 5), ("9", 3), ("10", 2), ("11", 2)]):
        images.append(TasteImage(100 + i, stars, {"steps": "30", "cfg": cfg, "sampler": "Euler a",
                                                  "scheduler": "Karras"}, []))
    suggestion = next_experiment(fit_inputs(TasteInputs(images, []), "Portraits"))
    assert suggestion.parameter == "cfg" and len(suggestion.values) == 3
    assert suggestion.text.startswith("CFG scale ") and " looks better than CFG scale " in suggestion.text
    assert suggestion.text.endswith(f"A 9-image run at CFG scale {suggestion.values[0]}, "
                                    f"{suggestion.values[1]} and {suggestion.values[2]} would "
                                    "settle it.")
    plan = suggestion.plan(PipelineConfig().with_changes({"txt2img.prompt": "a fox"}))
    assert plan.parameter == "cfg" and plan.image_count == 9 and plan.pack == "Portraits"
    data = suggestion.to_json()
    assert data["images"] == 9 and data["values"] == list(suggestion.values)


def test_with_nothing_rated_the_suggestion_is_a_first_steps_run():
    suggestion = next_experiment(fit_inputs(TasteInputs([], []), None))
    assert suggestion.parameter == "steps" and suggestion.values == ("20", "25", "30")
    assert suggestion.text == "No rated images yet. A 9-image run at 20, 25 and 30 steps is a good start."


def test_recommended_values_carry_their_confidence_and_skip_unsure_ones():
    model = fit_inputs(TasteInputs(_rated(160, 2, PENALTY), []), "P")
    values = recommended_values(model)
    cfg = next(v for v in values if v.parameter == "cfg")
    assert cfg.value in ("4", "6", "8") and 0.3 < cfg.confidence <= 1
    assert cfg.words().startswith(f"CFG scale {cfg.value} — ")
    assert recommended_values(model, min_confidence=1.01) == []


def test_one_sided_choices_by_the_hundred_fit_without_overflow_or_warnings():
    import warnings

    images = [TasteImage(i, None, {"cfg": "5" if i % 2 else "9"}, []) for i in range(4)]
    choices = [(1, 0, False)] * 400 + [(3, 2, False)] * 400
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = fit_inputs(TasteInputs(images, choices), "P").parameter("cfg")
    assert cfg.bins[cfg.best].bin.values == ("5",) and cfg.confidence == 1.0


def test_a_setting_that_makes_no_difference_is_said_so_and_other_values_are_proposed(tmp_path):
    from tests.learning.helpers import synthetic_records

    with LearningStore(tmp_path / "db.sqlite") as store:
        store.add_records(synthetic_records(150, packs=("Portraits",)))
        suggestion = next_experiment(fit_taste(store, "Portraits"))
    assert suggestion.parameter == "sampler"
    assert suggestion.evidence == "Sampler makes little difference so far (0.0 stars over 150 ratings)."
    assert {"DPM++ SDE", "Euler"} <= set(suggestion.values)  # not tried yet
    assert suggestion.text.endswith("would show whether another value does better.")


def test_a_value_rated_once_leans_on_its_neighbours():
    # CFG 4–8.5 rated ten times each, 8.5 by far the best; CFG 10 once, a middling 3 stars.
    # Next to the favourite, 10 is more likely good than one middling rating alone says: it
    # ranks above 7 (rated 3 ten times), yet ten ratings of 8.5 outweigh its neighbours' hint.
    stars = {"4": 1, "5.5": 2, "7": 3, "8.5": 5}
    images = [TasteImage(i, stars[cfg], {"cfg": cfg, "steps": "20"}, [])
              for i, cfg in enumerate(c for c in stars for _ in range(10))]
    images.append(TasteImage(len(images), 3, {"cfg": "10", "steps": "20"}, []))
    cfg = fit_inputs(TasteInputs(images, []), "P").parameter("cfg")
    effect = {b.bin.short: b.effect for b in cfg.bins}
    assert effect["8.5"] > effect["10"] > effect["7"] > effect["5.5"]


def _chooser_images(first: int, params: dict[str, str], key: str, values: list[str],
                    per_value: int) -> list[list[TasteImage]]:
    """A learning run as the model sees it: *per_value* images of each value on *params*."""
    runs, next_id = [], first
    for value in values:
        runs.append([TasteImage(next_id + i, None, {**params, key: value}, [])
                     for i in range(per_value)])
        next_id += per_value
    return runs


def _choose(runs: list[list[TasteImage]], liked: dict[str, dict[str, float]],
            rng: random.Random) -> list[tuple[int, int, bool]]:
    """A seeded chooser: images of the same seed compared pairwise, the liked one picked 90 %
    of the time."""
    out = []
    for a_run, b_run in ((a, b) for i, a in enumerate(runs) for b in runs[i + 1:]):
        for a, b in zip(a_run, b_run, strict=True):
            score = {img.id: sum(liked.get(k, {}).get(v, 0.0) for k, v in img.params.items())
                     for img in (a, b)}
            better, worse = (a, b) if score[a.id] > score[b.id] else (b, a)
            out.append((better.id, worse.id, False) if rng.random() < 0.9
                       else (worse.id, better.id, False))
    return out


BASE = {"steps": "20", "cfg": "7", "sampler": "DPM++ 2M", "scheduler": "Automatic"}


def test_a_chooser_gets_a_round_robin_of_an_untried_setting_before_a_second_look():
    # A user who answers only by choosing compared 20, 25 and 30 steps (30 clearly liked).
    # Before, the next run went back to steps (its two untried values looked promising);
    # now every setting gets a first look, all its values once, before any gets a second.
    rng = random.Random(4)
    runs = _chooser_images(0, BASE, "steps", ["20", "25", "30"], 3)
    choices = _choose(runs, {"steps": {"20": 0.0, "25": 0.5, "30": 1.0}}, rng)
    model = fit_inputs(TasteInputs([i for r in runs for i in r], choices), "P")
    suggestion = next_experiment(model)
    assert suggestion.parameter == "cfg"
    assert suggestion.values == ("4", "5.5", "7", "8.5", "10")
    assert suggestion.images_per_value == 1 and suggestion.image_count == 5
    assert suggestion.text == (
        "Every image you rated or compared in P used CFG scale 7, so nothing says yet "
        "whether another cfg scale suits you better. A 5-image run at CFG scale 4, 5.5, 7, 8.5 "
        "and 10 would show it.")


def test_once_every_setting_had_a_look_a_chooser_gets_the_best_against_one_challenger():
    rng = random.Random(7)
    liked = {"steps": {"30": 1.0, "25": 0.6}, "cfg": {"5.5": 0.8, "4": 0.5},
             "sampler": {"Euler a": 0.9}, "scheduler": {"Karras": 0.7}}
    images: list[TasteImage] = []
    choices: list[tuple[int, int, bool]] = []
    params = dict(BASE)
    for key, values in (("steps", ["15", "20", "25", "30", "35"]),
                        ("cfg", ["4", "5.5", "7", "8.5", "10"]),
                        ("sampler", ["DPM++ 2M", "Euler a", "Euler", "DPM++ SDE", "DDIM"]),
                        ("scheduler", ["Automatic", "Karras", "Exponential", "SGM Uniform"])):
        runs = _chooser_images(len(images), params, key, values, 1)
        images += [i for r in runs for i in r]
        choices += _choose(runs, liked, rng)
        model = fit_inputs(TasteInputs(images, choices), "P")
        effect = model.parameter(key)
        params[key] = effect.bins[effect.best].bin.center
    suggestion = next_experiment(model)
    effect = model.parameter(suggestion.parameter)
    best = effect.bins[effect.best].bin.center
    assert len(suggestion.values) == 2 and best in suggestion.values
    assert suggestion.images_per_value == 3 and suggestion.image_count == 6
    assert suggestion.parameter == "sampler"  # liked most strongly, on only 8 choices
    assert suggestion.text.endswith(f"A 6-image run at Sampler {suggestion.values[0]} and "
                                    f"{suggestion.values[1]} would settle it.")
    # The evidence counts choices with the right plural ("8 ratings or choices").
    assert " ratings or choices" in suggestion.text and "rating or choices" not in suggestion.text


def test_two_values_tied_at_the_top_are_put_head_to_head():
    # DPM++ 2M and Euler each beat Euler a twice and never met: an exact tie at the top. The
    # run must compare the two, not the reported best with itself (which made no choices and
    # left the suggestion stuck) or without its equal.
    images, choices = [], []
    for sampler in ("DPM++ 2M", "Euler") * 2:
        images += [TasteImage(len(images), None, {"sampler": sampler, "steps": "20"}, []),
                   TasteImage(len(images) + 1, None, {"sampler": "Euler a", "steps": "20"}, [])]
        choices.append((len(images) - 2, len(images) - 1, False))
    images += [TasteImage(len(images) + i, None, {"sampler": s, "steps": "20"}, [])
               for i, s in enumerate(("DPM++ 2M", "Euler"))]
    model = fit_inputs(TasteInputs(images, choices), "P")
    sampler = model.parameter("sampler")
    effects = sorted(b.effect for b in sampler.bins)
    assert abs(effects[-1] - effects[-2]) < 1e-9
    suggestion = next_experiment(model)
    assert suggestion.parameter == "sampler"
    assert suggestion.values == ("DPM++ 2M", "Euler")
