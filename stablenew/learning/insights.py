"""Insights: what the ratings say about each parameter, in plain words, and only when they can.

Numbers come from the store's running aggregates (count, sum, sum of squares per value), so
building insights costs the same for ten records or a million. A summary that names a
winner needs enough images on both sides and a difference that is unlikely to be chance
(Welch's t-test at about 95 %); otherwise the insight says so and suggests a learning run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from statistics import NormalDist
from typing import Any

from stablenew.learning.parameters import Parameter, get_parameter
from stablenew.learning.store import LearningStore, ValueStats
from stablenew.pipeline.config import PipelineConfig, set_path

MIN_PER_VALUE = 3  # images a value needs before it takes part in a comparison
MIN_TOTAL = 8  # rated images in the two compared groups together
MIN_DIFFERENCE = 0.5  # stars; smaller differences are not worth acting on
# A rating is a whole number of stars, so tiny groups often show no spread at all; this
# floor (a standard deviation of half a star) keeps three 5s from looking like certainty.
VARIANCE_FLOOR = 0.25
# Parameters shown first when nothing is known yet: the ones that matter most to most users.
SUGGESTED_ORDER = ("steps", "cfg", "sampler", "scheduler", "denoise", "hires_denoise",
                   "hires_scale", "adetailer_denoise", "checkpoint", "clip_skip")

# Two-sided 97.5 % quantiles of Student's t by degrees of freedom (1..30); beyond, ≈ normal.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile(p: float, df: float) -> float:
    """The *p* quantile of Student's t with *df* degrees of freedom (p > 0.5).

    The Cornish–Fisher expansion around the normal quantile (Abramowitz & Stegun 26.7.5):
    within 1 % of the exact value from 3 degrees of freedom up, which is all a
    comparison of groups of three or more images needs.
    """
    z = NormalDist().inv_cdf(p)
    v = max(df, 1.0)
    return (z + (z ** 3 + z) / (4 * v) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * v ** 3)
            + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z)
            / (92160 * v ** 4))


def t_critical(df: float) -> float:
    if df < 1:
        return _T975[0]
    if df <= 30:
        return _T975[int(df) - 1]
    return 1.960 + 2.4 / df  # close to the exact value above 30 degrees of freedom


TAG_ADVICE: dict[str, str] = {
    "too noisy": "Try lowering noise (denoise) or adding steps.",
    "too smooth": "Try raising CFG or lowering denoise.",
    "blurry": "Try more steps, hires fix, or a sharper upscaler.",
    "oversaturated": "Try lowering CFG.",
    "washed out": "Try raising CFG a little, or a model with a built-in VAE.",
    "too dark": "Try words like 'bright, daylight' in the prompt, or 'dark' in the negative.",
    "too bright": "Try lowering CFG, or 'overexposed' in the negative prompt.",
    "bad hands": "Try ADetailer with a hand detector, or 'bad hands' in the negative prompt.",
    "bad face": "Try ADetailer with a face detector, or raise ADetailer denoise a little.",
    "ignores prompt": "Try raising CFG, or move the important words to the start of the prompt.",
    "artifacts": "Try another sampler, or lower the hires denoise.",
    "distorted": "Try a size close to the model's own (512 for SD 1.5, 1024 for SDXL) and "
                 "enlarge with hires fix.",
    "duplicated": "Try a size close to the model's own and enlarge with hires fix instead.",
    "low detail": "Try more steps, hires fix or ADetailer.",
    "overcooked": "Try lowering CFG or steps.",
    "too different": "Try lowering denoise so more of the first image is kept.",
    "too similar": "Try raising denoise so the stage may change more.",
}
TAG_SYNONYMS: dict[str, str] = {
    "noisy": "too noisy", "grainy": "too noisy", "smooth": "too smooth", "plastic": "too smooth",
    "waxy": "too smooth", "soft": "blurry", "blur": "blurry", "saturated": "oversaturated",
    "dull": "washed out", "faded": "washed out", "dark": "too dark", "bright": "too bright",
    "overexposed": "too bright", "hands": "bad hands", "face": "bad face",
    "off prompt": "ignores prompt", "off-prompt": "ignores prompt", "glitchy": "artifacts",
    "deformed": "distorted", "bad anatomy": "distorted", "double": "duplicated",
    "flat": "low detail", "burned": "overcooked", "burnt": "overcooked",
}
KNOWN_TAGS: tuple[str, ...] = tuple(TAG_ADVICE)


def advice_for(tag: str) -> str | None:
    key = " ".join(tag.split()).casefold()
    return TAG_ADVICE.get(TAG_SYNONYMS.get(key, key))


@dataclass(frozen=True)
class ValueInsight:
    """Mean rating of one value with its count and a 95 % interval (clamped to 1–5 stars)."""

    value: str
    label: str
    n: int
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class ParameterInsight:
    parameter: str
    label: str
    values: tuple[ValueInsight, ...]
    conclusive: bool
    summary: str
    best_values: tuple[str, ...] = ()
    recommended: str | None = None  # the single best-supported value, when conclusive
    rated_images: int = 0
    # True when the numbers come only from learning runs on this very setting, where nothing
    # else differed between the images: a fair comparison, preferred when it is conclusive.
    fair: bool = False


@dataclass(frozen=True)
class TagAdvice:
    tag: str
    count: int
    advice: str


@dataclass(frozen=True)
class Insights:
    """Everything the insights panel shows for one pack (or, with pack None, for all)."""

    pack: str | None
    rated: int
    parameters: tuple[ParameterInsight, ...]
    advice: tuple[TagAdvice, ...] = ()
    hint: str = ""

    def parameter(self, key: str) -> ParameterInsight | None:
        return next((p for p in self.parameters if p.parameter == key), None)

    def to_json(self) -> dict[str, Any]:
        """The shape `stablenew learning insights --json` prints (documented in its --help)."""
        return {"pack": self.pack, "rated": self.rated,
                "parameters": [asdict(p) for p in self.parameters],
                "advice": [asdict(a) for a in self.advice], "lines": self.lines()}

    def lines(self) -> list[str]:
        """Conclusions first, then advice from tags, then what is still open (and a hint)."""
        out = [p.summary for p in self.parameters if p.conclusive]
        out += [f'"{a.tag}" on {a.count} image{"s" if a.count != 1 else ""}: {a.advice}'
                for a in self.advice]
        out += [p.summary for p in self.parameters if not p.conclusive]
        if not self.parameters or all(p.conclusive for p in self.parameters):
            out.append(self.hint)
        return out


@dataclass(frozen=True)
class RecommendedChange:
    """One value of a recommended preset, why, and (from the taste model) how sure it is."""

    parameter: str
    label: str
    value: str
    reason: str
    confidence: float | None = None  # the chance this value is the setting's best

    def words(self) -> str:
        sure = f" ({self.confidence:.0%} sure)" if self.confidence is not None else ""
        return f"{self.label}: {self.value}{sure} — {self.reason}"


@dataclass(frozen=True)
class RecommendedPreset:
    """Best-supported values for a pack; previewed and saved only when the user says so."""

    pack: str | None
    changes: tuple[RecommendedChange, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.changes

    def to_json(self) -> dict[str, Any]:
        """The shape `stablenew learning recommend --json` prints (documented in its --help)."""
        return {"pack": self.pack, "changes": [asdict(c) for c in self.changes],
                "preset": self.partial()}

    def apply_to(self, base: PipelineConfig) -> PipelineConfig:
        """The base config with every recommended value set (a preview; nothing is saved)."""
        config = base
        for change in self.changes:
            param = get_parameter(change.parameter)
            if param.runnable:  # the enhance style is a Settings choice, not in the config
                config = param.apply(config, param.coerce(change.value))
        return config

    def partial(self) -> dict[str, Any]:
        """The recommended values as a nested partial config, as presets hold them."""
        data: dict[str, Any] = {}
        for change in self.changes:
            param = get_parameter(change.parameter)
            if not param.path or "." in param.path and param.path.split(".")[-2].isdigit():
                continue  # prompt-borne (LoRA) and list items do not fit a partial preset
            set_path(data, param.path, param.coerce(change.value))
            if param.requires:
                set_path(data, param.requires, True)
        return data

    def to_preset(self, name: str) -> Any:
        """A `Preset` holding the recommended values, ready for the user to save."""
        from stablenew.pipeline.presets import Preset

        where = f"pack '{self.pack}'" if self.pack else "all packs"
        description = (f"Recommended by StableNew from your ratings ({where}):\n"
                       + "\n".join(self.describe()))
        return Preset(name=name, description=description, tags=["learned"], config=self.partial())

    def describe(self) -> list[str]:
        if not self.changes:
            return ["No recommendation yet: rate more images, or run a learning run."]
        return [c.words() for c in self.changes]


@dataclass
class _Group:
    values: list[str]
    n: int
    total: float
    total_sq: float

    @property
    def mean(self) -> float:
        return self.total / self.n

    @property
    def variance(self) -> float:
        if self.n < 2:
            return VARIANCE_FLOOR * 4
        var = (self.total_sq - self.total * self.total / self.n) / (self.n - 1)
        return max(var, VARIANCE_FLOOR)


def _pack_words(pack: str | None) -> str:
    if pack is None:
        return "Across all packs"
    if pack == "":
        return "For images without a pack"
    return f"For {pack}"


def _value_insight(param: Parameter, s: ValueStats) -> ValueInsight:
    group = _Group([s.value], s.n, s.total, s.total_sq)
    if s.n < 2:
        low, high = 1.0, 5.0
    else:
        half = t_critical(s.n - 1) * math.sqrt(group.variance / s.n)
        low, high = max(1.0, group.mean - half), min(5.0, group.mean + half)
    return ValueInsight(s.value, param.describe(s.value), s.n, group.mean, low, high)


def _merge(groups: list[_Group]) -> _Group:
    return _Group([v for g in groups for v in g.values], sum(g.n for g in groups),
                  sum(g.total for g in groups), sum(g.total_sq for g in groups))


def _welch(best: _Group, worst: _Group) -> tuple[float, float]:
    """Welch's t of best - worst and its Welch–Satterthwaite degrees of freedom."""
    se2 = best.variance / best.n + worst.variance / worst.n
    t = (best.mean - worst.mean) / math.sqrt(se2)
    df = se2 ** 2 / ((best.variance / best.n) ** 2 / max(best.n - 1, 1)
                     + (worst.variance / worst.n) ** 2 / max(worst.n - 1, 1))
    return t, df


