"""The next experiment: which setting to compare next, at which values, said with the evidence.

For every setting the taste model knows, each candidate value (a bin already rated, or a
suggested value not tried yet) gets its expected improvement over the current best bin:
E[max(effect(candidate) − effect(best), 0)] under the posterior. It is large where a value
might well beat the best and little is known — exactly where a few more ratings pay off.
The setting with the largest expected improvement wins; its learning run compares the best
value with the two most promising candidates, three seeds each.

A user who answers by choosing ("which is better?") more than by stars gets runs shaped for
that: the first look at a setting shows every suggested value once (each pair of images is
one choice, a small round robin), and later runs put the best value head to head with its
most promising challenger, three seeds each (three choices), instead of three values (nine).

Also here: the recommended preset of a pack from the model, each value with its confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from stablenew.learning.errors import LearningError
from stablenew.learning.insights import (
    SUGGESTED_ORDER,
    RecommendedPreset,
    insights_for,
    recommend,
)
from stablenew.learning.parameters import Parameter, get_parameter
from stablenew.learning.plans import LearningPlan
from stablenew.learning.taste import TasteModel, fit_taste, normal_cdf, normal_pdf
from stablenew.storage.words import plural

if TYPE_CHECKING:
    from stablenew.learning.store import LearningStore
    from stablenew.pipeline.config import PipelineConfig

# Stars by which an untried value may differ from its nearest rated one, and by which another
# value of a setting never varied may differ from the one in use. Both were set with
# bench/active_learning.py (simulated users): smaller values polish one setting for too long
# before the others are tried at all.
NEIGHBOUR_SD = 0.7
UNTRIED_SD = 0.7
# The same for a user who answers by choices: the choice model's effects come out wider than
# stars (a choice scale of 0.6 star), and a setting never varied is worth a first look before
# a second look at another (also set with bench/active_learning.py).
UNTRIED_SD_CHOICES = 1.0
DRAWS = 4000
IMAGES_PER_VALUE = 3
SETTLED = 0.95  # confidence at which the best value counts as known
THIN = 12  # ratings of two values together that are too few to trust
SMALL = 0.25  # stars: a difference between values too small to notice
# Settings every image has, so a suggestion may name them before any of them was varied.
ALWAYS_THERE = ("steps", "cfg", "sampler", "scheduler")


@dataclass(frozen=True)
class NextExperiment:
    """A learning run worth doing next, and why, in plain words."""

    pack: str | None
    parameter: str
    label: str
    values: tuple[str, ...]
    evidence: str  # what the ratings say now
    text: str  # evidence and the proposed run
    gain: float  # expected improvement in stars
    images_per_value: int = IMAGES_PER_VALUE

    @property
    def image_count(self) -> int:
        return len(self.values) * self.images_per_value

    def plan(self, base: PipelineConfig) -> LearningPlan:
        """The learning run on *base* (raises PlanInvalid in plain words when it cannot run)."""
        return LearningPlan.create(base, self.parameter, list(self.values),
                                   images_per_value=self.images_per_value, pack=self.pack)

    def to_json(self) -> dict[str, Any]:
        return {"pack": self.pack, "parameter": self.parameter, "label": self.label,
                "values": list(self.values), "images_per_value": self.images_per_value,
                "images": self.image_count, "evidence": self.evidence, "text": self.text,
                "expected_gain": round(self.gain, 3)}


def expected_improvement(mean: float, sd: float) -> float:
    if sd <= 1e-9:
        return max(mean, 0.0)
    z = mean / sd
    return mean * normal_cdf(z) + sd * normal_pdf(z)


def next_experiment(model: TasteModel) -> NextExperiment:
    """The most useful learning run for the model's pack (never fails: with no data it says so)."""
    options = []
    keys = list(dict.fromkeys([*SUGGESTED_ORDER, *model.values_seen]))
    for key in keys:
        if key not in model.values_seen and (key not in ALWAYS_THERE or model.values_seen):
            continue  # a stage the user does not use (img2img denoise without img2img)
        try:
            param = get_parameter(key)
        except LearningError:
            continue
        if not param.runnable:
            continue  # the enhance style: reported and recommended, but no run can set it
        option = (_varied(model, param) if model.parameter(key) is not None
                  else _unvaried(model, param))
        if option is not None:
            options.append(option)
    if not options:
        raise LearningError("No setting can be compared yet.")
    rank = {k: i for i, k in enumerate(SUGGESTED_ORDER)}
    return max(options, key=lambda o: (round(o.gain, 6), -rank.get(o.parameter, len(rank))))


