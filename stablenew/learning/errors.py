"""Typed errors of the learning room: a plain sentence for users and a detail for logs."""

from __future__ import annotations

from stablenew.errors import StableNewError


class LearningError(StableNewError):
    """Something the learning system cannot do; `message` is for users, `detail` for logs."""


class LearningStoreError(LearningError):
    """The learning database cannot be opened, upgraded or written."""


class RecordNotFound(LearningError):
    """A rating or tag named an image the learning store does not know."""


class PlanInvalid(LearningError):
    """A learning plan that cannot run (unknown parameter, bad values, too many images)."""


class NodeUnusable(LearningError):
    """The server stopped answering during a learning run; the run stops instead of waiting
    on it for every remaining image."""

    fatal_for_node = True
