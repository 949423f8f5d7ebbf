"""Clients of the SD servers StableNew drives, behind one `Backend` protocol."""

from stablenew.backends.errors import (
    AuthFailed,
    BackendError,
    JobInterrupted,
    MissingResource,
    ProtocolError,
    RequestRejected,
    ServerError,
    ServerTimeout,
    ServerUnreachable,
)
from stablenew.backends.protocol import Backend
from stablenew.backends.types import BackendKind, Capabilities

__all__ = [
    "AuthFailed",
    "Backend",
    "BackendError",
    "BackendKind",
    "Capabilities",
    "JobInterrupted",
    "MissingResource",
    "ProtocolError",
    "RequestRejected",
    "ServerError",
    "ServerTimeout",
    "ServerUnreachable",
]
