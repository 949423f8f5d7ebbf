"""When a cluster run that ends with the queue may stop: done, stuck (and why), or waiting for a
node to answer — which is said at once, when it changes, and now and then while it lasts."""

from __future__ import annotations

import time
from collections.abc import Sequence

from stablenew.cluster.health import NodeMonitor, NodeState
from stablenew.cluster.queue_store import QueueStore


class RunEnd:
    """Judges whether a run over nodes *names* can still move (see the module docstring)."""

    def __init__(self, store: QueueStore, monitor: NodeMonitor, *, give_up_after: float,
                 notice_s: float = 30.0) -> None:
        self.store = store
        self.monitor = monitor
        #: Stop when no node has been usable for this long (the items wait for the next run).
        self.give_up_after = give_up_after
        #: While no node is usable, what the run waits for is said at once and this often.
        self.notice_s = notice_s
        self._last_usable = time.monotonic()
        self._waiting: str | None = None  # set by check, said by notice
        self._said: tuple[str, float] | None = None

    def start(self) -> None:
        """A run starts: the wait for a usable node counts from now."""
        self._last_usable = time.monotonic()

    def check(self, names: Sequence[str]) -> str | None:
        """None while there is work that can still move; '' when done; a reason when stuck.
        Called when no node has work in flight."""
        if not self.store.reads.has_pending():
            return ""
        if self.store.reads.is_paused():
            return "The queue is paused."
        states = [self.monitor.health(n).state for n in names]
        if not states or all(s in (NodeState.auth_failed, NodeState.disabled) for s in states):
            reasons = [self.monitor.health(n).message for n in names] or [
                "No nodes are set up. Add one with `stablenew nodes add`."]
            return " ".join(r for r in reasons if r) or "No node is enabled."
        now = time.monotonic()
        self._waiting = None
        if any(s is NodeState.healthy for s in states):
            self._last_usable = now
        elif now - self._last_usable <= self.give_up_after:
            if NodeState.unknown in states:
                return None  # still probing: nothing to say yet
            down = "; ".join(f"{n} ({h.state.value}: {h.message})" if h.message else
                             f"{n} ({h.state.value})"
                             for n in names if (h := self.monitor.health(n)))
            self._waiting = f"Waiting for a node to answer: {down}."
        elif now - self._last_usable > self.give_up_after:
            reasons = [m for n in names if (m := self.monitor.health(n).message)]
            return (f"No node has answered for {self.give_up_after:g} s; the rest of the queue "
                    "waits for the next run. " + " ".join(reasons))
        return None

    def notice(self, until_empty: bool) -> str | None:
        """What to say now about the wait for a node (None: nothing): at once, when it
        changes, and every `notice_s` while it lasts (a silent run looks hung)."""
        text = self._waiting
        if text is None:
            self._said = None
            return None
        now = time.monotonic()
        said = self._said
        if said is not None and said[0] == text and now - said[1] < self.notice_s:
            return None
        self._said = (text, now)
        if until_empty:
            left = max(0.0, self.give_up_after - (now - self._last_usable))
            text += (f" The queue is kept; this run gives up in {left:.0f} s if none comes back "
                     "(Ctrl+C stops now).")
        return text
