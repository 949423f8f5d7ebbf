"""What a queue item's failed attempt is said to be: the user's sentence, the log's detail, and
whether another try may succeed."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stablenew.backends.errors import BackendError
    from stablenew.pipeline.run_result import RunResult


def attempt_failure(typed: BackendError | None, error: BaseException | None,
                    result: RunResult | None) -> tuple[str, str, bool]:
    """(message, detail, transient) of a failed attempt: the backend's typed error first, then
    any other error (a bug: its traceback is the detail), then the run's own first error."""
    if typed is not None:
        return typed.message, typed.detail, typed.transient
    if error is not None:
        message = getattr(error, "message", None) or (str(error) or type(error).__name__)
        detail = getattr(error, "detail", "") or "".join(traceback.format_exception(error)).strip()
        return message, detail, False
    if result is not None and result.errors:
        return result.errors[0].message, result.errors[0].detail, False
    status = result.status if result is not None else "unknown"
    return f"The run ended as {status}.", "", False
