"""plan(): a base config and a VariationSpec become a lazy Plan of fully resolved configs.

The plan is the only expansion path: the preview, the count and the run all read the same
Plan, so what the user was shown is exactly what runs. `count` is exact and computed from the
structure (a 10^12 plan counts instantly); iterating yields one PlanItem per image
(batch size 1, seed resolved by the seed policy); the same seed always gives the same plan.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

from dynamicprompts.wildcards import WildcardManager
from pydantic import ValidationError

from stablenew.pipeline.config import MAX_SEED, PipelineConfig
from stablenew.pipeline.records import RunTags
from stablenew.pipeline.styles import merge_prompts
from stablenew.randomizer.counting import Ctx, PromptSpace, compile_template, wildcard_manager
from stablenew.randomizer.errors import SpecError, TemplateError
from stablenew.randomizer.spec import (
    AXIS_PATHS,
    Axis,
    AxisKind,
    LoraValue,
    SeedPolicy,
    StyleValue,
    VariationMode,
    VariationSpec,
)
from stablenew.storage.validation import plain_problems

#: Random mode tries this many weighted draws before it looks for an unseen variant directly.
_REDRAWS = 32
#: Spaces up to this size are listed when random mode must find the remaining unseen variants.
_LISTABLE = 65_536
#: Fan-out plans with at most this many config-axis combinations have each one validated.
_COMBINATIONS_CHECKED = 256


@dataclass(frozen=True)
class PlanItem:
    """One image of a plan: its resolved config, which variant it belongs to, and its place."""

    config: PipelineConfig
    variant_id: str
    label: str
    index: int
    variant_index: int = 0
    image_in_variant: int = 0

    @property
    def tags(self) -> RunTags:
        """What the runner records with the image (variant id and label)."""
        return RunTags(variant_id=self.variant_id, variant_label=self.label)


@dataclass(frozen=True)
class _Variant:
    prompt_rank: int  # rank in positive × negative prompt space (random mode: -1)
    choices: tuple[int | None, ...]  # value index per axis; None keeps the base value
    positive: str | None = None  # random mode draws texts directly
    negative: str | None = None
    repeat: int = 0  # random mode: how many times this variant was drawn before


class Plan:
    """The images a spec makes from a base config: exact `count`, lazy iteration, preview."""

    def __init__(self, base: PipelineConfig, spec: VariationSpec, positive: PromptSpace,
                 negative: PromptSpace, seed: int) -> None:
        self.base = base
        self.spec = spec
        self.positive = positive
        self.negative = negative
        self.seed = seed
        self.axes: list[Axis] = list(spec.axes)
        self.prompt_count = positive.size * negative.size
        self.variant_count = self._variant_count()
        images = self.variant_count * spec.images_per_variant
        self.uncapped_count = images
        self.count = min(images, spec.max_images) if spec.max_images else images
        base_seed = base.txt2img.seed
        self._seed0 = base_seed if base_seed >= 0 else seed
        self._static = positive.root.static and negative.root.static

    # --- counting -------------------------------------------------------------------------

    def _variant_count(self) -> int:
        lengths = [len(a.values) for a in self.axes]
        mode = self.spec.mode
        if mode == VariationMode.fanout:
            return self.prompt_count * math.prod(lengths)
        if mode == VariationMode.rotate:
            return max([self.prompt_count, *lengths])
        if mode == VariationMode.sequential:
            return self.prompt_count * max(1, sum(lengths))
        if self.spec.count is None:
            raise SpecError("Random mode needs how many variants to draw (count).", field="count")
        return self.spec.count

    @property
    def variants_in_count(self) -> int:
        """Variants that actually run (fewer than variant_count when max_images cuts in)."""
        return min(self.variant_count, -(-self.count // self.spec.images_per_variant))

    def summary(self) -> str:
        images, variants = self.count, self.variants_in_count
        text = (f"This will make {images:,} image{'s' if images != 1 else ''} in "
                f"{variants:,} variant{'s' if variants != 1 else ''}")
        if self.count < self.uncapped_count:
            text += f" (limited from {self.uncapped_count:,})"
        return text + "."

    # --- iteration ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[PlanItem]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[PlanItem]:
        """Items from `start` on (a resumed run): a direct jump except in random mode, which
        replays its draws (cheap: no configs are built for the skipped ones)."""
        ipv = self.spec.images_per_variant
        first_variant = max(0, start) // ipv
        index = first_variant * ipv
        variants = self._variants(first_variant)
        for v, variant in enumerate(variants, start=first_variant):
            if index >= self.count:
                return
            config, variant_id, label = self._resolve(v, variant)
            for j in range(ipv):
                if index >= self.count:
                    return
                if index >= start:
                    # A variant drawn again (random mode, space used up) gets new seeds, so it
                    # never repeats an image already made.
                    seeded = self._with_seed(config, index, j + variant.repeat * ipv)
                    yield PlanItem(seeded, variant_id, label, index, v, j)
                index += 1

    def for_new_run(self) -> Plan:
        """This plan for another run, without parsing its templates again: the same images
        and count, except that a plan seed left random is drawn anew, as `plan()` would."""
        return Plan(self.base, self.spec, self.positive, self.negative,
                    _plan_seed(self.base, self.spec))

    def preview(self, n: int) -> list[PlanItem]:
        """The first n items, exactly as a run would get them."""
        return list(itertools.islice(self, max(0, n)))

    def variant_previews(self, n: int) -> list[PlanItem]:
        """The first image of each of the first n variants (for listing variants)."""
        return list(itertools.islice(
            (item for item in self if item.image_in_variant == 0), max(0, n)))

    def _variants(self, start: int = 0) -> Iterator[_Variant]:
        if self.spec.mode == VariationMode.random:
            yield from itertools.islice(self._random_variants(), start, None)
            return
        for v in range(start, self.variant_count):
            yield self._variant_at(v)

    def _variant_at(self, v: int) -> _Variant:
        lengths = [len(a.values) for a in self.axes]
        mode = self.spec.mode
        if mode == VariationMode.fanout:
            choices: list[int | None] = [0] * len(lengths)
            for i in range(len(lengths) - 1, -1, -1):
                v, choices[i] = divmod(v, lengths[i])
            return _Variant(v, tuple(choices))
        if mode == VariationMode.rotate:
            return _Variant(v % self.prompt_count, tuple(v % n for n in lengths))
        # sequential: for each prompt, each axis in turn with the others at the base value
        per_prompt = max(1, sum(lengths))
        prompt_rank, r = divmod(v, per_prompt)
        choices = [None] * len(lengths)
        for i, n in enumerate(lengths):
            if r < n:
                choices[i] = r
                break
            r -= n
        return _Variant(prompt_rank, tuple(choices))

    def _random_variants(self) -> Iterator[_Variant]:
        """Weighted draws, no repeats while unseen variants remain; a new round after that."""
        rng = Random(f"{self.seed}:random-mode")
        lengths = [len(a.values) for a in self.axes]
        space = self.prompt_count * math.prod(lengths)
        seen: set[tuple[str, str, tuple[int | None, ...]]] = set()
        listed: list[tuple[str, str, tuple[int | None, ...]]] | None = None
        drawn: dict[tuple[str, str, tuple[int | None, ...]], int] = {}
        for v in range(self.variant_count):
            ctx = self._ctx(v)
            key: tuple[str, str, tuple[int | None, ...]] | None = None
            for _ in range(_REDRAWS):
                candidate = (self.positive.sample(rng, ctx), self.negative.sample(rng, ctx),
                             tuple(rng.randrange(n) for n in lengths))
                if candidate not in seen:
                    key = candidate
                    break
            if key is None and space <= _LISTABLE:
                if listed is None:
                    listed = list(dict.fromkeys(self._key_at(r) for r in range(space)))
                unseen = [k for k in listed if k not in seen]
                if not unseen:
                    seen.clear()  # every variant has run once: start a new round
                    unseen = listed
                key = unseen[rng.randrange(len(unseen))]
            elif key is None:
                for _ in range(_REDRAWS):
                    key = self._key_at(rng.randrange(space))
                    if key not in seen:
                        break
            assert key is not None
            seen.add(key)
            repeat = drawn.get(key, 0)
            drawn[key] = repeat + 1
            yield _Variant(-1, key[2], key[0], key[1], repeat)

    def _key_at(self, rank: int) -> tuple[str, str, tuple[int | None, ...]]:
        variant = Plan._variant_at_fanout(rank, [len(a.values) for a in self.axes])
        pos, neg = self._prompts(variant.prompt_rank, self._ctx(0))
        return pos, neg, variant.choices

    @staticmethod
    def _variant_at_fanout(v: int, lengths: list[int]) -> _Variant:
        choices: list[int | None] = [0] * len(lengths)
        for i in range(len(lengths) - 1, -1, -1):
            v, choices[i] = divmod(v, lengths[i])
        return _Variant(v, tuple(choices))

    def _ctx(self, v: int) -> Ctx:
        if self._static:
            return Ctx(cycle=v)
        return Ctx(Random(f"{self.seed}:draw:{v}"), cycle=v)

    def _prompts(self, prompt_rank: int, ctx: Ctx) -> tuple[str, str]:
        pos_rank, neg_rank = divmod(prompt_rank, self.negative.size)
        return self.positive.text(pos_rank, ctx), self.negative.text(neg_rank, ctx)

    # --- resolving ------------------------------------------------------------------------

    def _resolve(self, v: int, variant: _Variant) -> tuple[PipelineConfig, str, str]:
        if variant.positive is not None:
            positive, negative = variant.positive, variant.negative or ""
        else:
            positive, negative = self._prompts(variant.prompt_rank, self._ctx(v))
        prompt_label = _shorten(positive)
        changes, positive, negative, parts = apply_axes(
            self.axes, variant.choices, positive, negative)
        changes["txt2img.prompt"] = positive
        changes["txt2img.negative_prompt"] = negative
        changes["txt2img.batch_size"] = 1
        changes["txt2img.batch_count"] = 1
        try:
            config = self.base.with_changes(changes)
        except ValidationError as exc:
            problems = "; ".join(str(p) for p in plain_problems(exc, PipelineConfig))
            where = ", ".join(parts) or "the prompt variant"
            raise SpecError(f"The variant {where} is not a valid setup: {problems}",
                            detail=str(exc)) from None
        label_parts = list(parts)
        if self.prompt_count > 1 or not label_parts:
            label_parts.insert(0, prompt_label)
        digest = hashlib.blake2b(
            repr((positive, negative, parts)).encode(), digest_size=5).hexdigest()
        return config, digest, ", ".join(label_parts)

    def _with_seed(self, config: PipelineConfig, index: int, j: int) -> PipelineConfig:
        policy = self.spec.seed_policy
        if policy == SeedPolicy.fixed:
            seed = (self._seed0 + j) % (MAX_SEED + 1)
        elif policy == SeedPolicy.increment:
            seed = (self._seed0 + index) % (MAX_SEED + 1)
        else:
            seed = _hash_seed(self.seed, index)
        txt = config.txt2img.model_copy(update={"seed": seed})
        return config.model_copy(update={"txt2img": txt})


def apply_axes(axes: list[Axis], choices: tuple[int | None, ...], positive: str, negative: str
               ) -> tuple[dict[str, Any], str, str, list[str]]:
    """Config changes, the prompts with styles/LoRAs/embeddings merged, and label parts."""
    changes: dict[str, Any] = {}
    extras: list[str] = []
    negative_extras: list[str] = []
    parts: list[str] = []
    for axis, choice in zip(axes, choices, strict=True):
        if choice is None:
            continue
        value = axis.values[choice]
        parts.append(f"{axis.name}={axis.value_label(value)}")
        kind = axis.kind
        if kind is None:
            changes[str(axis.path)] = value
        elif kind is AxisKind.size:
            changes["txt2img.width"], changes["txt2img.height"] = value
        elif kind in AXIS_PATHS:
            for path in AXIS_PATHS[kind]:
                changes[path] = value
        elif kind in (AxisKind.lora, AxisKind.lora_library):
            assert isinstance(value, LoraValue)
            if value.tag:
                extras.append(value.tag)
        elif kind is AxisKind.embedding:
            if str(value).strip():
                extras.append(str(value).strip())
        elif kind is AxisKind.negative_embedding:
            if str(value).strip():
                negative_extras.append(str(value).strip())
        elif kind is AxisKind.style:
            assert isinstance(value, StyleValue)
            # The pipeline's merge is A1111's own rule, so a style on an axis gives the same
            # prompt as that style picked in the web UI.
            positive = merge_prompts(value.prompt, positive)
            negative = merge_prompts(value.negative_prompt, negative)
    if extras:
        positive = ", ".join(p for p in (positive.strip(), *extras) if p)
    if negative_extras:
        negative = ", ".join(p for p in (negative.strip(), *negative_extras) if p)
    return changes, positive, negative, parts


def _hash_seed(seed: int, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}:image:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (MAX_SEED + 1)


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan(
    base_config: PipelineConfig,
    spec: VariationSpec,
    *,
    wildcards_dir: str | Path | WildcardManager | None = None,
) -> Plan:
    """Plan the images of `spec` over `base_config`.

    Raises TemplateError (with the position and wildcard) for a bad template and SpecError
    for an axis value the config refuses — before anything runs.
    """
    manager = wildcard_manager(wildcards_dir)
    weights = spec.wildcard_weights
    template = spec.template if spec.template is not None else base_config.txt2img.prompt
    negative_template = (spec.negative_template if spec.negative_template is not None
                         else base_config.txt2img.negative_prompt)
    positive = compile_template(template, wildcards=manager, wildcard_weights=weights,
                                prompt_matrix=spec.prompt_matrix)
    try:
        negative = compile_template(negative_template, wildcards=manager, wildcard_weights=weights)
    except TemplateError as exc:
        exc.message = f"Negative prompt: {exc.message}"
        exc.args = (exc.message,)
        raise
    _check_axes(base_config, spec.axes)
    _check_combinations(base_config, spec.axes, VariationMode(spec.mode))
    return Plan(base_config, spec, positive, negative, _plan_seed(base_config, spec))


def _plan_seed(base: PipelineConfig, spec: VariationSpec) -> int:
    """The spec's seed, else the card's seed, else a random one (recorded in the plan)."""
    if spec.seed is not None:
        return spec.seed
    return base.txt2img.seed if base.txt2img.seed >= 0 else secrets.randbelow(MAX_SEED + 1)


def _check_axes(base: PipelineConfig, axes: list[Axis]) -> None:
    """Every axis value must give a valid config, so a bad value never starts a run.

    The i-th values of all axes are checked together (one validation per row instead of one
    per value); only a failing row is checked value by value to name the culprit."""
    rows = max((len(a.values) for a in axes), default=0)
    for i in range(rows):
        choices = tuple(i if i < len(a.values) else None for a in axes)
        if _axis_problem(base, axes, choices) is None:
            continue
        for n, axis in enumerate(axes):
            if i >= len(axis.values):
                continue
            alone = tuple(i if k == n else None for k in range(len(axes)))
            problem = _axis_problem(base, axes, alone)
            if problem is not None:
                reason, detail = problem
                raise SpecError(
                    f"{axis.title} = {axis.value_label(axis.values[i])} cannot be used: {reason}",
                    field=f"axes.{n}", detail=detail)


def _check_combinations(base: PipelineConfig, axes: list[Axis], mode: VariationMode) -> None:
    """Values valid alone can still clash (a large size × a large hires scale passes the
    pixel limit): check the combinations the mode makes, when there are few enough."""
    config_axes = [n for n, a in enumerate(axes) if a.kind is None or a.kind in AXIS_PATHS]
    if len(config_axes) < 2 or mode == VariationMode.sequential:
        return
    lengths = [len(axes[n].values) for n in config_axes]
    if mode == VariationMode.rotate:
        rows: Iterator[tuple[int, ...]] = (
            tuple(v % n for n in lengths) for v in range(max(lengths)))
    elif math.prod(lengths) <= _COMBINATIONS_CHECKED:
        rows = itertools.product(*(range(n) for n in lengths))
    else:
        return
    for row in rows:
        choices: list[int | None] = [None] * len(axes)
        for n, value in zip(config_axes, row, strict=True):
            choices[n] = value
        problem = _axis_problem(base, axes, tuple(choices))
        if problem is not None:
            reason, detail = problem
            where = ", ".join(f"{axes[n].title} = {axes[n].value_label(axes[n].values[v])}"
                              for n, v in zip(config_axes, row, strict=True))
            raise SpecError(f"The combination {where} cannot be used: {reason}",
                            field="axes", detail=detail)


def _axis_problem(base: PipelineConfig, axes: list[Axis], choices: tuple[int | None, ...]
                  ) -> tuple[str, str] | None:
    changes, *_ = apply_axes(axes, choices, "", "")
    if not changes:
        return None
    try:
        base.with_changes(changes)
    except ValidationError as exc:
        return "; ".join(p.message for p in plain_problems(exc, PipelineConfig)), str(exc)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return f"there is no such setting ({exc})", repr(exc)
    return None


__all__ = ["Plan", "PlanItem", "apply_axes", "plan"]
