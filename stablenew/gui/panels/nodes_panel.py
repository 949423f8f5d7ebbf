"""NodesPanel: the cluster's SD servers — state and current job per node, add/edit/remove/probe,
and the dry-run plan of the queue (which node would take each image, when)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStyledItemDelegate,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from stablenew.controller.format import plural
from stablenew.controller.nodes_controller import (
    CURRENT_COLUMN,
    TIER_COLUMN,
    NodeConfig,
    NodesController,
    NodeTier,
    StateRole,
    format_seconds,
)
from stablenew.gui.widgets.notice import NoticeBanner

_STATE_COLOURS = {"healthy": "#3a9d5d", "unhealthy": "#c0392b", "auth_failed": "#d68910",
                  "disabled": "#808080", "unknown": "#808080"}
_KINDS = ("auto", "a1111", "forge", "sdnext", "comfyui")


class _StateDelegate(QStyledItemDelegate):
    """Colours the State column by the node's state."""

    def initStyleOption(self, option, index) -> None:  # noqa: N802 (Qt's name)
        super().initStyleOption(option, index)
        colour = _STATE_COLOURS.get(str(index.data(StateRole) or ""))
        if colour:
            option.palette.setBrush(option.palette.ColorRole.Text, QBrush(QColor(colour)))


def tier_combo(tier: NodeTier) -> QComboBox:
    """A choice of the four tiers, *tier* chosen; the hint from NodeConfig's field."""
    combo = QComboBox()
    for choice in NodeTier:
        combo.addItem(choice.label, choice)
    combo.setCurrentIndex(list(NodeTier).index(tier))
    combo.setToolTip(NodeConfig.model_fields["tier"].description or "")
    return combo


class NodeDialog(QDialog):
    """Add or edit one node; field titles and hints come from NodeConfig's fields."""

    def __init__(self, node: NodeConfig | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit node" if node else "Add node")
        fields = NodeConfig.model_fields
        self.name = QLineEdit(node.name if node else "")
        self.url = QLineEdit(node.url if node else "http://127.0.0.1:7860")
        self.url.setToolTip(fields["url"].description or "")
        # A LAN address shows whole (the dialog's default width cut it to "ttp://127.0.0.1:78").
        self.url.setMinimumWidth(self.url.fontMetrics().horizontalAdvance(
            "https://192.168.100.100:7860") + 24)
        self.name.setPlaceholderText("e.g. living-room PC")
        self.kind = QComboBox()
        self.kind.addItems(_KINDS)
        self.kind.setCurrentText(node.kind.value if node else "auto")
        self.username = QLineEdit(node.username if node else "")
        self.password = QLineEdit(node.password.get_secret_value() if node else "")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.tier = tier_combo(node.tier if node else NodeTier.standard)
        self.max_concurrent = QSpinBox()
        self.max_concurrent.setRange(1, 8)
        self.max_concurrent.setValue(node.max_concurrent if node else 1)
        self.tags = QLineEdit(", ".join(node.tags) if node else "")
        self.enabled = QCheckBox()
        self.enabled.setChecked(node.enabled if node else True)
        self.problem = QLabel()
        self.problem.setObjectName("NodeDialogProblem")
        self.problem.setWordWrap(True)
        self.problem.hide()

        form = QFormLayout()
        for key, widget in (("name", self.name), ("url", self.url), ("kind", self.kind),
                            ("username", self.username), ("password", self.password),
                            ("tier", self.tier), ("max_concurrent", self.max_concurrent),
                            ("tags", self.tags), ("enabled", self.enabled)):
            form.addRow(fields[key].title or key, widget)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)
        self.result_node: NodeConfig | None = None

    def node(self) -> NodeConfig:
        """The node as entered; raises ValueError with a plain sentence when a field is wrong."""
        from pydantic import ValidationError

        try:
            return NodeConfig(
                name=self.name.text().strip(), url=self.url.text().strip(),
                kind=self.kind.currentText(), username=self.username.text(),
                password=self.password.text(), tier=self.tier.currentData(),
                max_concurrent=self.max_concurrent.value(), enabled=self.enabled.isChecked(),
                tags=[t.strip() for t in self.tags.text().split(",") if t.strip()])
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else ""
            title = NodeConfig.model_fields[field].title if field in NodeConfig.model_fields else field
            raise ValueError(f"{title}: {first['msg'].removeprefix('Value error, ')}") from exc

    def _accept(self) -> None:
        try:
            self.result_node = self.node()
        except ValueError as exc:
            self.problem.setText(str(exc))
            self.problem.show()
            return
        self.accept()


