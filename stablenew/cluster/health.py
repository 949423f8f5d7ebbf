"""NodeMonitor: connects to every node, probes what it can do, and keeps checking it answers.

A node is probed (every model, sampler, upscaler... it has) when it is added, whenever it comes
back, and, with `refresh_after`, once its capabilities are that old; between times a cheap
ping every `interval` seconds (10 s by default) tells whether it still answers. A node that
fails or times out is marked unhealthy (the dispatcher then gives its in-flight items back to
the queue) and is re-admitted as soon as it answers again. Wrong credentials are not a
passing fault: the node goes to `auth_failed` with a clear message and is not tried again
until the user changes its settings or asks for a new probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from stablenew.backends.errors import AuthFailed, BackendError, ServerTimeout
from stablenew.backends.protocol import RescansFolders
from stablenew.cluster.nodes import NodeConfig, NodeKind

if TYPE_CHECKING:
    from stablenew.backends.protocol import Backend
    from stablenew.backends.types import Capabilities

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_PROBE_TIMEOUT = 30.0
#: How long Probe waits for a server to read its model folders again (after its running image).
RESCAN_TIMEOUT_S = 300.0


class NodeState(StrEnum):
    unknown = "unknown"  # not checked yet
    healthy = "healthy"
    unhealthy = "unhealthy"  # did not answer (or answered wrongly); checked again every interval
    auth_failed = "auth_failed"  # wrong credentials: waits for the user, never retried by itself
    disabled = "disabled"  # switched off in the nodes file


#: States in which the node may be given work.
USABLE = frozenset({NodeState.healthy})


@dataclass(frozen=True)
class NodeHealth:
    """What the monitor knows of one node: state, the user sentence and log detail of the
    last problem, and the capabilities of the last successful probe."""

    name: str
    state: NodeState = NodeState.unknown
    message: str = ""
    detail: str = ""
    capabilities: Capabilities | None = None
    checked_at: float | None = None
    #: When the capabilities were read (time.time()); None until the first probe.
    probed_at: float | None = None
    #: Consecutive failed checks (0 while healthy).
    failures: int = 0

    @property
    def usable(self) -> bool:
        return self.state in USABLE


Connector = Callable[[NodeConfig, float], Awaitable["Backend"]]
ChangeCallback = Callable[[NodeHealth, NodeHealth], None]


async def connect_node(node: NodeConfig, timeout: float) -> Backend:
    """A backend for *node* (its kind detected when the file says `auto`)."""
    from stablenew.backends.connect import connect

    kind = None if node.kind is NodeKind.auto else node.kind.value
    return await connect(node.url, kind=kind, auth=node.auth, name=node.name,
                         timeout=max(timeout, 600.0))


class NodeMonitor:
    """Probes and health-checks a set of nodes; reports every change of state."""

    def __init__(self, nodes: Sequence[NodeConfig] = (), *, interval: float = DEFAULT_INTERVAL,
                 timeout: float = DEFAULT_TIMEOUT, probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
                 refresh_after: float | None = None, connector: Connector | None = None,
                 on_change: ChangeCallback | None = None) -> None:
        self.interval = interval
        self.timeout = timeout
        self.probe_timeout = probe_timeout
        #: Seconds after which a check reads the capabilities again (None: only when asked or
        #: when the node comes back). Off for a running queue: a probe of a node busy rendering
        #: may be slow, and one that times out would take the node's work away.
        self.refresh_after = refresh_after
        self._connector = connector or connect_node
        self._on_change: list[ChangeCallback] = [on_change] if on_change else []
        self._configs: dict[str, NodeConfig] = {}
        self._health: dict[str, NodeHealth] = {}
        self._backends: dict[str, Backend] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        for node in nodes:
            self._configs[node.name] = node
            state = NodeState.unknown if node.enabled else NodeState.disabled
            self._health[node.name] = NodeHealth(node.name, state)

    # --- reading ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self._configs)

    def config(self, name: str) -> NodeConfig:
        return self._configs[name]

    def health(self, name: str) -> NodeHealth:
        return self._health[name]

    def all_health(self) -> list[NodeHealth]:
        return [self._health[n] for n in self._configs]

    def backend(self, name: str) -> Backend | None:
        """The connected backend of a node (None until it answered once)."""
        return self._backends.get(name)

    def subscribe(self, callback: ChangeCallback) -> None:
        self._on_change.append(callback)

    def unsubscribe(self, callback: ChangeCallback) -> None:
        """Stop telling *callback* of changes (a dispatcher that borrowed this monitor is done)."""
        with contextlib.suppress(ValueError):
            self._on_change.remove(callback)

    # --- changing the set ---------------------------------------------------------------------

    async def add(self, node: NodeConfig) -> NodeHealth:
        """Add (or replace) a node and probe it at once."""
        if node.name in self._configs:
            await self.remove(node.name)
        self._configs[node.name] = node
        self._health[node.name] = NodeHealth(
            node.name, NodeState.unknown if node.enabled else NodeState.disabled)
        if not node.enabled:
            return self._health[node.name]
        return await self.check(node.name, probe=True)

    async def remove(self, name: str) -> None:
        self._configs.pop(name, None)
        old = self._health.pop(name, None)
        backend = self._backends.pop(name, None)
        if backend is not None:
            with contextlib.suppress(Exception):
                await backend.aclose()
        if old is not None and old.state is not NodeState.disabled:
            self._emit(old, replace(old, state=NodeState.disabled, message="Removed."))

    async def recheck(self, name: str, *, rescan: bool = False) -> NodeHealth:
        """Probe again now, whatever the state (the user fixed a password, pressed Probe). With
        *rescan*, an A1111-family server that answers reads its model folders first, so files
        copied there since it started are listed: it does so after the image it is making,
        which is why that wait is not timed as a check (a busy node is not a hung one)."""
        backend = self._backends.pop(name, None)
        if backend is not None:
            if rescan and isinstance(backend, RescansFolders):
                try:
                    async with asyncio.timeout(RESCAN_TIMEOUT_S):
                        await backend.refresh_lists()
                except (BackendError, TimeoutError) as exc:
                    log.info("nodes: %s did not read its folders again (%r); its lists are read "
                             "as they are", name, exc)
            with contextlib.suppress(Exception):
                await backend.aclose()
        return await self.check(name, probe=True)

    # --- checking -----------------------------------------------------------------------------

    async def check(self, name: str, *, probe: bool = False) -> NodeHealth:
        """Ping the node (a full probe when asked, when it was not probed yet or comes back,
        or when its capabilities are older than `refresh_after`), update its state, and
        return it."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            node = self._configs.get(name)
            if node is None:
                raise KeyError(name)
            old = self._health[name]
            if not node.enabled:
                new = replace(old, state=NodeState.disabled, message="Switched off.", detail="")
                self._set(old, new)
                return new
            # A probe lists every model and may take a while on a big install; a ping must
            # answer quickly or the node counts as hung.
            probing = (probe or name not in self._backends
                       or old.state is not NodeState.healthy or old.capabilities is None
                       or self._stale(old))
            limit = max(self.probe_timeout, self.timeout) if probing else self.timeout
            try:
                new = await _within(limit, self._check(node, old, probing), f"check-{name}")
            except TimeoutError:
                new = self._failed(old, ServerTimeout(
                    f"{name} did not answer within {limit:g} s. It will be tried again.",
                    detail=f"{'probe' if probing else 'health check'} of {node.url} timed out "
                           f"after {limit} s", node=name))
            except AuthFailed as exc:
                new = replace(old, state=NodeState.auth_failed, checked_at=time.time(),
                              message=f"{name}: {exc.message} It will not be tried again until "
                                      "its settings change or you press Probe.",
                              detail=exc.detail, failures=old.failures + 1)
            except BackendError as exc:
                new = self._failed(old, exc)
            except Exception as exc:  # a bug in a client must not kill the monitor
                log.exception("nodes: checking %s crashed", name)
                new = self._failed(old, BackendError(
                    f"Checking {name} failed unexpectedly.", detail=repr(exc), node=name))
            if name in self._configs:  # not removed meanwhile
                self._set(old, new)
            return new

    async def _check(self, node: NodeConfig, old: NodeHealth, probe: bool) -> NodeHealth:
        backend = self._backends.get(node.name)
        if backend is None:
            backend = await self._connector(node, self.timeout)
            self._backends[node.name] = backend
        caps: Capabilities | None
        probed_at: float | None
        if probe:
            caps, probed_at = await backend.probe(), time.time()
        else:
            await backend.ping()
            caps, probed_at = old.capabilities, old.probed_at
        return NodeHealth(node.name, NodeState.healthy, capabilities=caps,
                          checked_at=time.time(), probed_at=probed_at, failures=0)

    def _stale(self, old: NodeHealth) -> bool:
        return self.refresh_after is not None and (
            old.probed_at is None or time.time() - old.probed_at >= self.refresh_after)

    def _failed(self, old: NodeHealth, exc: BackendError) -> NodeHealth:
        return replace(old, state=NodeState.unhealthy, message=exc.message,
                       detail=exc.detail or repr(exc), checked_at=time.time(),
                       failures=old.failures + 1)

    async def check_all(self) -> list[NodeHealth]:
        """Check every node that may be checked (not the switched-off or refused ones)."""
        names = [n for n, h in self._health.items()
                 if h.state not in (NodeState.auth_failed, NodeState.disabled)]

        async def one(name: str) -> NodeHealth | None:
            try:
                return await self.check(name)
            except KeyError:  # removed while the others were checked
                return None

        return [h for h in await asyncio.gather(*(one(n) for n in names)) if h is not None]

    def set_unhealthy(self, name: str, error: BackendError) -> None:
        """A request found the node stuck though it may still answer pings: out of rotation
        (with the reason) until a later check finds it well again."""
        old = self._health.get(name)
        if old is None or old.state is not NodeState.healthy:
            return
        self._set(old, self._failed(old, error))

    def suspect(self, name: str) -> None:
        """Something (a failed request) suggests the node is down: check it now, not at the
        next interval."""
        event = self._wakes.get(name)
        if event is not None:
            event.set()

    async def run(self) -> None:
        """Check every node now and then every `interval` seconds, until cancelled.

        Each node has its own rhythm, so one that hangs on a probe delays no other's check.
        Nodes added meanwhile join at the next interval; removed ones drop out.
        """
        watchers: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                for name in self.names():
                    task = watchers.get(name)
                    if task is not None and task.done() and not task.cancelled() \
                            and task.exception() is not None:
                        log.error("nodes: the health checks of %s stopped: %r; they start again",
                                  name, task.exception())
                    if task is None or task.done():
                        watchers[name] = asyncio.create_task(self._watch(name),
                                                             name=f"health-{name}")
                for name in [n for n in watchers if n not in self._configs]:
                    watchers.pop(name).cancel()
                await asyncio.sleep(self.interval)
        finally:
            for task in watchers.values():
                task.cancel()
            await asyncio.gather(*watchers.values(), return_exceptions=True)

    async def _watch(self, name: str) -> None:
        wake = self._wakes.setdefault(name, asyncio.Event())
        while name in self._configs:
            health = self._health.get(name)
            if health is not None and health.state not in (NodeState.auth_failed,
                                                           NodeState.disabled):
                try:
                    await self.check(name)
                except KeyError:  # removed while we were about to check it
                    return
            wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for returns normally when the wake
            # comes just as the watcher is cancelled, and the watcher would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await wake.wait()

    async def aclose(self) -> None:
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            with contextlib.suppress(Exception):
                await backend.aclose()

    # --- reporting ----------------------------------------------------------------------------

    def _set(self, old: NodeHealth, new: NodeHealth) -> None:
        self._health[new.name] = new
        if old.state is not new.state:
            if new.state is NodeState.healthy:
                log.info("nodes: %s is available", new.name)
            else:
                log.warning("nodes: %s is %s: %s", new.name, new.state.value, new.detail)
            self._emit(old, new)

    def _emit(self, old: NodeHealth, new: NodeHealth) -> None:
        for callback in list(self._on_change):
            try:
                callback(old, new)
            except Exception:
                log.exception("nodes: a listener failed on %s", new.name)


