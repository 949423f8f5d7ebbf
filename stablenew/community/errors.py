"""Typed errors of the community room: a sentence for users and a detail for logs."""

from __future__ import annotations

from stablenew.errors import StableNewError


class CivitaiError(StableNewError):
    """CivitAI (or the mirror in Settings) could not give a usable answer."""


class CivitaiUnreachable(CivitaiError):
    """Nothing answered at the address, the connection broke or the answer took too long."""


class CivitaiBusy(CivitaiError):
    """The site said to come back later (429/503) for longer than we are willing to wait."""

    def __init__(self, message: str, *, retry_after: float | None = None, detail: str = "") -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


class CivitaiRejected(CivitaiError):
    """The site refused the request (a 4xx/5xx other than busy), e.g. a wrong API key."""

    def __init__(self, message: str, *, status: int = 0, detail: str = "") -> None:
        super().__init__(message, detail=detail)
        self.status = status


class CivitaiNotFound(CivitaiRejected):
    """No model version has that hash or id."""


class DownloadFailed(CivitaiError):
    """A LoRA download did not finish or its bytes were not the file CivitAI describes;
    nothing was left in the LoRA folder."""
