"""NodesController: the cluster's nodes for the window — a table model with each node's state
and current job, add/edit/remove/probe as slots, and the dry-run table for the queue panel's
"Plan" button.

Edits go to the node registry (`nodes.yaml`, owner-only) at once. Probes run on the qasync loop
through the controller's TaskOwner so every failure becomes visible state. While a
ClusterDispatcher runs the queue (`attach`), the table follows its live view: health from its
monitor, the items each node is working on, the speeds it learned.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)

from stablenew.cluster.dispatcher import ClusterDispatcher
from stablenew.cluster.dry_run import DryRun, dry_run
from stablenew.cluster.estimates import load_speeds, save_speeds, speeds_file
from stablenew.cluster.health import NodeHealth, NodeMonitor, NodeState
from stablenew.cluster.node_book import NodeStatus, WorkingOn
from stablenew.cluster.nodes import NodeConfig, NodeRegistry
from stablenew.cluster.off_loop import run_to_end
from stablenew.cluster.queue_store import QueueStore
from stablenew.cluster.tiers import NodeTier, as_tier, overflow_distance
from stablenew.cluster.work import GB
from stablenew.controller.errors import ErrorInfo
from stablenew.controller.format import duration
from stablenew.controller.tasks import TaskOwner
from stablenew.storage.documents import DocumentError
from stablenew.storage.paths import AppPaths

log = logging.getLogger("stablenew.controller.nodes")

NODE_COLUMNS = ("Name", "State", "Current job", "Kind", "VRAM", "Tier", "Address")
TIER_COLUMN = NODE_COLUMNS.index("Tier")
CURRENT_COLUMN = NODE_COLUMNS.index("Current job")
PLAN_COLUMNS = ("Image", "Job", "Node", "Start", "Finish", "Why not")
_ROOT = QModelIndex()
_KIND_NAMES = {"a1111": "A1111", "forge": "Forge", "sdnext": "SD.Next", "comfyui": "ComfyUI",
               "auto": "Auto-detect"}
# ComfyUI names its device "cuda:0 NVIDIA GeForce RTX 3060 : cudaMallocAsync": the card's name is
# what a user knows it by; the device index and the allocator stay in the tooltip.
_DEVICE_INDEX = re.compile(r"^[a-z]+:\d+\s+")
_ALLOCATOR = re.compile(r"\s+:\s+\w+$")


def kind_text(kind: str, device: str) -> str:
    """The Kind cell: "ComfyUI · NVIDIA GeForce RTX 3060", "A1111", "Forge · CPU"."""
    name = _KIND_NAMES.get(kind, kind)
    card = _ALLOCATOR.sub("", _DEVICE_INDEX.sub("", device.strip()))
    if card.lower() in ("cuda", "mps", ""):
        return name  # a GPU of unknown name: the VRAM column says the rest
    return f"{name} · {'CPU' if card.lower() == 'cpu' else card}"

STATE_TEXT = {
    NodeState.unknown: "Not checked",
    NodeState.healthy: "Ready",
    NodeState.unhealthy: "Not answering",
    NodeState.auth_failed: "Login refused",
    NodeState.disabled: "Off",
}
#: The role giving a row's NodeState value (for colouring).
StateRole = Qt.ItemDataRole.UserRole + 1
#: Seconds after which `check()` reads an idle node's models, samplers... again; between
#: times it only pings (a full probe lists every model and can take seconds on a big install).
REFRESH_CAPABILITIES_S = 600.0


def format_seconds(value: float) -> str:
    """A planned time in the Nodes tab: "4.2 s", "2 min 05 s"."""
    return duration(value, tenths=True)


def describe_work(works: Sequence[WorkingOn]) -> tuple[str, ...]:
    """What the "Current job" column says of the items a node works on, one text per job:
    "Lighthouses — image 3 of 24", or "Lighthouses — images 3, 4 of 24" (its name once)."""
    jobs: dict[tuple[str, int | None], list[int]] = {}
    for work in works:
        jobs.setdefault((work.job_name, work.total), []).append(work.number)
    texts = []
    for (job_name, total), numbers in jobs.items():
        listed = ", ".join(str(n) for n in sorted(numbers))
        image = f"image{'s' if len(numbers) > 1 else ''} {listed}" + (f" of {total}" if total else "")
        name = job_name if len(job_name) <= 40 else job_name[:39].rstrip() + "…"
        texts.append(f"{name} — {image}" if name else image)
    return tuple(texts)


def work_detail(work: WorkingOn) -> str:
    """The tooltip of one item: the job's full name, the prompt and the item's id."""
    prompt = work.prompt if len(work.prompt) <= 300 else work.prompt[:299].rstrip() + "…"
    lines = [f"{work.job_name or 'Job'} — image {work.number}"
             + (f" of {work.total}" if work.total else "")]
    if prompt:
        lines.append(f"Prompt: {prompt}")
    lines.append(f"Queue item {work.label}")
    return "\n".join(lines)


@dataclass(frozen=True)
class NodeRow:
    """One line of the Nodes table."""

    config: NodeConfig
    state: NodeState
    message: str
    current: tuple[str, ...] = ()  # readable, one per item it works on
    vram_gb: float | None = None
    kind: str = ""
    device: str = ""
    current_detail: str = ""  # the tooltip of the "Current job" cell


class NodesModel(QAbstractTableModel):
    """The nodes, one per row."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[NodeRow] = []

    def set_rows(self, rows: list[NodeRow]) -> None:
        if [r.config.name for r in rows] != [r.config.name for r in self._rows]:
            self.beginResetModel()
            self._rows = list(rows)
            self.endResetModel()
            return
        self._rows = list(rows)
        if rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(NODE_COLUMNS) - 1))

    def rows(self) -> list[NodeRow]:
        return list(self._rows)

    def row_at(self, row: int) -> NodeRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(NODE_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> str | None:
        if (orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole
                and 0 <= section < len(NODE_COLUMNS)):
            return NODE_COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> str | None:
        row = self.row_at(index.row()) if index.isValid() else None
        if row is None:
            return None
        column = index.column()
        if role == StateRole:
            return row.state.value
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == 2 and row.current_detail:
                return row.current_detail
            if column == 3 and row.device:
                return f"Device: {row.device}"
            return row.message or None
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        cfg = row.config
        if column == 0:
            return cfg.name
        if column == 1:
            return STATE_TEXT[row.state]
        if column == 2:
            return ", ".join(row.current)
        if column == 3:
            return kind_text(row.kind or cfg.kind.value, row.device)
        if column == 4:
            return f"{row.vram_gb:.0f} GB" if row.vram_gb else ""
        if column == 5:
            return cfg.tier.label
        if column == 6:
            return cfg.url
        return None


class PlanModel(QAbstractTableModel):
    """The dry-run table: image → node, expected start and finish; unassignable rows last."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._plan: DryRun | None = None

    def set_plan(self, plan: DryRun | None) -> None:
        self.beginResetModel()
        self._plan = plan
        self.endResetModel()

    @property
    def plan(self) -> DryRun | None:
        return self._plan

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() or self._plan is None else len(self._plan.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(PLAN_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> str | None:
        if (orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole
                and 0 <= section < len(PLAN_COLUMNS)):
            return PLAN_COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> str | None:
        if self._plan is None or not index.isValid() or index.row() >= len(self._plan.rows):
            return None
        row = self._plan.rows[index.row()]
        if role == Qt.ItemDataRole.ToolTipRole and row.reason:
            return row.reason
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if index.column() == 0:
            return row.label
        if index.column() == 1:
            return row.job_name
        if index.column() == 2:
            return row.node or "(no node can take it)"
        if index.column() == 5:
            return row.reason
        if not row.node:
            return ""
        return format_seconds(row.start if index.column() == 3 else row.finish)


class NodesController(QObject):
    """The cluster's nodes: registry edits, probes, live state, and the dry run."""

    nodes_changed = Signal()
    plan_changed = Signal(object)  # DryRun | None
    error_changed = Signal(object)  # ErrorInfo | None
    summary_changed = Signal(str)  # one line for the status bar: "3 of 4 nodes ready"

    def __init__(self, *, nodes_file: Path | None = None, db_path: Path | None = None,
                 parent: QObject | None = None, probe_timeout: float = 10.0,
                 live_interval_ms: int = 1000,
                 settings_server: Callable[[], NodeConfig | None] | None = None) -> None:
        super().__init__(parent)
        # The server set in Settings, as a node: once nodes are listed the queue runs on them
        # alone, so the Nodes tab offers to add it when it is not among them.
        self._settings_server = settings_server
        paths = AppPaths.default()
        self.nodes_file = nodes_file or paths.nodes_file
        self.db_path = db_path or paths.database_file
        self._data_dir = paths.data_dir
        self.tasks = TaskOwner("Nodes", self)
        self.tasks.error_raised.connect(self._set_error)
        self.model = NodesModel(self)
        self.plan_model = PlanModel(self)
        self._error: ErrorInfo | None = None
        self._registry = NodeRegistry.load(self.nodes_file)
        self._monitor = NodeMonitor(list(self._registry), timeout=probe_timeout,
                                    probe_timeout=probe_timeout,
                                    refresh_after=REFRESH_CAPABILITIES_S)
        self._dispatcher: ClusterDispatcher | None = None
        self._save_lock = asyncio.Lock()
        self._live = QTimer(self)
        self._live.setInterval(live_interval_ms)
        self._live.timeout.connect(self._rebuild)
        if self._registry.error is not None:
            self._set_error(ErrorInfo(str(self._registry.error), source="Nodes"))
        self._rebuild()

    # --- reading ---------------------------------------------------------------------------------

    @property
    def error(self) -> ErrorInfo | None:
        return self._error

    def nodes(self) -> list[NodeConfig]:
        return list(self._registry)

    def node(self, name: str) -> NodeConfig:
        return self._registry.get(name)

    def health(self, name: str) -> NodeHealth:
        monitor = self._dispatcher.monitor if self._dispatcher is not None else self._monitor
        try:
            return monitor.health(name)
        except KeyError:
            return self._monitor.health(name)

    def unlisted_settings_server(self) -> NodeConfig | None:
        """The Settings server as a node, when nodes are listed and it is not one of them
        (by address); None otherwise (with no nodes, Run and the queue use it anyway)."""
        server = self._settings_server() if self._settings_server is not None else None
        nodes = list(self._registry)
        if server is None or not nodes:
            return None
        if any(n.url.lower() == server.url.lower() for n in nodes):
            return None
        name, n = server.name, 2
        while any(node.name == name for node in nodes):
            name, n = f"{server.name} {n}", n + 1
        return server.model_copy(update={"name": name})

    def add_settings_server(self) -> bool:
        """List the Settings server as a node too, so the queue spreads over it as well."""
        server = self.unlisted_settings_server()
        return server is not None and self.add_node(server)

    def lora_lists(self) -> dict[str, tuple[str, ...]]:
        """The LoRAs each probed node's server lists (nodes not probed yet are left out)."""
        lists = {}
        for cfg in self._registry:
            caps = self.health(cfg.name).capabilities if cfg.name in self._known() else None
            if caps is not None:
                lists[cfg.name] = tuple(caps.loras)
        return lists

    def preferred_node(self) -> NodeConfig | None:
        """Where an interactive Run goes: the first ready node of the tier ordinary work
        prefers (standard, then the next ones down the overflow order)."""
        ready = [n for n in self._registry.enabled()
                 if self.health(n.name).state is NodeState.healthy]
        pool = ready or self._registry.enabled()
        return min(pool, key=lambda n: overflow_distance(None, n.tier)) if pool else None

    # --- editing (slots) -----------------------------------------------------------------------------

    def add_node(self, node: NodeConfig) -> bool:
        """Add a node, then save and probe it in the background; False (with the reason as the
        error) if refused at once. A save that fails takes the node out again, with the error."""
        try:
            text = self._registry_text_with(lambda: self._registry.add(node))
        except ValueError as exc:  # a node of that name exists: nothing changed
            self._set_error(ErrorInfo(str(exc), source="Nodes"))
            return False
        self._set_error(None)
        self._spawn_then_rebuild(self._save(text, undo=lambda: self._forget(node.name)),
                                 f"save-{node.name}")
        self._spawn_then_rebuild(self._monitor.add(node), f"probe-{node.name}")
        if self._dispatcher is not None:  # the running queue takes it on at once
            self._spawn_then_rebuild(self._dispatcher.add_node(node), f"join-{node.name}")
        self._rebuild()
        return True

    def _forget(self, name: str) -> None:
        """A node that could not be saved leaves again: do not pretend it was added."""
        self._registry.remove(name)
        self._spawn_then_rebuild(self._monitor.remove(name), f"forget-{name}")
        if self._dispatcher is not None:
            self._spawn_then_rebuild(self._dispatcher.remove_node(name), f"leave-{name}")

    def _registry_text_with(self, change: Callable[[], None]) -> str:
        """Apply *change* to the registry and return the file text to save for it; a broken
        nodes file refuses the change (nothing in it may be lost)."""
        snapshot = list(self._registry)
        change()
        try:
            return self._registry.text()
        except DocumentError:
            self._registry.reset(snapshot)
            raise

    async def _save(self, text: str, *, undo: Callable[[], None] | None = None) -> bool:
        """Write the nodes file off the Qt thread (atomic, with an fsync), one save at a time
        and in the order they were asked for; True when it was written."""
        async with self._save_lock:
            try:
                await asyncio.to_thread(self._registry.write, text)
            except OSError as exc:
                log.warning("nodes: could not save %s: %s", self.nodes_file, exc)
                if undo is not None:
                    undo()
                self._set_error(ErrorInfo(
                    f"The nodes file could not be saved ({exc.strerror or exc}). Check that you "
                    f"may write to {self.nodes_file.parent}.", detail=repr(exc), source="Nodes"))
                return False
        return True

    def _spawn_then_rebuild(self, coro: Coroutine[object, object, object], name: str) -> None:
        async def work() -> None:
            try:
                await coro
            finally:
                self._rebuild()

        self.tasks.spawn(work(), name=name)

    def edit_node(self, old_name: str, node: NodeConfig) -> bool:
        """Replace a node's settings (a rename too); its state is checked again."""
        try:
            if old_name != node.name:
                if node.name in {n.name for n in self._registry}:
                    raise ValueError(f"There is already a node called '{node.name}'.")
                self._registry.remove(old_name)
            text = self._registry_text_with(lambda: self._registry.replace(node))
        except (ValueError, DocumentError) as exc:
            self._registry = NodeRegistry.load(self.nodes_file)
            self._set_error(ErrorInfo(str(exc), detail=repr(exc), source="Nodes"))
            self._rebuild()
            return False
        self._set_error(None)

        dispatcher = self._dispatcher

        async def recheck() -> None:
            await self._save(text)
            if old_name != node.name:
                await self._monitor.remove(old_name)
                if dispatcher is not None:
                    await dispatcher.remove_node(old_name)
            await self._monitor.add(node)
            if dispatcher is not None:
                await dispatcher.add_node(node)

        self._spawn_then_rebuild(recheck(), f"recheck-{node.name}")
        self._rebuild()
        return True

    def remove_node(self, name: str) -> None:
        try:
            text = self._registry_text_with(lambda: self._registry.remove(name))
        except DocumentError as exc:
            self._set_error(ErrorInfo(str(exc), detail=repr(exc), source="Nodes"))
            return
        self._spawn_then_rebuild(self._save(text), f"save-{name}")
        self._spawn_then_rebuild(self._monitor.remove(name), f"remove-{name}")
        if self._dispatcher is not None:  # its in-flight images go back to the queue
            self._spawn_then_rebuild(self._dispatcher.remove_node(name), f"leave-{name}")
        self._rebuild()

    def set_enabled(self, name: str, enabled: bool) -> None:
        node = self._registry.get(name).model_copy(update={"enabled": enabled})
        self.edit_node(name, node)

    def set_tier(self, name: str, tier: NodeTier | str) -> None:
        """The node's tier from its combo in the table: saved, and the running queue told."""
        tier = as_tier(tier)
        if self._registry.get(name).tier is not tier:
            self.edit_node(name, self._registry.get(name).model_copy(update={"tier": tier}))

    def check(self) -> None:
        """Check every node the cheap way, as an idle cluster's timer should: a ping for each
        that answered last time; a full probe only for one coming back, not probed yet, or
        probed over REFRESH_CAPABILITIES_S ago. One that refused our login waits for Probe."""
        self._spawn_then_rebuild(self._monitor.check_all(), "check")

    def probe(self, name: str | None = None) -> None:
        """Contact one node (or all) now and read everything it has again, even one that
        refused our password before (the Probe button); an A1111-family server reads its model
        folders first. A running queue reads it too: what was installed since shows there at
        once (its client kept: a worker is using it)."""
        running = self._dispatcher.monitor if self._dispatcher is not None else None

        async def work() -> None:
            names = [name] if name else [n.name for n in self._registry]
            await asyncio.gather(*(self._monitor.recheck(n, rescan=True) for n in names
                                   if n in self._monitor.names()))
            if running is not None:
                await asyncio.gather(*(running.check(n, probe=True) for n in names
                                       if n in running.names()))

        self._spawn_then_rebuild(work(), "probe")

    # --- the dry run ---------------------------------------------------------------------------------

    def make_plan(self, *, store: QueueStore | None = None) -> None:
        """Probe the nodes and plan what is queued, without sending any generation."""
        async def work() -> None:
            own = store is None
            queue = store if store is not None else await asyncio.to_thread(QueueStore, self.db_path)
            try:
                if self._dispatcher is not None:  # its lock: a claim may hold it a while
                    views = await asyncio.to_thread(self._dispatcher.views)
                else:
                    await self._monitor.check_all()
                    learned = await asyncio.to_thread(load_speeds, speeds_file(self._data_dir))
                    # A dispatcher that is never started: only asked how it sees the nodes.
                    planner = ClusterDispatcher(queue, self._monitor, speeds=learned)
                    views = planner.views()
                    planner.detach()
                plan = await asyncio.to_thread(dry_run, queue, views)
            finally:
                if own:
                    await asyncio.to_thread(queue.close)
            self.plan_model.set_plan(plan)
            self.plan_changed.emit(plan)

        self._spawn_then_rebuild(work(), "plan")

    # --- the live view of a running dispatcher --------------------------------------------------------

    def attach(self, dispatcher: ClusterDispatcher | None) -> None:
        """Follow a running dispatcher's view of the nodes (None: stop following)."""
        self._dispatcher = dispatcher
        if dispatcher is None:
            self._live.stop()
        else:
            self._live.start()
        self._rebuild()

    def make_dispatcher(self, store: QueueStore, **kwargs: Any) -> ClusterDispatcher | None:
        """A dispatcher over the enabled nodes of the registry (None when there are none).

        Any: *kwargs* go as they are to ClusterDispatcher, whose keywords check them."""
        nodes = self._registry.enabled()
        if not nodes:
            return None
        kwargs.setdefault("speeds", load_speeds(speeds_file(self._data_dir)))
        return ClusterDispatcher(store, nodes, **kwargs)

    def keep_learned_speeds(self, dispatcher: ClusterDispatcher) -> asyncio.Task[None]:
        """Save what a dispatcher learned of the nodes' speeds (for the next run and the plan)
        in a thread (an atomic write with an fsync); the task of it, which closing awaits."""
        speeds = dispatcher.speeds()  # a stopped dispatcher: nobody holds its lock now

        async def save() -> None:
            try:
                await run_to_end(save_speeds, None, speeds_file(self._data_dir), speeds)
            except OSError as exc:
                log.warning("nodes: could not keep the learned speeds: %s", exc)

        return self.tasks.spawn(save(), name="keep-speeds")

    def _rebuild(self) -> None:
        statuses: dict[str, NodeStatus] = {}
        if self._dispatcher is not None:
            statuses = {s.name: s for s in self._dispatcher.statuses()}
        rows = []
        for cfg in self._registry:
            status = statuses.get(cfg.name)
            health = self.health(cfg.name) if cfg.name in self._known() else NodeHealth(cfg.name)
            caps = health.capabilities
            state = status.state if status else (health.state if cfg.enabled else NodeState.disabled)
            working = status.working_on if status else ()
            rows.append(NodeRow(
                cfg, state, status.message if status else health.message,
                current=describe_work(working),
                current_detail="\n\n".join(work_detail(w) for w in working),
                vram_gb=(caps.vram_total / GB if caps and caps.vram_total else None),
                kind=caps.kind.value if caps else "", device=caps.device if caps else ""))
        self.model.set_rows(rows)
        ready = sum(r.state is NodeState.healthy for r in rows)
        enabled = sum(r.config.enabled for r in rows)
        self.summary_changed.emit(f"{ready} of {enabled} nodes ready" if enabled else "No nodes")
        self.nodes_changed.emit()

    def _known(self) -> set[str]:
        names = set(self._monitor.names())
        if self._dispatcher is not None:
            names |= set(self._dispatcher.monitor.names())
        return names

    # --- errors and shutdown ---------------------------------------------------------------------

    def _set_error(self, info: ErrorInfo | None) -> None:
        self._error = info
        self.error_changed.emit(info)

    def clear_error(self) -> None:
        self._set_error(None)

    async def aclose(self) -> None:
        self._live.stop()
        await self.tasks.aclose()
        await self._monitor.aclose()
