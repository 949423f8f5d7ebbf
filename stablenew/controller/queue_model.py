"""QueueModel: the queue's jobs and their images as a Qt item model for the queue panel — rows,
progress, states in words and drag-and-drop reordering of jobs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias, overload

from PySide6.QtCore import (
    QAbstractItemModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)

from stablenew.cluster.jobs import INTERACTIVE_PRIORITY, ItemState, Job, JobState, WorkItem
from stablenew.controller.format import duration

if TYPE_CHECKING:
    from stablenew.controller.queue_controller import QueueController

JOB_MIME = "application/x-stablenew-queue-jobs"

COLUMNS = ("Name", "Progress", "State", "Node", "ETA")
#: Custom roles the panel reads.
ProgressRole = Qt.ItemDataRole.UserRole + 1  # float 0..1
IdRole = Qt.ItemDataRole.UserRole + 2  # job id (str) or item id (int)
KindRole = Qt.ItemDataRole.UserRole + 3  # "job" or "item"
StateRole = Qt.ItemDataRole.UserRole + 4  # JobState / ItemState value
#: What a cell gives for a role: text, an id, a progress fraction, or nothing.
CellValue: TypeAlias = str | int | float | None


def format_eta(seconds: float | None) -> str:
    """A queue row's time left: "2 min 05 s", or nothing while unknown."""
    return "" if seconds is None else duration(seconds)


_ROOT = QModelIndex()