@dataclass(frozen=True)
class _Comparison:
    """One candidate finding: the *best* side against the *worst*, and how sure it is."""

    best: _Group
    worst: _Group
    t: float
    critical: float
    kind: str  # "window": neighbouring values; "low"/"high": one value against all the others

    @property
    def holds(self) -> bool:
        return (self.best.n + self.worst.n >= MIN_TOTAL
                and self.best.mean - self.worst.mean >= MIN_DIFFERENCE and self.t >= self.critical)


def _window_comparison(param: Parameter, usable: list[_Group]) -> _Comparison:
    """The best run of neighbouring values against the worst run that does not overlap it."""
    width = 2 if param.numeric and len(usable) >= 4 else 1
    windows = [_merge(usable[i:i + width]) for i in range(len(usable) - width + 1)]
    best_index = max(range(len(windows)), key=lambda i: (windows[i].mean, windows[i].n))
    best = windows[best_index]
    others = [w for i, w in enumerate(windows) if abs(i - best_index) >= width]
    if not others:
        others = [u for u in usable if u.values[0] not in best.values]
    worst = min(others, key=lambda w: (w.mean, -w.n))
    t, df = _welch(best, worst)
    return _Comparison(best, worst, t, t_critical(df), "window")


def _single_comparisons(usable: list[_Group]) -> list[_Comparison]:
    """The lowest and the highest single value, each against all the other values pooled.

    Windows of two neighbours halve an effect that sits on one value (a penalty on the
    highest CFG only); these comparisons find it. Picking the extreme of k values is a
    choice among k, so the bar is raised to match (Bonferroni over the values).
    """
    if len(usable) < 3:
        return []
    out = []
    low = min(usable, key=lambda u: (u.mean, -u.n))
    high = max(usable, key=lambda u: (u.mean, u.n))
    for kind, one in (("low", low), ("high", high)):
        rest = _merge([u for u in usable if u is not one])
        best, worst = (rest, one) if kind == "low" else (one, rest)
        t, df = _welch(best, worst)
        critical = t_quantile(1 - 0.025 / len(usable), df)
        out.append(_Comparison(best, worst, t, critical, kind))
    return out