class NodesPanel(QWidget):
    """The nodes table and the queue's dry-run plan; it talks only to its NodesController."""

    def __init__(self, controller: NodesController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("NodesPanel")

        self.notice = NoticeBanner(self)
        self.notice.dismissed.connect(controller.clear_error)
        self.summary = QLabel()
        self.add_button = QPushButton("Add node…")
        self.add_button.clicked.connect(self.add_node)
        self.edit_button = QPushButton("Edit…")
        self.edit_button.clicked.connect(self.edit_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        self.probe_button = QPushButton("Probe")
        self.probe_button.setToolTip("Contact the selected node (or all) now, even one that "
                                     "refused the password before, and have it read its model "
                                     "folders again (files copied there since it started).")
        self.probe_button.clicked.connect(self.probe_selected)
        self.plan_button = QPushButton("Plan")
        self.plan_button.setToolTip("Show which node would take each queued image, and when — "
                                    "nothing is sent.")
        self.plan_button.clicked.connect(controller.make_plan)

        self.table = QTableView()
        self.table.setObjectName("NodesTable")
        self.table.setModel(controller.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setItemDelegateForColumn(1, _StateDelegate(self.table))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # The current job takes the room left and is cut short there (its tooltip has it all):
        # sized to its text, two long job names pushed Kind, VRAM, Tier and Address out of view.
        header.setSectionResizeMode(CURRENT_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.doubleClicked.connect(lambda _index: self.edit_selected())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        # A tier combo in each node's row: changing it saves the node at once.
        self.tier_combos: dict[str, QComboBox] = {}
        controller.model.modelReset.connect(self._place_tier_combos)
        controller.model.dataChanged.connect(self._sync_tier_combos)

        # Said where the table is empty (a new user saw an empty table and no word of why).
        self.empty_hint = QLabel("No nodes yet: Run and the queue use the server set in "
                                 "Settings. Add a node for each PC with a Stable Diffusion server "
                                 "on your network, and the queue spreads over the nodes listed "
                                 "here.")
        self.empty_hint.setObjectName("HintLabel")
        self.empty_hint.setWordWrap(True)
        # Once nodes are listed the queue runs on them alone: the Settings server is offered.
        self.server_hint = QLabel("")
        self.server_hint.setObjectName("HintLabel")
        self.server_hint.setWordWrap(True)
        self.add_server_button = QPushButton("Add it as a node")
        self.add_server_button.clicked.connect(controller.add_settings_server)
        self.server_row = QWidget()
        server_layout = QHBoxLayout(self.server_row)
        server_layout.setContentsMargins(0, 0, 0, 0)
        server_layout.addWidget(self.server_hint, 1)
        server_layout.addWidget(self.add_server_button)

        self.plan_label = QLabel("Press Plan to see how the queue would be spread over the nodes.")
        self.plan_label.setWordWrap(True)
        self.plan_table = QTableView()
        self.plan_table.setObjectName("PlanTable")
        self.plan_table.setModel(controller.plan_model)
        self.plan_table.verticalHeader().hide()
        # Sized to what the plan holds (Qt measures at most 1,000 rows), so it fits the tab
        # without a sideways scroll bar.
        self.plan_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.plan_table.horizontalHeader().setStretchLastSection(True)

        buttons = QHBoxLayout()
        for button in (self.add_button, self.edit_button, self.remove_button, self.probe_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.summary)
        buttons.addWidget(self.plan_button)
        plan_box = QWidget()
        plan_layout = QVBoxLayout(plan_box)
        plan_layout.setContentsMargins(0, 0, 0, 0)
        plan_layout.addWidget(self.plan_label)
        plan_layout.addWidget(self.plan_table)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(plan_box)
        layout = QVBoxLayout(self)
        layout.addWidget(self.notice)
        layout.addLayout(buttons)
        layout.addWidget(self.empty_hint)
        layout.addWidget(self.server_row)
        layout.addWidget(splitter, 1)

        controller.error_changed.connect(self.notice.show_error)
        controller.summary_changed.connect(self.summary.setText)
        controller.plan_changed.connect(self._show_plan)
        controller.nodes_changed.connect(self._update_buttons)
        if controller.error is not None:
            self.notice.show_error(controller.error)
        self._update_buttons()
        self._place_tier_combos()

    # --- actions ---------------------------------------------------------------------------------

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        row = self.controller.model.row_at(rows[0].row()) if rows else None
        return row.config.name if row else None

    def add_node(self) -> None:
        dialog = NodeDialog(parent=self)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.result_node is not None:
            self.controller.add_node(dialog.result_node)

    def edit_selected(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        dialog = NodeDialog(self.controller.node(name), parent=self)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.result_node is not None:
            self.controller.edit_node(name, dialog.result_node)

    def remove_selected(self) -> None:
        """Ask first: removing forgets the node's address, login and tier (nodes.yaml)."""
        name = self.selected_name()
        if name is None:
            return
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Remove node")
        box.setText(f"Remove the node “{name}”?")
        box.setInformativeText("Its address, login and tier are forgotten. Images it is making "
                               "now go back to the queue for the other nodes.")
        remove = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(
            lambda button: self.controller.remove_node(name) if button is remove else None)
        self.remove_question = box
        box.open()  # not exec(): the window (and the queue's progress) keeps running

    def probe_selected(self) -> None:
        self.controller.probe(self.selected_name())

    # --- view updates ------------------------------------------------------------------------------

    def _place_tier_combos(self) -> None:
        self.tier_combos = {}
        for row, node in enumerate(self.controller.model.rows()):
            combo = tier_combo(node.config.tier)
            combo.setObjectName(f"TierCombo-{node.config.name}")
            name = node.config.name
            combo.activated.connect(lambda _i, name=name, combo=combo:
                                    self.controller.set_tier(name, combo.currentData()))
            self.table.setIndexWidget(self.controller.model.index(row, TIER_COLUMN), combo)
            self.tier_combos[name] = combo

    def _sync_tier_combos(self, *_changed: object) -> None:
        """The combos follow the registry (an edit in the dialog, a save undone)."""
        for node in self.controller.model.rows():
            combo = self.tier_combos.get(node.config.name)
            if combo is None:
                self._place_tier_combos()
                return
            if combo.currentData() != node.config.tier:
                combo.setCurrentIndex(list(NodeTier).index(node.config.tier))

    def _update_buttons(self) -> None:
        chosen = self.selected_name() is not None
        self.edit_button.setEnabled(chosen)
        self.remove_button.setEnabled(chosen)
        self.empty_hint.setVisible(not self.controller.model.rows())
        server = self.controller.unlisted_settings_server()
        if server is not None:
            self.server_hint.setText(f"The server in Settings ({server.url}) is not a node, so "
                                     "the queue does not use it while nodes are listed.")
        self.server_row.setVisible(server is not None)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        self._update_buttons()  # the Settings server may have changed meanwhile

    def _show_plan(self, plan) -> None:
        if plan is None or not plan.rows:
            self.plan_label.setText("Nothing is queued.")
            return
        nodes = sorted({r.node for r in plan.rows if r.node})
        text = (f"Makespan {format_seconds(plan.makespan)} over {plural(len(nodes), 'node')} "
                f"(no plan can beat {format_seconds(plan.lower_bound)}).")
        if plan.unassignable:
            text += f" {plural(len(plan.unassignable), 'image')} no node can take — see the last rows."
        self.plan_label.setText(text)
        for column in range(5):  # the last column (why not) stretches
            self.plan_table.resizeColumnToContents(column)
