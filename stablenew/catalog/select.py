"""Choosing LoRAs for a prompt: weighted random per category, deterministic for a seed.

The same prompt, seed and settings always give the same LoRAs, so the randomizer's count
and preview stay exact: the draw uses a `random.Random` seeded from the seed and the prompt
only (without its `<lora:…>` tokens), over candidates in a fixed order.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from stablenew.backends.lora_tags import LORA_TAG
from stablenew.catalog.entry import BaseModel, ModelEntry, ModelKind
from stablenew.catalog.index import Catalog
from stablenew.catalog.match import LoraMatch, Matcher
from stablenew.catalog.prompt import DEFAULT_WEIGHT, insert_lora

MAX_LORAS = 6


@dataclass(frozen=True)
class SelectorSettings:
    """How many LoRAs to pick and what to fall back on."""

    min_count: int = 1
    max_count: int = 3
    #: A detail LoRA added to every choice (its name), when it fits the checkpoint.
    detailer: str = ""
    detailer_weight: float | None = None
    #: LoRA names drawn from when nothing in the catalog matches the prompt.
    fallbacks: tuple[str, ...] = ()
    #: Only LoRAs with these categories (empty: any).
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.min_count <= self.max_count <= MAX_LORAS:
            raise ValueError(f"Pick between 1 and {MAX_LORAS} LoRAs, the fewest first "
                             f"(got {self.min_count} to {self.max_count}).")


@dataclass(frozen=True)
class ChosenLora:
    """One LoRA the selector picked, with the weight and trigger words to insert and why."""

    entry: ModelEntry
    weight: float
    triggers: tuple[str, ...]
    reason: str


@dataclass
class Selection:
    """The LoRAs picked for one prompt and seed."""

    loras: list[ChosenLora] = field(default_factory=list)

    def apply(self, prompt: str) -> str:
        for chosen in self.loras:
            prompt = insert_lora(prompt, chosen.entry, chosen.weight, list(chosen.triggers))
        return prompt


def _weighted_pick(rng: random.Random, pool: list[LoraMatch]) -> LoraMatch:
    total = sum(m.score for m in pool)
    point = rng.random() * total
    for m in pool:
        point -= m.score
        if point < 0:
            return m
    return pool[-1]


def choose_loras(prompt: str, seed: int, matcher: Matcher, catalog: Catalog | None = None, *,
                 settings: SelectorSettings = SelectorSettings(),
                 checkpoint: BaseModel = BaseModel.unknown, node: str | None = None,
                 exclude: Iterable[str] = ()) -> Selection:
    """Pick LoRAs for *prompt*: one per category in turn, each drawn with its match score as weight.

    LoRAs named in *exclude* (those the prompt already has, say) are never picked, so the
    user's own weight for one stays as written."""
    # The draw ignores the prompt's own LoRA tokens: a learning run over one LoRA's weight
    # gets the same picks in every column of a seed, so nothing else differs between them.
    rng = random.Random(f"{seed}\x00{LORA_TAG.sub('', prompt)}")
    skip = {name.lower() for name in exclude}
    matches = [m for m in matcher.match(prompt, checkpoint=checkpoint, catalog=catalog, node=node)
               if m.entry.name.lower() not in skip]
    if settings.categories:
        matches = [m for m in matches if m.entry.category in settings.categories]
    if not matches:
        matches = [m for m in _fallbacks(settings, catalog, checkpoint, node)
                   if m.entry.name.lower() not in skip]
    by_category: dict[str, list[LoraMatch]] = {}
    for m in sorted(matches, key=lambda m: (m.entry.category, m.entry.name.lower(), m.entry.path)):
        by_category.setdefault(m.entry.category, []).append(m)
    wanted = rng.randint(settings.min_count, settings.max_count)
    order = sorted(by_category)
    rng.shuffle(order)
    chosen: list[ChosenLora] = []
    while len(chosen) < wanted and any(by_category.values()):
        for category in order:
            pool = by_category[category]
            if not pool or len(chosen) >= wanted:
                continue
            m = _weighted_pick(rng, pool)
            pool.remove(m)
            chosen.append(ChosenLora(m.entry, m.entry.weight or DEFAULT_WEIGHT, tuple(m.entry.triggers[:1]),
                                     m.reasons[0] if m.reasons else "a fallback: nothing matched the prompt"))
    detailer = catalog.find(settings.detailer, ModelKind.lora) if settings.detailer and catalog else None
    if (detailer is not None and detailer.base_model.fits(checkpoint)
            and all(c.entry is not detailer for c in chosen) and detailer.name.lower() not in skip
            and not (node and catalog is not None and catalog.available_on(detailer, node) is False)):
        chosen.append(ChosenLora(detailer, settings.detailer_weight or detailer.weight or DEFAULT_WEIGHT,
                                 tuple(detailer.triggers[:1]), "the detail LoRA you chose"))
    return Selection(chosen)


def _fallbacks(settings: SelectorSettings, catalog: Catalog | None, checkpoint: BaseModel,
               node: str | None) -> list[LoraMatch]:
    out = []
    for name in settings.fallbacks:
        entry = catalog.find(name, ModelKind.lora) if catalog else None
        if entry is None or not entry.base_model.fits(checkpoint):
            continue
        if node and catalog is not None and catalog.available_on(entry, node) is False:
            continue
        out.append(LoraMatch(entry, 1.0, ["a fallback: nothing matched the prompt"]))
    return out
