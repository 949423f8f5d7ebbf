"""TasteModel: one model of a user's taste per pack, from star ratings, tags and pairwise choices.

Each setting's values are put in a few bins (CFG 4–5.5, 6–7, …; a sampler each), and every
bin gets an effect in stars. An image's score is the sum of the effects of its bins. Stars
are read as that score plus noise; a complaint tag ("too noisy") takes half a star off
its image's rating; a choice "A is better than B" is a Bradley–Terry observation of
score(A) − score(B), and "the same" says that difference is about zero. The effects get a
Gaussian prior (most settings move taste by less than a star) and are fitted by Newton's
method; the inverse Hessian at the optimum (Laplace) gives each effect's uncertainty, so a
value seen on six images is less certain than one seen on sixty.

Pure numpy, fitted on whatever thread calls it (the controllers call it off the Qt thread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from stablenew.learning.errors import LearningError
from stablenew.learning.insights import advice_for
from stablenew.learning.parameters import Parameter, get_parameter

if TYPE_CHECKING:
    from stablenew.learning.store import LearningStore, TasteInputs

MAX_BINS = 5  # numeric settings with more distinct values are grouped into this many bins
PRIOR_SD = 1.0  # stars: the effect of one bin before any evidence
# Neighbouring bins of a numeric setting are alike a priori: their correlation falls to 0.6
# one bin apart and 0.14 two apart, and OWN_SHARE of a bin's prior variance is its own.
NEIGHBOUR_BINS = 1.0
OWN_SHARE = 0.2
CHOICE_SCALE = 0.6  # stars: a score difference of this size wins a choice 73 % of the time
SAME_SD = 0.5  # stars: how close two images called "the same" are
TAG_PENALTY = 0.5  # stars off a rating per complaint tag (at most two count)
TYPICAL_NOISE = 0.8  # variance of a rater's stars for one and the same image quality
PRIOR_RATINGS = 10  # how many ratings that typical spread counts as
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Bin:
    """Values of one setting that the model treats as one ("CFG scale 5–7")."""

    parameter: str
    values: tuple[str, ...]
    label: str
    short: str  # the values alone: "5–7"

    @property
    def center(self) -> str:
        """The value a learning run uses for this bin (its middle one)."""
        return self.values[len(self.values) // 2]


@dataclass(frozen=True)
class BinEffect:
    """A bin's effect in stars against the setting's average, with its standard deviation."""

    bin: Bin
    effect: float
    sd: float
    evidence: int  # ratings and choices that involved an image in this bin


@dataclass(frozen=True)
class ParameterEffect:
    """What one setting does to the user's taste, with how sure the model is."""

    parameter: str
    label: str
    bins: tuple[BinEffect, ...]
    best: int  # index of the bin with the highest estimated effect
    worst: int
    spread: float  # estimated best minus worst, stars
    spread_sd: float
    confidence: float  # probability that the best bin really is the best (posterior draws)
    shares: tuple[float, ...] = ()  # the same probability for every bin, in bin order

    @property
    def evidence(self) -> int:
        return sum(b.evidence for b in self.bins)

    def confidence_of(self, value: str) -> float:
        """The probability that *value*'s bin is this setting's best (0 for an unknown value)."""
        for effect, share in zip(self.bins, self.shares, strict=True):
            if value in effect.bin.values:
                return share
        return 0.0

    def to_json(self) -> dict[str, Any]:
        return {"parameter": self.parameter, "label": self.label,
                "best": self.bins[self.best].bin.center, "spread": round(self.spread, 3),
                "spread_sd": round(self.spread_sd, 3), "confidence": round(self.confidence, 3),
                "bins": [{"values": list(b.bin.values), "label": b.bin.label,
                          "effect": round(b.effect, 3), "sd": round(b.sd, 3),
                          "evidence": b.evidence} for b in self.bins]}


@dataclass(frozen=True)
class TasteModel:
    """The fitted model of one pack (None: all packs): per-setting effects and the posterior."""

    pack: str | None
    ratings: int
    choices: int
    parameters: tuple[ParameterEffect, ...]
    # Posterior mean and covariance over all bins (in the order of `bins`), for suggestions.
    bins: tuple[Bin, ...] = ()
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    values_seen: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    def parameter(self, key: str) -> ParameterEffect | None:
        return next((p for p in self.parameters if p.parameter == key), None)

    def to_json(self) -> dict[str, Any]:
        return {"pack": self.pack, "ratings": self.ratings, "choices": self.choices,
                "parameters": [p.to_json() for p in self.parameters]}


