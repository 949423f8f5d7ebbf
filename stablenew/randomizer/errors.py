"""Typed randomizer errors: a user sentence saying where and what to do, plus a detail for logs.

Template errors carry the position (0-based offset, 1-based line and column) and, when a
wildcard is involved, its name; they are raised while planning, so a bad template never
starts a run.
"""

from __future__ import annotations

from stablenew.errors import StableNewError


class RandomizerError(StableNewError):
    """Base of every randomizer error; `message` is for users, `detail` for logs."""


class TemplateError(RandomizerError):
    """A prompt template that cannot be expanded, with where the problem is."""

    def __init__(
        self,
        message: str,
        *,
        template: str = "",
        offset: int | None = None,
        wildcard: str | None = None,
        detail: str = "",
    ) -> None:
        self.template = template
        self.offset = offset
        self.wildcard = wildcard
        self.line, self.column = _line_col(template, offset)
        super().__init__(message, detail=detail)

    @property
    def position(self) -> str:
        """'line 1, column 7' (or '' when the position is unknown)."""
        if self.offset is None:
            return ""
        return f"line {self.line}, column {self.column}"


class UnbalancedBraces(TemplateError):
    """A '{' without its '}' or a '}' without its '{'."""


class EmptyVariant(TemplateError):
    """A variant `{}` or `{|}` with nothing to choose from."""


class BadWeight(TemplateError):
    """A variant weight `{x::a|b}` that is not a non-negative number."""


class MissingWildcard(TemplateError):
    """A `__name__` with no matching file in the wildcards folder."""


class TemplateSyntaxError(TemplateError):
    """Any other template the prompt syntax cannot read."""


class UndefinedVariable(TemplateError):
    """`${name}` used without being set and without a default."""


class RecursiveTemplate(TemplateError):
    """A wildcard or variable that refers back to itself."""


class SpecError(RandomizerError):
    """A variation spec that cannot be planned (bad axis value, missing count, ...)."""

    def __init__(self, message: str, *, field: str = "", detail: str = "") -> None:
        self.field = field
        super().__init__(message, detail=detail)


def _line_col(text: str, offset: int | None) -> tuple[int, int]:
    if offset is None:
        return 0, 0
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


__all__ = [
    "BadWeight",
    "EmptyVariant",
    "MissingWildcard",
    "RandomizerError",
    "RecursiveTemplate",
    "SpecError",
    "TemplateError",
    "TemplateSyntaxError",
    "UnbalancedBraces",
    "UndefinedVariable",
]