async def _within(limit: float, check: Coroutine[Any, Any, NodeHealth], name: str) -> NodeHealth:
    """Run one check in a task of its own for at most *limit* seconds (TimeoutError after).

    Its own task, because on Python 3.11 an A1111 probe (its requests run in a TaskGroup) that
    is cancelled while the group aborts after one request failed drops the cancellation and
    ends with that request's error. In the caller's task (asyncio.timeout) that lost cancel
    kept a node's watcher checking forever; here the caller's own wait is what gets cancelled,
    and it always propagates. Not wait_for either: cancelled, it cancels and awaits its inner
    task but never reads how that ended, so the error was reported as "Task exception was
    never retrieved". Here every outcome is read, and the check is over before the caller
    goes on.
    """
    task = asyncio.create_task(check, name=name)
    task.add_done_callback(_read_outcome)
    try:
        done, _ = await asyncio.wait((task,), timeout=limit)
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait((task,))
        raise
    if not done:
        task.cancel()
        await asyncio.wait((task,))
        if task.cancelled():
            raise TimeoutError
    return task.result()  # its answer, or its error (one that outran the cancel included)


def _read_outcome(task: asyncio.Task[Any]) -> None:
    """A check's error is read even when nobody waits for the check any more (its caller was
    cancelled meanwhile); the caller that does wait reads it again."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("nodes: %s ended with %r", task.get_name(), task.exception())