class QueueModel(QAbstractItemModel):
    """Jobs as rows, their images as children; top-level rows can be dragged to reorder."""

    def __init__(self, controller: QueueController) -> None:
        super().__init__(controller)
        self._controller = controller
        self._jobs: list[Job] = []
        self._items: dict[str, list[WorkItem]] = {}
        self._fractions: dict[int, tuple[str, float]] = {}  # running item -> (job, fraction)

    # --- data from the controller ----------------------------------------------------------------

    def set_snapshot(self, jobs: list[Job], items: dict[str, list[WorkItem]]) -> None:
        same_shape = [j.id for j in jobs] == [j.id for j in self._jobs] and all(
            len(items.get(j.id, [])) == len(self._items.get(j.id, [])) for j in jobs)
        if not same_shape:
            self.beginResetModel()
            self._jobs, self._items = list(jobs), dict(items)
            self.endResetModel()
            return
        self._jobs, self._items = list(jobs), dict(items)
        if self._jobs:
            last = len(COLUMNS) - 1
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._jobs) - 1, last))
            for row, job in enumerate(self._jobs):
                children = self._items.get(job.id)
                if children:
                    parent = self.index(row, 0)
                    self.dataChanged.emit(self.index(0, 0, parent),
                                          self.index(len(children) - 1, last, parent))

    def set_fraction(self, item: WorkItem, fraction: float | None) -> None:
        if fraction is None:
            self._fractions.pop(item.id, None)
        else:
            self._fractions[item.id] = (item.job_id, fraction)

    def jobs(self) -> list[Job]:
        return list(self._jobs)

    def job_at(self, row: int) -> Job | None:
        return self._jobs[row] if 0 <= row < len(self._jobs) else None

    def row_of(self, job_id: str) -> int:
        for row, job in enumerate(self._jobs):
            if job.id == job_id:
                return row
        return -1

    def loaded_items(self, job_id: str) -> list[WorkItem] | None:
        return self._items.get(job_id)

    # --- tree structure --------------------------------------------------------------------------

    def index(self, row: int, column: int, parent: QModelIndex | QPersistentModelIndex = _ROOT
              ) -> QModelIndex:
        if column < 0 or column >= len(COLUMNS) or row < 0:
            return QModelIndex()
        if not parent.isValid():
            if row >= len(self._jobs):
                return QModelIndex()
            return self.createIndex(row, column, 0)  # internalId 0: a job row
        if not _is_job(parent):
            return QModelIndex()  # items have no children
        job = self.job_at(parent.row())
        children = self._items.get(job.id, []) if job else []
        if row >= len(children):
            return QModelIndex()
        return self.createIndex(row, column, parent.row() + 1)  # internalId: job row + 1

    @overload
    def parent(self) -> QObject | None: ...
    @overload
    def parent(self, index: QModelIndex | QPersistentModelIndex, /) -> QModelIndex: ...

    def parent(self, index: QModelIndex | QPersistentModelIndex | None = None
               ) -> QModelIndex | QObject | None:
        if index is None:  # QObject.parent(): who owns the model
            return super().parent()
        if not index.isValid() or _is_job(index):
            return QModelIndex()
        return self.createIndex(int(index.internalId()) - 1, 0, 0)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        if not parent.isValid():
            return len(self._jobs)
        if parent.column() != 0 or not _is_job(parent):
            return 0
        job = self.job_at(parent.row())
        return len(self._items.get(job.id, [])) if job else 0

    def hasChildren(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> bool:
        if not parent.isValid():
            return bool(self._jobs)
        return _is_job(parent) and parent.column() == 0

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex) -> bool:
        if not parent.isValid() or not _is_job(parent):
            return False
        job = self.job_at(parent.row())
        return job is not None and job.id not in self._items

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex) -> None:
        job = self.job_at(parent.row()) if parent.isValid() else None
        if job is not None:
            self._controller.load_items(job.id)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> str | None:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section] if 0 <= section < len(COLUMNS) else None
        return None

    # --- cells ------------------------------------------------------------------------------------

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
             ) -> CellValue:
        if not index.isValid():
            return None
        if _is_job(index):
            job = self.job_at(index.row())
            return None if job is None else self._job_data(job, index.column(), role)
        parent_job = self.job_at(int(index.internalId()) - 1)
        children = self._items.get(parent_job.id, []) if parent_job else []
        if index.row() >= len(children):
            return None
        return self._item_data(children[index.row()], index.column(), role)

    def _job_progress(self, job: Job) -> float:
        c = job.counts
        if not c.total:
            return 0.0
        running = sum(f for job_id, f in self._fractions.values() if job_id == job.id)
        return min(1.0, (c.finished + running) / c.total)

    def _job_data(self, job: Job, column: int, role: int) -> CellValue:
        c = job.counts
        if role == IdRole:
            return job.id
        if role == KindRole:
            return "job"
        if role == StateRole:
            return job.state.value
        if role == ProgressRole:
            return self._job_progress(job)
        if role == Qt.ItemDataRole.ToolTipRole:
            origin = job.origin
            where = ", ".join(f"{k}: {v}" for k, v in (("pack", origin.pack),
                                                        ("preset", origin.preset),
                                                        ("learning run", origin.learning_run_id))
                              if v)
            lines = [job.name, f"Job {job.id} · priority {job.priority}",
                     f"{c.done} done, {c.failed} failed, {c.cancelled} cancelled of {c.total}",
                     f"Saved in {job.output_dir}"]
            if where:
                lines.append(where)
            return "\n".join(lines)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if column == 0:
            # A Run says so in its name; its priority is not a number people set.
            raised = job.priority and job.priority < INTERACTIVE_PRIORITY
            return job.name + (f"  ↑{job.priority}" if raised else "")
        if column == 1:
            failed = f" · {c.failed} failed" if c.failed else ""
            return f"{c.done}/{c.total}{failed}"
        if column == 2:
            if job.state is JobState.done and c.cancelled:
                return "Stopped"  # some images made, the rest stopped: not "Done"
            return _JOB_STATE_WORDS[job.state]
        if column == 3:
            return ", ".join(job.nodes)
        if column == 4:
            return format_eta(job.eta_seconds) if job.state in (JobState.queued,
                                                                JobState.running) else ""
        return None

    def _fraction(self, item: WorkItem) -> float:
        return self._fractions.get(item.id, ("", 0.0))[1]

    def _item_data(self, item: WorkItem, column: int, role: int) -> CellValue:
        if role == IdRole:
            return item.id
        if role == KindRole:
            return "item"
        if role == StateRole:
            return item.state.value
        if role == ProgressRole:
            if item.state is ItemState.done:
                return 1.0
            return self._fraction(item) if item.state is ItemState.running else 0.0
        if role == Qt.ItemDataRole.ToolTipRole:
            text = f"{item.label} · seed {item.seed}"
            if item.error:
                text += f"\n{item.error}"
                if item.error_detail:
                    text += f"\n\n{item.error_detail[:2000]}"
            if item.outputs:
                text += "\n" + "\n".join(item.outputs)
            return text
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if column == 0:
            text = f"Image {item.index + 1} · seed {item.seed}"
            return f"{text} · {item.variant.label}" if item.variant.label else text
        if column == 1:
            if item.state is ItemState.running:
                return f"{int(self._fraction(item) * 100)}%"
            return ""
        if column == 2:
            word = item.state.value
            if item.state is ItemState.queued and item.attempts:
                word = f"retry {item.attempts}/3"
            if item.error and item.state is ItemState.failed:
                word = f"failed: {item.error}"
            return word
        if column == 3:
            # The node working on it, then the one that made it or failed it (which GPU made
            # this image, on a cluster); a queued item (a retry) has none yet.
            return item.node or "" if item.state is not ItemState.queued else ""
        return None

    # --- drag and drop (reorder jobs) -------------------------------------------------------------

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        if _is_job(index):
            return base | Qt.ItemFlag.ItemIsDragEnabled
        return base | Qt.ItemFlag.ItemNeverHasChildren

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [JOB_MIME]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        ids: list[str] = []
        for index in indexes:
            if index.isValid() and _is_job(index):
                job = self.job_at(index.row())
                if job is not None and job.id not in ids:
                    ids.append(job.id)
        data = QMimeData()
        data.setData(JOB_MIME, QByteArray(json.dumps(ids).encode("utf-8")))
        return data

    def canDropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int,
                        parent: QModelIndex | QPersistentModelIndex) -> bool:
        return data.hasFormat(JOB_MIME) and not parent.isValid()

    def dropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int,
                     parent: QModelIndex | QPersistentModelIndex) -> bool:
        if not self.canDropMimeData(data, action, row, column, parent):
            return False
        try:
            moved = [str(i) for i in json.loads(bytes(data.data(JOB_MIME).data()).decode("utf-8"))]
        except (ValueError, UnicodeDecodeError):
            return False
        order = [j.id for j in self._jobs]
        if row < 0:
            row = len(order)
        before = order[row] if row < len(order) else None
        rest = [jid for jid in order if jid not in moved]
        at = rest.index(before) if before in rest else len(rest)
        new_order = rest[:at] + [jid for jid in moved if jid in order] + rest[at:]
        self._controller.edits.reorder(new_order)
        # False: the controller moved the jobs; the view must not remove the dragged rows.
        return False


def _is_job(index: QModelIndex | QPersistentModelIndex) -> bool:
    return index.internalId() == 0


_JOB_STATE_WORDS = {
    JobState.queued: "Waiting",
    JobState.running: "Running",
    JobState.done: "Done",
    JobState.failed: "Finished with failures",
    JobState.cancelled: "Cancelled",
}