def _compare(param: Parameter, stats: list[ValueStats], pack: str | None,
             fair: bool = False) -> ParameterInsight:
    ordered = sorted(stats, key=lambda s: param.sort_key(s.value))
    values = tuple(_value_insight(param, s) for s in ordered)
    rated = sum(s.n for s in ordered)
    base = ParameterInsight(parameter=param.key, label=param.label, values=values,
                            conclusive=False, summary="", rated_images=rated, fair=fair)
    not_enough = (f"{_pack_words(pack)}: not enough ratings yet — try a learning run on "
                  f"{param.label.lower()}.")
    usable = [_Group([s.value], s.n, s.total, s.total_sq) for s in ordered if s.n >= MIN_PER_VALUE]
    if len(usable) < 2:
        return replace(base, summary=not_enough)
    window = _window_comparison(param, usable)
    found = [c for c in (window, *_single_comparisons(usable)) if c.holds]
    if not found:
        best, worst = window.best, window.worst
        if best.n + worst.n < MIN_TOTAL:
            return replace(base, summary=not_enough)
        summary = (f"{_pack_words(pack)}, {param.label.lower()} makes no clear difference yet "
                   f"({param.describe_band(best.values)} {best.mean:.1f} vs "
                   f"{_band_numbers(param, worst.values)} {worst.mean:.1f} stars over "
                   f"{best.n + worst.n} images) — rate more images or try a learning run on "
                   f"{param.label.lower()}.")
        return replace(base, summary=summary)
    # The clearest finding is the one reported: a steady trend over neighbouring values
    # (steps) or a single value that stands out (a penalty on the highest CFG).
    chosen = max(found, key=lambda c: c.t)
    best, worst = chosen.best, chosen.worst
    where = " in your learning runs" if fair else ""
    if chosen.kind == "low":
        numbers = f"{worst.mean:.1f} vs {best.mean:.1f} stars over {best.n + worst.n} images"
        summary = (f"{_pack_words(pack)}, {param.describe(worst.values[0])} scores lower than "
                   f"{_rest_words(param, usable, best.values)}{where}: {numbers}.")
    elif chosen.kind == "high":
        numbers = f"{best.mean:.1f} vs {worst.mean:.1f} stars over {best.n + worst.n} images"
        summary = (f"{_pack_words(pack)}, {param.describe(best.values[0])} scores higher than "
                   f"{_rest_words(param, usable, worst.values)}{where}: {numbers}.")
    else:
        numbers = f"{best.mean:.1f} vs {worst.mean:.1f} stars over {best.n + worst.n} images"
        summary = (f"{_pack_words(pack)}, {param.describe_band(best.values)} scores higher than "
                   f"{_band_numbers(param, worst.values)}{where}: {numbers}.")
    top = max((u for u in usable if u.values[0] in best.values), key=lambda u: (u.mean, u.n))
    return replace(base, conclusive=True, summary=summary, best_values=tuple(best.values),
                   recommended=top.values[0])


