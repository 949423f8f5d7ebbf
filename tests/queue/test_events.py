"""The queue's and the runner's events are one typed set: each class names its own kind."""

from __future__ import annotations

import typing

from stablenew.backends.protocol import Backend
from stablenew.cluster import queue_events
from stablenew.cluster.item_backend import ItemBackend
from stablenew.pipeline import events


def test_every_event_names_its_own_kind():
    classes = [*typing.get_args(events.RunEvent), *typing.get_args(queue_events.QueueEvent)]
    kinds = [cls.kind for cls in classes]
    assert sorted(kinds) == sorted(events.EventKind), "one class per kind, none without one"
    # A kind is a class attribute, not a field: events compare and print as before.
    assert "kind" not in {f.name for f in __import__("dataclasses").fields(events.RunWarning)}
    assert events.RunWarning("x").kind is events.EventKind.warning


def test_an_item_backend_is_a_backend():
    from stablenew.backends.a1111 import A1111Backend

    node = A1111Backend("http://127.0.0.1:9", name="desk")  # nothing is sent
    item = ItemBackend(node)
    assert isinstance(item, Backend)
    assert (item.name, item.url, item.kind) == ("desk", node.url, node.kind)
