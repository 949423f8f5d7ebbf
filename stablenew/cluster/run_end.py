"""When a cluster run that ends with the queue may stop: done, stuck (and why), or waiting for a
node to answer — which is said at once, when it changes, and now and then while it lasts. A run
that waits with the queue (the window's) is told the same wait, and when it is over."""

from __future__ import annotations

import time
from collections.abc import Sequence

from stablenew.cluster.health import NodeMonitor, NodeState
from stablenew.cluster.queue_store import QueueStore

#: A node's state in words, when its health check left no message.
_STATE_WORDS = {NodeState.unhealthy: "not answering", NodeState.unknown: "not checked yet",
                NodeState.auth_failed: "user name or password refused", NodeState.disabled: "switched off"}


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
            self._waiting = self._down(names)
        elif now - self._last_usable > self.give_up_after:
            reasons = [m for n in names if (m := self.monitor.health(n).message)]
            return (f"No node has answered for {self.give_up_after:g} s; the rest of the queue "
                    "waits for the next run. " + " ".join(reasons))
        return None

    def moving(self, names: Sequence[str]) -> bool:
        """True when a node can take work or is still being probed (read in memory only)."""
        states = [self.monitor.health(n).state for n in names]
        return not states or any(s in (NodeState.healthy, NodeState.unknown) for s in states)

    def note_wait(self, names: Sequence[str]) -> None:
        """For a run that waits with the queue rather than ending (the window's): notes what
        queued work waits for, for `notice` to say; nothing while a node can take it."""
        self._waiting = None
        if self.moving(names) or not self.store.reads.has_pending() or self.store.reads.is_paused():
            return
        self._waiting = self._down(names)

    def clear(self) -> None:
        self._waiting = None

    def _down(self, names: Sequence[str]) -> str:
        """Each node and why it cannot take work, in the health check's words or the state's."""
        said = [f"{n}: {(h.message.strip() or _STATE_WORDS.get(h.state, h.state.value)).rstrip('.')}."
                for n in names if (h := self.monitor.health(n))]
        return "Waiting for a node to answer. " + " ".join(said)

    def notice(self, until_empty: bool) -> str | None:
        """What to say now about the wait for a node (None: nothing): at once, when it
        changes, and every `notice_s` while it lasts (a silent run looks hung). A run that
        waits with the queue is also told "" once the wait is over."""
        text = self._waiting
        if text is None:
            over = self._said is not None and not until_empty
            self._said = None
            return "" if over else None
        now = time.monotonic()
        said = self._said
        if said is not None and said[0] == text and now - said[1] < self.notice_s:
            return None
        self._said = (text, now)
        if until_empty:
            left = max(0.0, self.give_up_after - (now - self._last_usable))
            text += (f" The queue is kept; this run gives up in {left:.0f} s if none comes back "
                     "(Ctrl+C stops now).")
        else:
            text += " The queued images run as soon as one does."
        return text