def _rest_words(param: Parameter, usable: list[_Group], rest: list[str]) -> str:
    """The pooled other values in short words: "4–8" when they are neighbours, else in general."""
    order = [u.values[0] for u in usable]
    first = order.index(rest[0])
    if param.numeric and order[first:first + len(rest)] == rest:
        return _band_numbers(param, rest)
    return "the other values"


def _band_numbers(param: Parameter, texts: list[str]) -> str:
    """The losing side in short words: "15–20" when the unit was already said."""
    if param.numeric and param.unit:
        return texts[0] if len(texts) == 1 else f"{texts[0]}–{texts[-1]}"
    return param.describe_band(texts)


def build_insights(stats: list[ValueStats], tag_counts: dict[str, int],
                   pack: str | None, fair_stats: list[ValueStats] | None = None) -> Insights:
    """Insights from aggregates (as `LearningStore.stats` returns them); *fair_stats* (from
    `LearningStore.fair_stats`) are the ratings of learning runs on each setting."""
    by_param: dict[str, list[ValueStats]] = {}
    for s in stats:
        by_param.setdefault(s.param, []).append(s)
    fair_by_param: dict[str, list[ValueStats]] = {}
    for s in fair_stats or ():
        fair_by_param.setdefault(s.param, []).append(s)
    rated = 0
    if "steps" in by_param:  # every txt2img image has steps, so this counts rated images
        rated = sum(s.n for s in by_param["steps"])
    parameters: list[ParameterInsight] = []
    for key in sorted(by_param, key=_param_order):
        group = by_param[key]
        if len(group) < 2:
            continue  # one value only: nothing to compare
        try:
            param = get_parameter(key)
        except Exception:  # noqa: BLE001 - a parameter from a newer StableNew; skip rather than fail
            continue
        insight = _compare(param, group, pack)
        fair_group = fair_by_param.get(key, [])
        if len(fair_group) >= 2:
            # Everything else differs between ordinary images (a better model with more
            # steps...); a learning run's comparison is fair, so it wins when it concludes.
            fair = _compare(param, fair_group, pack, fair=True)
            if fair.conclusive or not insight.conclusive:
                insight = fair
        parameters.append(insight)
    advice = []
    for tag, count in tag_counts.items():
        text = advice_for(tag)
        if text and count >= 2:
            advice.append(TagAdvice(tag, count, text))
    hint = _hint(parameters, rated, pack)
    return Insights(pack, rated, tuple(parameters), tuple(advice), hint)