def _varied(model: TasteModel, param: Parameter) -> NextExperiment | None:
    """Draws from the posterior of the setting's bins, plus untried suggested values near
    them: the gain is how far the best candidate may end up above the current best value,
    on average over the draws (zero when it does not beat it)."""
    effect = model.parameter(param.key)
    assert effect is not None
    idx = [i for i, b in enumerate(model.bins) if b.parameter == param.key]
    rng = np.random.default_rng(len(idx))
    draws = rng.multivariate_normal(model.mean[idx], model.cov[np.ix_(idx, idx)], size=DRAWS,
                                    method="cholesky")
    best = effect.best  # not argmax(mean) again: with an exact tie the two could differ
    names = [model.bins[i].center for i in idx]
    columns = [draws[:, j] for j in range(len(idx)) if j != best]
    labels = [names[j] for j in range(len(idx)) if j != best]
    # An untried value lands near its nearest rated one (give or take NEIGHBOUR_SD); a
    # category never tried is like the average of those that were.
    seen = model.values_seen.get(param.key, {})
    for value in (param.text(v) for v in param.suggested):
        if value in seen:
            continue
        near = _nearest(param, value, names)
        base = draws[:, names.index(near)] if near is not None else draws.mean(axis=1)
        columns.append(base + rng.normal(0.0, NEIGHBOUR_SD, size=DRAWS))
        labels.append(value)
    if not columns:
        return None
    ahead = np.clip(np.column_stack(columns) - draws[:, [best]], 0.0, None)
    gain = float(ahead.max(axis=1).mean())
    order = np.argsort(-ahead.mean(axis=0))
    best_bin = effect.bins[effect.best].bin
    challengers = 1 if _by_choice(model) else 2
    values = _ordered(param, [best_bin.center, *(labels[k] for k in order[:challengers])])
    top, low = effect.bins[effect.best], effect.bins[effect.worst]
    count = top.evidence + low.evidence
    what, whats = (("rating", None) if model.choices == 0
                   else ("rating or choice", "ratings or choices"))
    thin = low if low.evidence <= top.evidence else top
    better = f"{_words(param, top.bin.short)} looks better than {_words(param, low.bin.short)}"
    if effect.confidence >= SETTLED:
        evidence = (f"{_words(param, top.bin.short)} looks best ({effect.confidence:.0%} sure, "
                    f"over {plural(effect.evidence, what, whats)}).")
        ending = "would check its neighbours."
    elif count <= THIN:
        evidence, ending = f"{better}, but on only {plural(count, what, whats)}.", "would settle it."
    elif thin.evidence <= THIN:
        evidence = (f"{better}, but {_words(param, thin.bin.short)} has only "
                    f"{plural(thin.evidence, what, whats)}.")
        ending = "would settle it."
    elif effect.spread < SMALL:
        evidence = (f"{param.label} makes little difference so far ({effect.spread:.1f} stars "
                    f"over {plural(effect.evidence, what, whats)}).")
        ending = "would show whether another value does better."
    else:
        evidence, ending = f"{better} ({effect.confidence:.0%} sure so far).", "would settle it."
    text = (f"{evidence} A {len(values) * IMAGES_PER_VALUE}-image run at "
            f"{_words(param, _join(values))} {ending}")
    return NextExperiment(model.pack, param.key, param.label, values, evidence, text, gain)


