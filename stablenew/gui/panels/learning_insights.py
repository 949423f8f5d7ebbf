"""InsightsPanel: what the ratings say per pack — summaries, numbers per value, tag advice,
the recommended preset (previewed, saved only on request) and the export of records."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from stablenew.controller.learning_insights import (
        ExportSummary,
        Insights,
        InsightsController,
        RecommendedPreset,
    )

_ALL = "__all__"


class InsightsPanel(QWidget):
    """Insights, recommendation and export for the learning store, bound to an InsightsController."""

    def __init__(self, controller: InsightsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("InsightsPanel")
        self.controller = controller

        self.pack_box = QComboBox()
        self.pack_box.setAccessibleName("Pack")
        self.pack_box.addItem("All packs", _ALL)
        self.pack_box.currentIndexChanged.connect(self._pack_chosen)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(controller.refresh_insights)
        top = QHBoxLayout()
        top.addWidget(QLabel("Insights for"))
        top.addWidget(self.pack_box, 1)
        top.addWidget(refresh)

        self.summary = QLabel("Rate a few images to see what works for you.")
        self.summary.setObjectName("InsightsSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.table = QTreeWidget()
        self.table.setHeaderLabels(["Setting / value", "Images", "Mean ★", "95% range"])
        self.table.setRootIsDecorated(True)
        self.table.setAlternatingRowColors(True)

        recommend_box = QGroupBox("Recommended settings")
        self.recommendation = QLabel("No recommendation yet.")
        self.recommendation.setWordWrap(True)
        self.preview_button = QPushButton("Preview")
        self.preview_button.setCheckable(True)
        self.preview_button.setToolTip("Show your current settings with these values set "
                                       "(nothing changes until you save and apply a preset)")
        self.preview_button.toggled.connect(self._toggle_preview)
        self.save_button = QPushButton("Save as preset…")
        self.save_button.clicked.connect(self._save_preset)
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setMaximumHeight(140)
        self.preview.hide()
        buttons = QHBoxLayout()
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.save_button)
        buttons.addStretch(1)
        box_layout = QVBoxLayout(recommend_box)
        box_layout.addWidget(self.recommendation)
        box_layout.addLayout(buttons)
        box_layout.addWidget(self.preview)

        self.copies = QCheckBox("Include small image copies")
        self.copies.setToolTip("Put 512-pixel JPEG copies in the zip instead of only file paths")
        export_button = QPushButton("Export records…")
        export_button.setToolTip("A zip with every record as JSONL and CSV and a README, for "
                                 "spreadsheets or an AI assistant. No passwords go in it.")
        export_button.clicked.connect(self._export)
        self.status = QLabel()
        self.status.setObjectName("HintLabel")
        bottom = QHBoxLayout()
        bottom.addWidget(export_button)
        bottom.addWidget(self.copies)
        bottom.addStretch(1)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(recommend_box)
        layout.addLayout(bottom)
        layout.addWidget(self.status)

        controller.insights_changed.connect(self.show_insights)
        controller.recommendation_changed.connect(self.show_recommendation)
        controller.packs_changed.connect(self._set_packs)
        controller.export_finished.connect(self._exported)
        controller.preset_saved.connect(lambda path: self.status.setText(f"Preset saved: {path}"))
        self.show_recommendation(controller.recommendation)
        if controller.current is not None:
            self.show_insights(controller.current)

    # --- packs ----------------------------------------------------------------------------

    def _set_packs(self, packs: list[str]) -> None:
        current = self.pack_box.currentData()
        self.pack_box.blockSignals(True)
        self.pack_box.clear()
        self.pack_box.addItem("All packs", _ALL)
        for pack in packs:
            self.pack_box.addItem(pack or "Images without a pack", pack)
        index = self.pack_box.findData(current)
        self.pack_box.setCurrentIndex(max(index, 0))
        self.pack_box.blockSignals(False)

    def _pack_chosen(self, _index: int) -> None:
        data = self.pack_box.currentData()
        self.controller.set_pack(None if data == _ALL else data)

    # --- showing --------------------------------------------------------------------------

    def summary_text(self) -> str:
        return self.summary.text()

    def show_insights(self, insights: Insights) -> None:
        lines = insights.lines()
        self.summary.setText("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines)
                             + "</ul>")
        self.summary.setToolTip("\n".join(lines))
        self.table.clear()
        for param in insights.parameters:
            head = QTreeWidgetItem([param.label, str(param.rated_images), "", ""])
            head.setToolTip(0, param.summary)
            for value in param.values:
                QTreeWidgetItem(head, [value.label, str(value.n), f"{value.mean:.2f}",
                                       f"{value.low:.1f}–{value.high:.1f}"])
            self.table.addTopLevelItem(head)
            head.setExpanded(True)
        for column in range(4):
            self.table.resizeColumnToContents(column)

    def show_recommendation(self, recommendation: RecommendedPreset | None) -> None:
        empty = recommendation is None or recommendation.empty
        lines = (["No recommendation yet: rate more images, or run a learning run."] if
                 recommendation is None else recommendation.describe())
        self.recommendation.setText("\n".join(lines))
        self.preview_button.setEnabled(not empty)
        self.save_button.setEnabled(not empty)
        if empty:
            self.preview_button.setChecked(False)
        elif self.preview_button.isChecked():
            self._toggle_preview(True)

    def _toggle_preview(self, on: bool) -> None:
        config = self.controller.preview_recommendation() if on else None
        self.preview.setVisible(on and config is not None)
        if config is not None:
            self.preview.setPlainText(config.to_yaml(only_changes=True))

    # --- actions --------------------------------------------------------------------------

    def _save_preset(self) -> None:
        pack = self.controller.pack
        default = f"Learned — {pack}" if pack else "Learned settings"
        name, ok = QInputDialog.getText(self, "Save as preset", "Preset name:", text=default)
        if ok and name.strip():
            self.controller.save_recommended_preset(name.strip())

    def _export(self) -> None:
        path, _filter = QFileDialog.getSaveFileName(self, "Export learning records",
                                                    "stablenew-learning.zip", "Zip files (*.zip)")
        if path:
            self.status.setText("Exporting…")
            self.controller.export(path, copies=self.copies.isChecked(), pack=self.controller.pack)

    def _exported(self, summary: ExportSummary) -> None:
        missing = f", {summary.images_missing} images missing" if summary.images_missing else ""
        self.status.setText(f"Exported {summary.records} records to {summary.path}{missing}.")