def fit_taste(store: LearningStore, pack: str | None = None) -> TasteModel:
    """The taste model of *pack* from the store (a blocking read and fit: call off the Qt thread)."""
    return fit_inputs(store.taste_inputs(pack), pack)


def fit_inputs(inputs: TasteInputs, pack: str | None = None, *, seed: int = 0) -> TasteModel:
    images = inputs.images
    index = {img.id: i for i, img in enumerate(images)}
    choices = [(index[w], index[lo], same) for w, lo, same in inputs.choices
               if w in index and lo in index]
    rated = [i for i, img in enumerate(images) if img.rating is not None]
    values_seen: dict[str, dict[str, int]] = {}
    for img in images:
        for key, value in img.params.items():
            seen = values_seen.setdefault(key, {})
            seen[value] = seen.get(value, 0) + 1
    bins, lookup = _bins(values_seen)
    if not bins or (not rated and not choices):
        return TasteModel(pack, len(rated), len(choices), (), values_seen=values_seen)
    x = np.zeros((len(images), len(bins)))
    for row, img in enumerate(images):
        for key, value in img.params.items():
            column = lookup.get((key, value))
            if column is not None:
                x[row, column] = 1.0
    mean, cov = _fit(x, images, rated, choices, _prior_precision(bins))
    evidence = x[rated].sum(axis=0)
    for w, lo, _same in choices:
        evidence += np.abs(x[w] - x[lo]) > 0
    params = _effects(bins, mean, cov, evidence, np.random.default_rng(seed))
    return TasteModel(pack, len(rated), len(choices), params, tuple(bins), mean, cov, values_seen)


def _bins(values_seen: dict[str, dict[str, int]]) -> tuple[list[Bin], dict[tuple[str, str], int]]:
    """Bins of every setting that has at least two values, and (setting, value) -> bin."""
    bins: list[Bin] = []
    lookup: dict[tuple[str, str], int] = {}
    for key in sorted(values_seen):
        counts = values_seen[key]
        if len(counts) < 2:
            continue  # one value only: nothing to tell apart
        try:
            param = get_parameter(key)
        except LearningError:
            continue  # a setting from a newer StableNew
        ordered = sorted(counts, key=param.sort_key)
        groups = [[v] for v in ordered]
        if param.numeric and len(ordered) > MAX_BINS:
            groups = _group_by_count(ordered, counts)
        for group in groups:
            lookup.update({(key, v): len(bins) for v in group})
            bins.append(Bin(key, tuple(group), param.describe_band(group), _short(param, group)))
    return bins, lookup


def _short(param: Parameter, values: list[str]) -> str:
    if not param.numeric:
        return " or ".join(values)
    return values[0] if len(values) == 1 else f"{values[0]}–{values[-1]}"


def _group_by_count(ordered: list[str], counts: dict[str, int]) -> list[list[str]]:
    """Neighbouring values in MAX_BINS groups of about equal numbers of images."""
    total = sum(counts[v] for v in ordered)
    groups: list[list[str]] = [[]]
    done = 0
    for value in ordered:
        left_groups = MAX_BINS - len(groups)
        if groups[-1] and done >= total * len(groups) / MAX_BINS and left_groups > 0:
            groups.append([])
        groups[-1].append(value)
        done += counts[value]
    return groups


def _prior_precision(bins: list[Bin]) -> np.ndarray:
    """The inverse of the prior covariance of the bin effects: independent settings, and
    within a numeric setting neighbouring bins alike (CFG 8.5 is more like 10 than 4 is), so
    ratings of one value say something about the values next to it."""
    precision = np.zeros((len(bins), len(bins)))
    for key in dict.fromkeys(b.parameter for b in bins):
        idx = [i for i, b in enumerate(bins) if b.parameter == key]
        if get_parameter(key).numeric:
            steps = np.subtract.outer(np.arange(len(idx)), np.arange(len(idx))) / NEIGHBOUR_BINS
            cov = PRIOR_SD ** 2 * (np.exp(-0.5 * steps ** 2) * (1 - OWN_SHARE)
                                   + np.eye(len(idx)) * OWN_SHARE)
        else:
            cov = np.eye(len(idx)) * PRIOR_SD ** 2
        precision[np.ix_(idx, idx)] = np.linalg.inv(cov)
    return precision


