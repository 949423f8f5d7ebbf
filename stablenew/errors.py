"""The one base of StableNew's typed errors: a sentence for users and a detail for logs.

Every room's errors derive from it (backends, pipeline library, randomizer, learning, queue),
so the controllers show any of them the same way without knowing each room's types.
"""

from __future__ import annotations


class StableNewError(Exception):
    """Something StableNew cannot do; `message` says what happened and what to do, in plain
    words, and `detail` keeps the precise cause for logs and the "details" expander."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message
