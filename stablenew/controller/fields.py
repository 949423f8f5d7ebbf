"""Field descriptions read from pydantic models, so widgets never repeat titles, limits or defaults."""

from __future__ import annotations

import enum
import typing
from typing import TypeGuard

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from stablenew.controller.field_spec import FieldSpec, FieldValue

__all__ = ["TEXT_FIELDS", "FieldSpec", "field_specs"]

TEXT_FIELDS = {"prompt", "negative_prompt", "prompt_override", "negative_override"}


def _number(bound: object) -> float | None:
    """A numeric limit (annotated_types allows any comparable; a widget can only use numbers)."""
    return bound if isinstance(bound, int | float) else None


def _bounds(info: FieldInfo) -> tuple[float | None, float | None, bool, float | None]:
    low: float | None = None
    high: float | None = None
    multiple: float | None = None
    exclusive = False
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            low = _number(meta.ge)
        elif isinstance(meta, annotated_types.Gt):
            low, exclusive = _number(meta.gt), True
        elif isinstance(meta, annotated_types.Le):
            high = _number(meta.le)
        elif isinstance(meta, annotated_types.Lt):
            high = _number(meta.lt)
        elif getattr(meta, "multiple_of", None):  # annotated_types.MultipleOf or pydantic's own
            multiple = _number(meta.multiple_of)
    return low, high, exclusive, multiple


def _labels(annotation: object) -> tuple[str, ...]:
    """An enum's member labels, when every member has a `label` (the words users see)."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        found = [getattr(m, "label", None) for m in annotation]
        labels = tuple(label for label in found if isinstance(label, str))
        if len(labels) == len(found):
            return labels
    return ()


def _kind(name: str, annotation: object) -> tuple[str, tuple[str, ...]]:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "choice", tuple(str(m.value) for m in annotation)
    if annotation is bool:
        return "bool", ()
    if annotation is int:
        return "int", ()
    if annotation is float:
        return "float", ()
    if name == "password" or annotation is SecretStr:
        return "secret", ()
    if name in TEXT_FIELDS:
        return "text", ()
    return "str", ()


def _places(info: FieldInfo) -> int | None:
    """Decimal places a model asks its float field to show (seconds need none, say)."""
    extra = info.json_schema_extra
    places = extra.get("decimals") if isinstance(extra, dict) else None
    return places if isinstance(places, int) else None


def _is_model(annotation: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def field_specs(model: type[BaseModel], prefix: str = "", *, exclude: tuple[str, ...] = (),
                recurse: bool = False) -> list[FieldSpec]:
    """Scalar fields of *model* in declaration order (nested models only with *recurse*)."""
    specs: list[FieldSpec] = []
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        path = f"{prefix}{name}"
        annotation = info.annotation
        if _is_model(annotation):
            if recurse:
                specs.extend(field_specs(annotation, f"{path}.", recurse=True))
            continue
        if typing.get_origin(annotation) in (list, tuple, dict):
            continue
        kind, choices = _kind(name, annotation)
        low, high, exclusive, multiple = _bounds(info)
        default: FieldValue = info.get_default(call_default_factory=True)
        if isinstance(default, enum.Enum):
            default = default.value
        elif isinstance(default, SecretStr):  # an editor shows text ("" for the empty secret)
            default = default.get_secret_value()
        specs.append(FieldSpec(
            path=path, name=name, title=info.title or name.replace("_", " ").capitalize(),
            description=info.description or "", kind=kind, default=default, minimum=low,
            maximum=high, exclusive_minimum=exclusive, multiple_of=multiple, choices=choices,
            choice_labels=_labels(annotation), places=_places(info),
        ))
    return specs
