"""What the randomizer panel offers in words — its modes, seed policies and axis kinds — and
the time a run of many images takes at the measured pace."""

from __future__ import annotations

from stablenew.controller.format import duration
from stablenew.randomizer.spec import (
    AXIS_TITLES,
    MODE_HINTS,
    SEED_HINTS,
    AxisKind,
    SeedPolicy,
    VariationMode,
)


def modes() -> list[tuple[str, str, str]]:
    """(value, title, plain-language hint) for each mode."""
    titles = {VariationMode.fanout: "Every combination", VariationMode.rotate: "Rotate",
              VariationMode.sequential: "One axis at a time", VariationMode.random: "Random"}
    return [(m.value, titles[m], MODE_HINTS[m]) for m in VariationMode]


def seed_policies() -> list[tuple[str, str, str]]:
    """(value, title, plain-language hint) for each seed policy."""
    titles = {SeedPolicy.fixed: "Same seeds for every variant",
              SeedPolicy.increment: "Next seed for each image",
              SeedPolicy.random: "Random seed for each image"}
    return [(p.value, titles[p], SEED_HINTS[p]) for p in SeedPolicy]


def axis_kinds() -> list[tuple[str, str]]:
    """(value, title) for each kind of axis."""
    return [(k.value, AXIS_TITLES[k]) for k in AxisKind]


class RunPace:
    """The measured speed of the node that will run a plan, for the large-run question."""

    def __init__(self) -> None:
        self._seconds_per_image: float | None = None

    @property
    def seconds_per_image(self) -> float | None:
        return self._seconds_per_image

    def set_seconds_per_image(self, seconds: float | None) -> None:
        """Measured speed of the node that will run the plan (for the time estimate)."""
        self._seconds_per_image = seconds if seconds and seconds > 0 else None

    def estimate_text(self, images: int) -> str:
        """'about 2 h 5 min at 6.0 s per image' (or why there is no estimate)."""
        if self._seconds_per_image is None:
            return "no time estimate yet (the node's speed is measured during the first run)"
        seconds = images * self._seconds_per_image
        if seconds > 3600 * 24 * 365 * 100:
            return "far longer than a lifetime"
        return (f"about {duration(seconds, tenths=True)} at "
                f"{self._seconds_per_image:.1f} s per image")
