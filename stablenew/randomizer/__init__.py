"""Randomizer: prompt variants, wildcards and config matrices expanded into a lazy Plan.

`plan(base_config, spec)` is the one expansion path: its exact `count`, its preview and the
items a run consumes all come from the same Plan. Templates use the sd-dynamic-prompts syntax
(parsed by the `dynamicprompts` library), so existing wildcard folders work unchanged.
"""

from stablenew.randomizer.counting import PromptSpace, compile_template, count_prompts
from stablenew.randomizer.errors import RandomizerError, SpecError, TemplateError
from stablenew.randomizer.plan import Plan, PlanItem, plan
from stablenew.randomizer.spec import (
    MODE_HINTS,
    SEED_HINTS,
    Axis,
    AxisKind,
    SeedPolicy,
    VariationMode,
    VariationSpec,
)

__all__ = [
    "MODE_HINTS",
    "SEED_HINTS",
    "Axis",
    "AxisKind",
    "Plan",
    "PlanItem",
    "PromptSpace",
    "RandomizerError",
    "SeedPolicy",
    "SpecError",
    "TemplateError",
    "VariationMode",
    "VariationSpec",
    "compile_template",
    "count_prompts",
    "plan",
]