def _by_choice(model: TasteModel) -> bool:
    """Whether the pack's user answers by choosing between images more than by stars."""
    return model.choices > model.ratings


def _unvaried(model: TasteModel, param: Parameter) -> NextExperiment | None:
    seen = model.values_seen.get(param.key, {})
    current = next(iter(seen), None)
    others = [param.text(v) for v in param.suggested if param.text(v) != current]
    if current is not None and param.numeric:
        others.sort(key=lambda v: abs(float(v) - float(current)))
    if len(others) < (1 if current is not None else 2):
        return None
    picks: list[str | None] = ([current, *others[:2]] if current is not None
                               else [*(others[1:4] or others[:3])])
    per_value, untried_sd = IMAGES_PER_VALUE, UNTRIED_SD
    if _by_choice(model):
        picks, per_value, untried_sd = [current, *others], 1, UNTRIED_SD_CHOICES
    values = _ordered(param, [v for v in picks if v is not None])
    if current is None:
        evidence = f"No rated images yet{_pack_words(model.pack)}."
        ending = "is a good start."
    else:
        judged = "rated image" if model.choices == 0 else "image you rated or compared"
        evidence = (f"Every {judged}{_pack_words(model.pack)} used "
                    f"{_words(param, current)}, so nothing says yet whether another "
                    f"{param.label.lower()} suits you better.")
        ending = "would show it."
    text = (f"{evidence} A {len(values) * per_value}-image run at "
            f"{_words(param, _join(values))} {ending}")
    gain = expected_improvement(0.0, untried_sd)
    return NextExperiment(model.pack, param.key, param.label, values, evidence, text, gain,
                          per_value)


def _pack_words(pack: str | None) -> str:
    return f" in {pack}" if pack else ""


def _nearest(param: Parameter, value: str, centers: list[str]) -> str | None:
    if not param.numeric or not centers:
        return None
    return min(centers, key=lambda c: abs(float(c) - float(value)))


def _ordered(param: Parameter, values: list[str]) -> tuple[str, ...]:
    return tuple(sorted(dict.fromkeys(values), key=param.sort_key))


def _join(values: tuple[str, ...] | list[str]) -> str:
    items = list(values)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _words(param: Parameter, values: str) -> str:
    """ "CFG scale 5–7", "20 and 25 steps", "Sampler Euler a". """
    if param.unit:
        return f"{values} {param.unit}"
    return f"{param.label} {values}"


@dataclass(frozen=True)
class PresetValue:
    """One value of a recommended preset with the model's confidence that it is the best."""

    parameter: str
    label: str
    value: str
    confidence: float
    evidence: int

    def words(self) -> str:
        param = get_parameter(self.parameter)
        return (f"{_words(param, self.value)} — {self.confidence:.0%} sure "
                f"(over {plural(self.evidence, 'rating')})")


def recommended_values(model: TasteModel, *, min_confidence: float = 0.6) -> list[PresetValue]:
    """The best value of each setting the model is fairly sure of, most confident first.
    Shown to the user with its confidence; never applied without them saying so."""
    out = []
    for effect in model.parameters:
        if effect.confidence < min_confidence:
            continue
        best = effect.bins[effect.best]
        out.append(PresetValue(effect.parameter, effect.label, best.bin.center,
                               effect.confidence, effect.evidence))
    return sorted(out, key=lambda v: -v.confidence)


def recommend_for(store: LearningStore, pack: str | None = None) -> RecommendedPreset:
    """The recommended preset of *pack* (insights' best-supported values), each value with
    the taste model's confidence that it is the best. A blocking read: call off the Qt thread."""
    model = fit_taste(store, pack)

    def confidence(parameter: str, value: str) -> float | None:
        effect = model.parameter(parameter)
        return effect.confidence_of(value) if effect is not None else None

    return recommend(insights_for(store, pack), confidence)
