"""LearningPanel: learning mode, the learning-run builder, the comparison grid and insights."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from stablenew.gui.panels.learning_comparison import ComparisonView
from stablenew.gui.panels.learning_insights import InsightsPanel
from stablenew.gui.widgets.notice import NoticeBanner

if TYPE_CHECKING:
    from stablenew.controller.learning_controller import LearningController
    from stablenew.controller.taste_controller import TasteController


class LearningPanel(QWidget):
    """Everything of the learning room in one panel, bound to a LearningController."""

    def __init__(self, controller: LearningController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LearningPanel")
        self.controller = controller
        self.runs = runs = controller.runs
        self.notice = NoticeBanner()
        self.notice.dismissed.connect(controller.clear_error)

        words = controller.mode_words()
        self.mode_box = QComboBox()
        self.mode_box.setAccessibleName("Learning mode")
        for value, title in (("off", "Off"), ("passive", "Passive"), ("active", "Active")):
            self.mode_box.addItem(title, value)
            self.mode_box.setItemData(self.mode_box.count() - 1, words[value],
                                      Qt.ItemDataRole.ToolTipRole)
        self.mode_words = QLabel()
        self.mode_words.setWordWrap(True)
        self.mode_box.currentIndexChanged.connect(self._mode_chosen)
        mode_row = QHBoxLayout()
        mode_row.addWidget(QLabel("Learning:"))
        mode_row.addWidget(self.mode_box)
        mode_row.addWidget(self.mode_words, 1)

        # Said in place, not only in a tooltip: why the run builder is greyed out, and the way on.
        self.passive_hint = QLabel("Learning runs need the Active mode: Passive only keeps your "
                                   "images and ratings.")
        self.passive_hint.setObjectName("HintLabel")
        self.passive_hint.setWordWrap(True)
        self.switch_button = QPushButton("Switch to Active")
        self.switch_button.setToolTip("Offer guided comparisons; your images are kept as in Passive")
        self.switch_button.clicked.connect(self._switch_to_active)
        hint_row = QHBoxLayout()
        hint_row.addWidget(self.passive_hint, 1)
        hint_row.addWidget(self.switch_button)

        self.plan_box = QGroupBox("Learning run — compare one setting on the same seeds")
        self.parameter_box = QComboBox()
        for key, label in runs.parameter_choices():
            self.parameter_box.addItem(label, key)
        self.parameter_box.currentIndexChanged.connect(self._parameter_chosen)
        self.lora_box = QComboBox()
        lora_line = QLineEdit()  # setLineEdit makes the box editable; we keep a typed handle
        lora_line.setPlaceholderText("LoRA name, as in <lora:name:weight>")
        self.lora_box.setLineEdit(lora_line)
        self.values_edit = QLineEdit()
        self.values_edit.setPlaceholderText("Values, separated by commas")
        self.values_edit.setToolTip("2 to 10 values; each becomes one column of the comparison")
        self.images_spin = QSpinBox()
        self.images_spin.setRange(1, 3)
        self.images_spin.setValue(3)
        self.images_spin.setToolTip("Images per value: one row per seed, the same seeds for "
                                    "every value. With 3, one rated run can already show a "
                                    "clear winner; with fewer, insights wait for more ratings.")
        # The known packs to choose from (a typo would record the run under a pack nobody
        # uses); a new name may be typed, and the line below says that it is a new pack.
        self.pack_box = QComboBox()
        self.pack_box.setObjectName("LearningRunPack")
        self.pack_box.setEditable(True)
        self.pack_box.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        pack_line = self.pack_box.lineEdit()
        assert pack_line is not None
        pack_line.setPlaceholderText("Optional: the pack these insights belong to")
        self.pack_box.setToolTip("The pack whose insights this run adds to: one of yours, or a "
                                 "new name for a new pack.")
        self.pack_box.editTextChanged.connect(self._show_pack_words)
        self.pack_words = QLabel()
        self.pack_words.setObjectName("HintLabel")
        self.pack_words.setWordWrap(True)
        self.pack_words.setVisible(False)
        self._packs: list[str] = []
        self._pack_default = ""  # the current pack, filled in until the user types another
        self._taste: TasteController | None = None
        self.start_button = QPushButton("Start learning run")
        self.start_button.clicked.connect(self.start)
        self.start_button.setToolTip("The comparison is one job in the queue (see the Queue tab): "
                                     "it starts at once, ahead of queued batches and even while "
                                     "the queue is paused. If StableNew stops meanwhile, the "
                                     "queue finishes it later.")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the learning run: its images still waiting are "
                                    "cancelled and the one being made is interrupted on the "
                                    "server. The images made so far stay in the grid.")
        self.stop_button.clicked.connect(runs.cancel_learning_run)
        self.stop_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress_label = QLabel()
        form = QFormLayout()
        form.addRow("Setting to compare", self.parameter_box)
        form.addRow("LoRA", self.lora_box)
        self.lora_label = form.labelForField(self.lora_box)
        form.addRow("Values", self.values_edit)
        form.addRow("Images per value", self.images_spin)
        form.addRow("Pack", self.pack_box)
        form.addRow("", self.pack_words)
        run_row = QHBoxLayout()
        run_row.addWidget(self.start_button)
        run_row.addWidget(self.stop_button)
        run_row.addWidget(self.progress, 1)
        plan_layout = QVBoxLayout(self.plan_box)
        plan_layout.addLayout(form)
        plan_layout.addLayout(run_row)
        plan_layout.addWidget(self.progress_label)

        self.comparison = ComparisonView(runs, controller)
        self.insights = InsightsPanel(controller.insights)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.comparison, "Compare")
        self.tabs.addTab(self.insights, "Insights")

        layout = QVBoxLayout(self)
        layout.addWidget(self.notice)
        layout.addLayout(mode_row)
        layout.addLayout(hint_row)
        layout.addWidget(self.plan_box)
        layout.addWidget(self.tabs, 1)

        controller.mode_changed.connect(self._show_mode)
        runs.running_changed.connect(self._show_running)
        runs.progress_changed.connect(self._show_progress)
        controller.error_changed.connect(self.notice.show_error)
        self._show_mode(controller.mode.value)
        self._parameter_chosen(0)
        controller.insights.refresh_insights()
        runs.refresh_runs()

    def _mode_chosen(self, _index: int) -> None:
        self.controller.set_mode(self.mode_box.currentData())

    def _show_mode(self, mode: str) -> None:
        index = self.mode_box.findData(mode)
        if index != self.mode_box.currentIndex():
            self.mode_box.blockSignals(True)
            self.mode_box.setCurrentIndex(index)
            self.mode_box.blockSignals(False)
        self.mode_words.setText(self.controller.mode_words()[mode])
        active = mode == "active"
        self.plan_box.setEnabled(active)
        self.plan_box.setToolTip("" if active else "Switch learning to Active to run guided comparisons")
        if not active:
            self.passive_hint.setText(
                "Learning runs need the Active mode: " + (
                    "Passive only keeps your images and ratings." if mode == "passive" else
                    "learning is Off, so nothing is kept."))
        self.passive_hint.setVisible(not active)
        self.switch_button.setVisible(not active)

    def _switch_to_active(self) -> None:
        self.controller.set_mode("active")

    def _parameter_chosen(self, _index: int) -> None:
        key = self.parameter_box.currentData()
        self.values_edit.setText(self.runs.suggested_values(key) if key else "")
        lora = key == "lora:"
        self.lora_box.setVisible(lora)
        self.lora_label.setVisible(lora)
        if lora:
            current = self.lora_box.currentText()
            self.lora_box.clear()
            self.lora_box.addItems(self.runs.loras_in_prompt())
            if current:
                self.lora_box.setCurrentText(current)

    def parameter_key(self) -> str:
        key = self.parameter_box.currentData()
        return f"lora:{self.lora_box.currentText().strip()}" if key == "lora:" else key

    def add_taste(self, taste: TasteController) -> None:
        """The "Which is better?" tab; its packs are the known packs a run's pack is chosen
        from, and the pack chosen there is the run's pack until the user types another."""
        from stablenew.gui.panels.which_is_better import WhichIsBetterPanel

        self.which = WhichIsBetterPanel(taste)
        self.tabs.addTab(self.which, "Which is better?")
        self._taste = taste
        taste.packs_changed.connect(self._fill_packs)
        self.which.pack_box.activated.connect(lambda _index: self.follow_pack(taste.pack))
        self._fill_packs(taste.packs)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt name)
        """Shown: the known packs are read again (images may have come in since)."""
        super().showEvent(event)
        if self._taste is not None:
            self._taste.refresh()

    def follow_pack(self, pack: str | None) -> None:
        """The current pack changed (chosen in "Which is better?"): the run's pack follows
        unless the user typed one of their own."""
        typed = self.pack_box.currentText().strip()
        if typed == self._pack_default or not typed:
            self._pack_default = pack or ""
            self.pack_box.setEditText(self._pack_default)

    def _fill_packs(self, packs: list[str]) -> None:
        typed = self.pack_box.currentText()
        self._packs = [p for p in packs if p]
        self.pack_box.blockSignals(True)
        self.pack_box.clear()
        self.pack_box.addItems(self._packs)
        self.pack_box.blockSignals(False)
        self.pack_box.setEditText(typed)
        self.follow_pack(self._taste.pack if self._taste is not None else None)
        self._show_pack_words(self.pack_box.currentText())

    def _show_pack_words(self, text: str) -> None:
        """Says so when the typed pack is not one of the known ones (and which it may be)."""
        name = text.strip()
        words = ""
        if name and name not in self._packs:
            near = difflib.get_close_matches(name, self._packs, n=1, cutoff=0.75)
            near += [p for p in self._packs if p.casefold() == name.casefold()][:1]
            words = (f"“{name}” is a new pack: no images are recorded under it yet."
                     + (f" Did you mean “{near[-1]}”?" if near else ""))
        self.pack_words.setText(words)
        self.pack_words.setVisible(bool(words))

    def start(self) -> bool:
        pack = self.pack_box.currentText().strip() or None
        started = self.runs.start_learning_run(
            self.parameter_key(), self.values_edit.text(),
            images_per_value=self.images_spin.value(), pack=pack)
        if started:
            self.tabs.setCurrentWidget(self.comparison)
            self.comparison.setFocus()
        return started

    def _show_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        if not running:
            self.progress.setValue(1000 if self.progress.value() else 0)

    def _show_progress(self, text: str, fraction: float) -> None:
        self.progress_label.setText(text)
        self.progress.setValue(int(fraction * 1000))
