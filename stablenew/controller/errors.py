"""Errors as values: one user sentence plus a detail for logs, whatever raised them."""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field

from stablenew.errors import StableNewError

log = logging.getLogger("stablenew.controller")


@dataclass(frozen=True)
class ErrorInfo:
    """A failure shown to the user: `message` says what happened and what to do; `detail` is for logs."""

    message: str
    detail: str = ""
    source: str = ""  # which part of the app hit it ("Server", "Run", "Gallery", ...)
    at: float = field(default_factory=time.time)

    def full_text(self) -> str:
        parts = [self.message]
        if self.detail and self.detail != self.message:
            parts.append(self.detail)
        return "\n\n".join(parts)


def error_from_exception(exc: BaseException, source: str = "") -> ErrorInfo:
    """Turn any exception into an ErrorInfo: every room's typed errors share StableNewError."""
    message: str | None = None
    detail = ""
    if isinstance(exc, StableNewError):
        message, detail = exc.message, exc.detail
    if not message:
        describe = getattr(exc, "describe", None)
        if callable(describe):
            message = str(describe())
        elif isinstance(exc, OSError):
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            message = f"A file could not be read or written{where}: {exc.strerror or exc}."
        else:
            text = str(exc).strip()
            message = text if text else f"Something went wrong ({type(exc).__name__})."
    if not detail:
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).strip()
    # Every error a user is shown passes here: the log keeps it with its detail.
    log.info("%s: %s\n%s", source or "error", message, detail)
    return ErrorInfo(message=message, detail=detail, source=source)