def _fit(x: np.ndarray, images: list[Any], rated: list[int],
         choices: list[tuple[int, int, bool]], prior: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mode and covariance of the bin effects (Laplace approximation)."""
    dims = x.shape[1]
    ratings = np.array([_adjusted(images[i]) for i in rated], dtype=float)
    xr = x[rated]
    y = ratings - ratings.mean() if len(ratings) else ratings
    noise = _noise(y, 0)
    wins = [(w, lo) for w, lo, same in choices if not same]
    ties = [(a, b) for a, b, same in choices if same]
    d_win = np.array([x[w] - x[lo] for w, lo in wins]).reshape(len(wins), dims)
    d_tie = np.array([x[a] - x[b] for a, b in ties]).reshape(len(ties), dims)
    beta = np.zeros(dims)
    for _round in range(2):  # the second round uses the noise left after the first
        fixed = (prior + xr.T @ xr / noise
                 + d_tie.T @ d_tie / SAME_SD ** 2)
        target = xr.T @ y / noise
        for _step in range(25):
            z = d_win @ beta / CHOICE_SCALE
            p = 0.5 * (1.0 + np.tanh(z / 2))  # the logistic function, without overflow
            grad = fixed @ beta - target - d_win.T @ (1.0 - p) / CHOICE_SCALE
            hess = fixed + (d_win.T * (p * (1.0 - p))) @ d_win / CHOICE_SCALE ** 2
            step = np.linalg.solve(hess, grad)
            beta = beta - step
            if float(np.abs(step).max(initial=0.0)) < 1e-6:
                break
        noise = _noise(y - xr @ beta, dims)
    return beta, np.linalg.inv(hess)


def _noise(residual: np.ndarray, dims: int) -> float:
    """Variance of a star rating around the model's score. A few ratings say little about it
    (and fit their own bins exactly), so the estimate starts from a typical rater's spread
    and moves to the data's as ratings come in."""
    free = max(len(residual) - dims, 0)
    observed = float(residual @ residual) if len(residual) else 0.0
    return min(2.0, max(0.3, (observed + TYPICAL_NOISE * PRIOR_RATINGS)
                        / (free + PRIOR_RATINGS)))


def _adjusted(image: Any) -> float:
    complaints = sum(1 for tag in image.tags if advice_for(tag) is not None)
    return max(1.0, float(image.rating) - TAG_PENALTY * min(complaints, 2))


def _effects(bins: list[Bin], mean: np.ndarray, cov: np.ndarray, evidence: np.ndarray,
             rng: np.random.Generator) -> tuple[ParameterEffect, ...]:
    out = []
    for key in dict.fromkeys(b.parameter for b in bins):
        idx = [i for i, b in enumerate(bins) if b.parameter == key]
        k = len(idx)
        centre = np.eye(k) - 1.0 / k  # effects against the setting's own average
        mu = centre @ mean[idx]
        sigma = centre @ cov[np.ix_(idx, idx)] @ centre.T
        sd = np.sqrt(np.clip(np.diag(sigma), 0.0, None))
        best, worst = int(np.argmax(mu)), int(np.argmin(mu))
        diff_var = sigma[best, best] + sigma[worst, worst] - 2 * sigma[best, worst]
        # The argmax does not change with centring, so draw from the full (regular) posterior.
        draws = rng.multivariate_normal(mean[idx], cov[np.ix_(idx, idx)], size=2000,
                                        method="cholesky")
        winners = np.argmax(draws, axis=1)
        shares = tuple(float(np.mean(winners == j)) for j in range(k))
        effects = tuple(BinEffect(bins[i], float(mu[j]), float(sd[j]), int(evidence[i]))
                        for j, i in enumerate(idx))
        out.append(ParameterEffect(key, get_parameter(key).label, effects, best, worst,
                                   float(mu[best] - mu[worst]), math.sqrt(max(diff_var, 0.0)),
                                   shares[best], shares))
    return tuple(out)


def normal_cdf(z: float) -> float:
    return _NORMAL.cdf(z)


def normal_pdf(z: float) -> float:
    return _NORMAL.pdf(z)
