"""Node tiers: what a node is for (quick drafts, everyday work, quality, the best card), and the
order in which work that asks for one tier overflows to the others.

Work asks for a tier (a draft funnel's drafts ask for "draft"); work that asks for none is
standard work. A node of the asked tier is preferred; when those are busy or down the work
overflows up the chain draft → standard → quality → premium, then to any other node that can
take it (a lower tier last).
"""

from __future__ import annotations

from enum import StrEnum


class NodeTier(StrEnum):
    """What a node is for; work prefers nodes of the tier it asks for."""

    draft = "draft"
    standard = "standard"
    quality = "quality"
    premium = "premium"

    @property
    def label(self) -> str:
        return self.value.capitalize()


#: The overflow chain, cheapest first.
TIER_CHAIN: tuple[NodeTier, ...] = tuple(NodeTier)

#: Registries written before tiers had names held a number, 1 the preferred and higher ones
#: taking overflow: 1 becomes standard (what ordinary work prefers), 2 quality, 3 and up premium,
#: so ordinary work overflows between those nodes in the same order as before.
_OLD_NUMBERS = {1: NodeTier.standard, 2: NodeTier.quality}


def as_tier(value: object) -> NodeTier:
    """A tier from its name, or from an old registry's number 1–9; ValueError otherwise."""
    if isinstance(value, NodeTier):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a tier")
    if isinstance(value, int | str) and str(value).strip().isdigit():
        number = int(str(value).strip())
        if not 1 <= number <= 9:
            raise ValueError(f"An old tier number runs from 1 to 9, not {number}")
        return _OLD_NUMBERS.get(number, NodeTier.premium)
    if isinstance(value, str):
        try:
            return NodeTier(value.strip().casefold())
        except ValueError:
            pass
    names = ", ".join(t.value for t in NodeTier)
    raise ValueError(f"The tier must be one of {names} (not {value!r})")


def overflow_distance(asked: NodeTier | None, node: NodeTier) -> int:
    """How far down the overflow order a node of tier *node* is for work asking for *asked*
    (0: the tier asked for). Work that asks for none is standard work."""
    start = TIER_CHAIN.index(asked or NodeTier.standard)
    here = TIER_CHAIN.index(node)
    if here >= start:
        return here - start
    # Below the asked tier: after every tier above it, the nearest first.
    return len(TIER_CHAIN) - start + (start - here - 1)
