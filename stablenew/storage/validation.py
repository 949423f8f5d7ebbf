"""Plain-language messages for pydantic validation errors.

The model's fields are the single truth for titles and limits; this turns pydantic's
technical wording ("Input should be less than or equal to 150") into what a user can act
on ("Steps must be between 1 and 150").
"""

from __future__ import annotations

import types
import typing
from typing import NamedTuple

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo


class Problem(NamedTuple):
    """One thing wrong with a document: where (dotted field path) and what to do."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def field_label(info: FieldInfo | None, name: str) -> str:
    if info is not None and info.title:
        return info.title
    return name.replace("_", " ").strip().capitalize() or "Value"


def _bounds(info: FieldInfo | None) -> tuple[object | None, object | None]:
    low = high = None
    if info is None:
        return low, high
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge | annotated_types.Gt):
            low = getattr(meta, "ge", None) if isinstance(meta, annotated_types.Ge) else meta.gt
        if isinstance(meta, annotated_types.Le | annotated_types.Lt):
            high = getattr(meta, "le", None) if isinstance(meta, annotated_types.Le) else meta.lt
    return low, high


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation such as `Model`, `list[Model]`, `Model | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, dict, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _field_for(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[FieldInfo | None, str]:
    current: type[BaseModel] | None = model
    info: FieldInfo | None = None
    name = ""
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        info = current.model_fields.get(part)
        name = str(part)
        current = _model_in(info.annotation) if info is not None else None
    return info, name


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def plain_problems(error: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """Turn a pydantic ValidationError into plain-language Problems naming each field."""
    problems: list[Problem] = []
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item.get("loc", ()) if p != "__root__")
        path = ".".join(str(p) for p in loc)
        info, name = _field_for(model, loc)
        label = field_label(info, name)
        kind = item.get("type", "")
        ctx = item.get("ctx") or {}
        low, high = _bounds(info)
        if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
            if low is not None and high is not None:
                msg = f"{label} must be between {_number(low)} and {_number(high)}."
            elif "ge" in ctx:
                msg = f"{label} must be at least {_number(ctx['ge'])}."
            elif "gt" in ctx:
                msg = f"{label} must be more than {_number(ctx['gt'])}."
            elif "le" in ctx:
                msg = f"{label} must be at most {_number(ctx['le'])}."
            else:
                msg = f"{label} must be less than {_number(ctx.get('lt'))}."
        elif kind == "missing":
            msg = f"{label} is required."
        elif kind == "extra_forbidden":
            msg = f"'{name or path}' is not a setting StableNew knows. Check the spelling or remove it."
        elif kind.startswith("int_") or kind == "int_type":
            msg = f"{label} must be a whole number."
        elif kind.startswith("float_") or kind.startswith("decimal"):
            msg = f"{label} must be a number."
        elif kind.startswith("bool_"):
            msg = f"{label} must be true or false."
        elif kind.startswith("string_") or kind == "str_type":
            msg = f"{label} must be text." if kind == "string_type" else _strip(item["msg"], label)
        elif kind in {"literal_error", "enum"}:
            expected = ctx.get("expected", "")
            msg = f"{label} must be one of {expected}."
        elif kind in {"model_type", "model_attributes_type", "dict_type"}:
            msg = f"{label} must be a section with named settings (a mapping)."
        elif kind == "list_type":
            msg = f"{label} must be a list."
        elif kind == "too_short":
            msg = f"{label} needs at least {ctx.get('min_length', 1)} item(s)."
        elif kind == "too_long":
            msg = f"{label} allows at most {ctx.get('max_length')} item(s)."
        else:
            msg = _strip(item["msg"], label)
        problems.append(Problem(field=path, message=msg))
    return problems


def _strip(text: str, label: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    if text.startswith("Input should"):
        text = f"{label} should{text[len('Input should'):]}"
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."
