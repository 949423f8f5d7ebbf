"""Typed backend errors: one user sentence (what happened, what to do) plus a detail for logs."""

from __future__ import annotations

from stablenew.errors import StableNewError


class BackendError(StableNewError):
    """Base of every error a backend raises; `message` is for users, `detail` for logs."""

    #: Worth trying again later on the same or another node (the queue retries these).
    transient: bool = False
    #: The node itself is unusable right now: a run on it stops instead of trying the next image.
    fatal_for_node: bool = False

    def __init__(self, message: str, *, detail: str = "", node: str = "") -> None:
        # Server text ends up in these (error bodies, model names): a terminal or log must
        # never receive its control characters (colour, cursor and title escapes).
        super().__init__(_printable(message), detail=_printable(detail))
        self.node = node


def _printable(text: str) -> str:
    """*text* with control characters other than newline and tab shown as escapes."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in "\n\t" else ascii(ch)[1:-1] for ch in text)


class ServerUnreachable(BackendError):
    """Nothing answers at the address (refused, DNS, connection dropped)."""

    transient = True
    fatal_for_node = True


class AuthFailed(BackendError):
    """The server wants a user name and password, or refused the ones given (401/403)."""

    fatal_for_node = True


class ServerTimeout(BackendError):
    """The server took longer than the configured timeout."""

    transient = True


class RequestRejected(BackendError):
    """The server refused the request as invalid (422/400); retrying the same request won't help."""

    def __init__(self, message: str, *, fields: tuple[str, ...] = (), detail: str = "",
                 node: str = "") -> None:
        super().__init__(message, detail=detail, node=node)
        self.fields = fields


class MissingResource(RequestRejected):
    """A model, sampler or node class the request needs is not installed on the node."""

    def __init__(self, message: str, *, what: str, name: str, installed: tuple[str, ...] = (),
                 detail: str = "", node: str = "") -> None:
        super().__init__(message, fields=(what,), detail=detail, node=node)
        self.what = what
        self.name = name
        self.installed = installed


class ServerError(BackendError):
    """The server failed while working on the request (HTTP 500, out of memory, crash)."""

    transient = True


class ProtocolError(BackendError):
    """The answer was not what the API promises (bad JSON, bad base64, undecodable image,
    truncated or oversized body)."""

    transient = True


class AnswerTooLarge(ProtocolError):
    """An answer above the size cap; asking again would only bring the same answer."""

    transient = False


class Redirected(BackendError):
    """The server answered with a redirect, which StableNew never follows (credentials)."""

    fatal_for_node = True

    def __init__(self, message: str, *, location: str, detail: str = "", node: str = "") -> None:
        super().__init__(message, detail=detail, node=node)
        self.location = location


class JobInterrupted(BackendError):
    """The job was stopped (by us or by someone else on the node) before it finished."""
