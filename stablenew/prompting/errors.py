"""Typed errors of the local-LLM room: a sentence for users and a detail for logs."""

from __future__ import annotations

from stablenew.errors import StableNewError


class LLMError(StableNewError):
    """Anything that kept the LLM from giving a usable answer; the prompt stays as it was."""


class LLMUnreachable(LLMError):
    """Nothing answers at the address, or the connection broke."""


class LLMTimeout(LLMError):
    """The LLM took longer than allowed (to start answering or to finish)."""


class LLMRejected(LLMError):
    """The server refused the request (HTTP 4xx/5xx) for a reason other than a missing model."""

    def __init__(self, message: str, *, status: int = 0, detail: str = "") -> None:
        super().__init__(message, detail=detail)
        self.status = status


class LLMModelMissing(LLMRejected):
    """The model asked for is not on the server (Ollama: 404 "model 'x' not found")."""

    def __init__(self, message: str, *, model: str, installed: tuple[str, ...] = (),
                 detail: str = "") -> None:
        super().__init__(message, status=404, detail=detail)
        self.model = model
        self.installed = installed


class LLMAuthFailed(LLMRejected):
    """The server wants an API key, or refused the one given (401/403)."""


class LLMAnswerTooLarge(LLMError):
    """The answer grew past the size cap; it was refused as it arrived."""


class LLMProtocolError(LLMError):
    """The answer was not what the API promises (bad JSON, a stream cut off midway)."""


class LLMBadOutput(LLMError):
    """The model answered, but not with what was asked (empty, not JSON, wrong fields)."""


class LLMCancelled(LLMError):
    """The user stopped the run while the LLM was answering."""
