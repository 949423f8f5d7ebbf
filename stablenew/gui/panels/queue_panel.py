"""QueuePanel: the persistent queue — jobs with progress, state, node and ETA; expand a job to
see its images; right-click for the operations; drag jobs to reorder them."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from stablenew.controller.queue_controller import (
    IdRole,
    KindRole,
    ProgressRole,
    QueueController,
    StateRole,
)
from stablenew.gui.widgets.notice import NoticeBanner

_UNFINISHED = ("queued", "assigned", "running")


class _ProgressDelegate(QStyledItemDelegate):
    """Draws the Progress column of job rows as a bar with the done/total text on it."""

    def paint(self, painter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        if index.data(KindRole) != "job":
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(1000 * float(index.data(ProgressRole) or 0.0))
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        bar.textVisible = True
        bar.state = option.state
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class QueuePanel(QWidget):
    """The queue view; it talks only to its QueueController."""

    #: The Plan button: whoever hosts the Nodes panel shows the dry run there
    #: (`NodesController.make_plan`).
    plan_requested = Signal()

    def __init__(self, controller: QueueController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("QueuePanel")

        self.count_label = QLabel()
        self.pause_button = QPushButton("Pause queue")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Stop starting new images; the ones running finish.")
        self.pause_button.toggled.connect(self._pause_toggled)
        self.retry_button = QPushButton("Retry failed")
        self.retry_button.setToolTip("Put every failed image back in the queue.")
        self.retry_button.clicked.connect(controller.edits.retry_all_failed)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove finished jobs from the list (jobs with failures stay "
                                     "so you can retry them). Images on disk are kept.")
        self.clear_button.clicked.connect(lambda: controller.edits.clear_finished())
        self.plan_button = QPushButton("Plan")
        self.plan_button.setObjectName("QueuePlanButton")
        self.plan_button.setToolTip("Show which node would take each waiting image, and when — "
                                    "nothing is sent (the Nodes panel shows the table).")
        self.plan_button.clicked.connect(self.plan_requested)
        self.notice = NoticeBanner(self)
        self.notice.dismissed.connect(controller.clear_error)
        self.node_label = QLabel()
        self.node_label.setObjectName("QueueNodeProblem")
        self.node_label.setWordWrap(True)
        self.node_label.hide()

        self.tree = QTreeView()
        self.tree.setObjectName("QueueTree")
        self.tree.setModel(controller.model)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.tree.setDragEnabled(True)
        self.tree.setAcceptDrops(True)
        self.tree.setDropIndicatorShown(True)
        self.tree.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.setItemDelegateForColumn(1, _ProgressDelegate(self.tree))
        self.tree.collapsed.connect(self._collapsed)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        # The name says which batch it is, so it keeps what the fixed columns leave (the tab is
        # often under 500 px wide): these widths fit "12/240", "Running", a node name and "3 min".
        header.setMinimumSectionSize(48)
        for column, width in ((1, 96), (2, 84), (3, 90), (4, 64)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        self.empty_label = QLabel("The queue is empty. Use “Add to queue” to line up a batch; "
                                  "it keeps going even if StableNew closes.")
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)

        bar = QHBoxLayout()
        bar.addWidget(self.count_label, 1)
        bar.addWidget(self.pause_button)
        bar.addWidget(self.retry_button)
        bar.addWidget(self.clear_button)
        bar.addWidget(self.plan_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.notice)
        layout.addWidget(self.node_label)
        layout.addLayout(bar)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.empty_label)

        self._expanded: set[str] = set()
        controller.count_changed.connect(self._show_count)
        controller.paused_changed.connect(self._show_paused)
        controller.error_changed.connect(self._show_error)
        controller.jobs_changed.connect(self._jobs_changed)
        controller.node_problem.connect(self._show_node_problem)
        controller.waiting_changed.connect(self._show_waiting)
        controller.model.modelReset.connect(self._restore_expansion)
        self.tree.expanded.connect(self._remember_expanded)
        self._show_count(controller.count)
        self._show_paused(controller.paused)
        self._show_error(controller.error)
        self._jobs_changed()

    # --- controller -> view -------------------------------------------------------------------------

    def _show_count(self, count: int | None = None) -> None:
        count = self.controller.count if count is None else count
        text = ("Nothing waiting" if count == 0 else
                f"{count} image{'s' if count != 1 else ''} waiting or running")
        if self.controller.paused:
            # Said where the queue is shown (and on the command bar): a paused queue that stays
            # paused after a restart must not look like one that is stuck.
            text += " · the queue is paused: press “Resume queue” to go on"
        self.count_label.setText(text)

    def _show_paused(self, paused: bool) -> None:
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(paused)
        self.pause_button.blockSignals(False)
        self.pause_button.setText("Resume queue" if paused else "Pause queue")
        self._show_count()

    def _show_error(self, info) -> None:
        if info is None:
            self.notice.hide()
        else:
            self.notice.show_notice(info.message, info.detail)

    def _show_node_problem(self, text: str) -> None:
        self.node_label.setText(f"{text} The queue waits for the server and carries on by itself.")
        self.node_label.show()

    def _show_waiting(self, text: str) -> None:
        self.node_label.setText(text)
        self.node_label.setVisible(bool(text))

    def _jobs_changed(self) -> None:
        empty = self.controller.model.rowCount() == 0
        self.empty_label.setVisible(empty)
        self.tree.setVisible(not empty)
        if self.controller.running:  # what it waited for is over, unless it waits for a node
            self._show_waiting(self.controller.waiting)

    def _remember_expanded(self, index: QModelIndex) -> None:
        job_id = index.data(IdRole)
        if index.data(KindRole) == "job" and job_id:
            self._expanded.add(str(job_id))

    def _collapsed(self, index: QModelIndex) -> None:
        job_id = index.data(IdRole)
        if index.data(KindRole) == "job" and job_id:
            self._expanded.discard(str(job_id))
            self.controller.forget_items(str(job_id))

    def _restore_expansion(self) -> None:
        model = self.controller.model
        for job_id in list(self._expanded):
            row = model.row_of(job_id)
            if row < 0:
                self._expanded.discard(job_id)
                continue
            self.tree.setExpanded(model.index(row, 0), True)

    # --- view -> controller -------------------------------------------------------------------------

    def _pause_toggled(self, checked: bool) -> None:
        self.controller.edits.set_paused(checked)

    def selected(self) -> tuple[list[str], list[int]]:
        """(job ids, item ids) of the selected rows."""
        jobs: list[str] = []
        items: list[int] = []
        for index in self.tree.selectionModel().selectedRows(0):
            if index.data(KindRole) == "job":
                jobs.append(str(index.data(IdRole)))
            else:
                items.append(int(index.data(IdRole)))
        return jobs, items

    def build_menu(self, index: QModelIndex) -> QMenu:
        """The context menu for a row (public so tests can check what it offers)."""
        menu = QMenu(self)
        c = self.controller.edits
        if not index.isValid():
            menu.addAction("Retry all failed", c.retry_all_failed)
            menu.addAction("Clear finished", lambda: c.clear_finished())
            return menu
        state = str(index.data(StateRole))
        if index.data(KindRole) == "job":
            job_id = str(index.data(IdRole))
            cancel = menu.addAction("Cancel job", lambda: self.controller.cancel_job(job_id))
            cancel.setEnabled(state in ("queued", "running"))
            retry = menu.addAction("Retry failed images", lambda: c.retry_job(job_id))
            retry.setEnabled(state in ("failed", "cancelled", "running", "queued"))
            menu.addSeparator()
            menu.addAction("Raise priority", lambda: c.bump_priority(job_id, 1))
            menu.addAction("Lower priority", lambda: c.bump_priority(job_id, -1))
            menu.addAction("Move to top", lambda: c.move_job(job_id, 0))
            menu.addAction("Move to bottom", lambda: c.move_job(job_id, 1 << 30))
        else:
            item_id = int(index.data(IdRole))
            cancel = menu.addAction("Cancel image", lambda: c.cancel_item(item_id))
            cancel.setEnabled(state in _UNFINISHED)
            retry = menu.addAction("Retry image", lambda: c.retry_item(item_id))
            retry.setEnabled(state in ("failed", "cancelled"))
        return menu

    def _context_menu(self, pos: QPoint) -> None:
        index = self.tree.indexAt(pos)
        self.build_menu(index.siblingAtColumn(0) if index.isValid() else index).exec(
            self.tree.viewport().mapToGlobal(pos))