def _param_order(key: str) -> tuple[int, str]:
    try:
        return (SUGGESTED_ORDER.index(key), key)
    except ValueError:
        return (len(SUGGESTED_ORDER), key)


def _hint(parameters: list[ParameterInsight], rated: int, pack: str | None) -> str:
    if rated == 0:
        return (f"{_pack_words(pack)}: no ratings yet — rate a few images (keys 1–5) or try a "
                "learning run on steps.")
    tried = {p.parameter for p in parameters}
    untried = next((k for k in SUGGESTED_ORDER if k not in tried), "steps")
    label = get_parameter(untried).label.lower()
    if parameters and all(p.conclusive for p in parameters):
        return f"{_pack_words(pack)}: to learn more, try a learning run on {label}."
    return f"{_pack_words(pack)}: not enough ratings yet — try a learning run on {label}."


def insights_for(store: LearningStore, pack: str | None = None) -> Insights:
    """Insights for one pack ("" for images without a pack) or, with None, for all of them."""
    return build_insights(store.stats(pack), store.tag_counts(pack), pack, store.fair_stats(pack))


def recommend(insights: Insights,
              confidence: Callable[[str, str], float | None] | None = None) -> RecommendedPreset:
    """A preset from every parameter whose insight is conclusive (best-supported value);
    *confidence* (parameter, value) gives each its chance of being the best, when known."""
    changes = []
    for p in insights.parameters:
        if p.conclusive and p.recommended is not None:
            best = next(v for v in p.values if v.value == p.recommended)
            changes.append(RecommendedChange(
                p.parameter, p.label, p.recommended,
                f"{best.mean:.1f} stars over {best.n} images ({p.summary})",
                confidence(p.parameter, p.recommended) if confidence is not None else None))
    return RecommendedPreset(insights.pack, tuple(changes))
