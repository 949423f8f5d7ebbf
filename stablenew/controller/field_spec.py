"""FieldSpec: one editable value as a widget needs it; plain data, so the window can be built
before pydantic loads (controller/cards.py holds the stage cards' specs ready-made)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

#: A field's value as cards and dialogs hold it: a JSON scalar, or (a References section) its
#: list of units, each a JSON object as the model dumps it.
FieldValue: TypeAlias = str | int | float | bool | None | list[dict[str, object]]
#: A value of a model dumped as JSON (`model_dump(mode="json")`).
JsonValue: TypeAlias = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


@dataclass(frozen=True)
class FieldSpec:
    """One editable value: where it lives (dotted path), how it is titled and what it accepts."""

    path: str  # dotted path in the model, e.g. "txt2img.hires.denoise"
    name: str
    title: str
    description: str
    kind: str  # "bool" | "int" | "float" | "str" | "text" | "choice" | "secret"
    default: FieldValue
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    multiple_of: float | None = None
    choices: tuple[str, ...] = ()
    choice_labels: tuple[str, ...] = ()  # what a picker shows for each choice (else the choice)
    #: decimal places shown for a float (the model's `json_schema_extra={"decimals": n}`); None: 2
    places: int | None = None

    @property
    def step(self) -> float:
        if self.multiple_of:
            return float(self.multiple_of)
        if self.kind == "int" or self.places == 0:
            return 1
        span = (self.maximum or 1) - (self.minimum or 0)
        return 0.05 if span <= 2 else 0.5

    @property
    def decimals(self) -> int:
        if self.kind != "float":
            return 0
        return 2 if self.places is None else self.places
