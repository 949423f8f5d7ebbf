"""RandomizerPanel: prompt variants, wildcards and config axes, with the live exact count.

A self-contained widget over a RandomizerAdapter: the main window embeds it and, before
queueing, calls `confirm_large_run()` so a plan above the threshold is never started unasked.
The count it decides on is made on the adapter's worker, never on the Qt thread: when it is not
in yet, `confirm_large_run()` says "not now", and `run_requested` asks for Run again once it is.
"""

from __future__ import annotations

from PySide6.QtCore import QMetaMethod, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from stablenew.controller import randomizer_words
from stablenew.controller.randomizer_adapter import CONFIRM_THRESHOLD, RandomizerAdapter
from stablenew.gui.panels.randomizer_axes import AxesEditor
from stablenew.gui.widgets.notice import NoticeBanner


class RandomizerPanel(QWidget):
    """Variation settings and the preview of what a run will make."""

    #: Run was pressed before the count was in; it is in now: press Run again (no count waits).
    run_requested = Signal()

    def __init__(self, adapter: RandomizerAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.adapter = adapter
        self._run_waiting = False
        self.setObjectName("RandomizerPanel")

        self.enabled_box = QCheckBox("Make variations when I run")
        self.enabled_box.setToolTip("Off: Run makes the cards' settings once, as they are.")
        # Said in place while variations are off: the fields stay editable (typing into a box
        # that silently ignores keys is a trap), and this says what they do until it is ticked.
        self.off_hint = QLabel("Variations are off: Run makes the cards' settings once (choices "
                               "like {red|blue} in the card's prompt are picked at random for "
                               "each image). You can prepare everything here; turn them on to "
                               "use it.")
        self.off_hint.setObjectName("HintLabel")
        self.off_hint.setWordWrap(True)
        self.turn_on = QPushButton("Turn on")
        self.turn_on.clicked.connect(lambda: self.enabled_box.setChecked(True))

        self.template = QPlainTextEdit()
        self.template.setPlaceholderText(
            "Prompt with variants, e.g. a {red|blue|green} __animal__ at {dawn|dusk} "
            "(empty: the prompt from the card)")
        self.template.setMaximumHeight(90)
        self.template.setToolTip("{a|b} picks one, {2$$a|b|c} picks two, {2::a|1::b} weights, "
                                 "__name__ reads name.txt from your wildcards folder")
        self.negative = QLineEdit()
        self.negative.setPlaceholderText("Negative prompt with variants (empty: the card's)")
        self.matrix_box = QCheckBox("Prompt matrix (A1111): 'base|a|b' makes every subset")

        self.wildcards = QLineEdit()
        self.wildcards.setPlaceholderText("Your wildcards folder (the one sd-dynamic-prompts uses)")
        self.wildcards.setToolTip("Kept in Settings: __name__ in a prompt picks a line of name.txt here")
        self.browse = QPushButton("Choose…")
        self.browse.clicked.connect(self._choose_folder)

        self.mode = QComboBox()
        self.mode_hint = QLabel()
        self.mode_hint.setWordWrap(True)
        self.mode_hint.setObjectName("HintLabel")
        for value, title, hint in randomizer_words.modes():
            self.mode.addItem(title, value)
            self.mode.setItemData(self.mode.count() - 1, hint, Qt.ItemDataRole.ToolTipRole)
        self.random_count = QSpinBox()
        self.random_count.setRange(1, 1_000_000)
        self.random_count.setValue(10)
        self.random_count.setToolTip("How many variants random mode draws")

        self.axes = AxesEditor(randomizer_words.axis_kinds())

        self.images_per_variant = QSpinBox()
        self.images_per_variant.setRange(1, 1000)
        self.images_per_variant.setToolTip("How many images to make of each variant")
        self.max_images = QSpinBox()
        self.max_images.setRange(0, 10_000_000)
        self.max_images.setSpecialValueText("no limit")
        self.max_images.setToolTip("Stop after this many images (the count shows the limit)")
        self.seed_policy = QComboBox()
        self.seed_hint = QLabel()
        self.seed_hint.setWordWrap(True)
        self.seed_hint.setObjectName("HintLabel")
        for value, title, hint in randomizer_words.seed_policies():
            self.seed_policy.addItem(title, value)
            self.seed_policy.setItemData(self.seed_policy.count() - 1, hint,
                                         Qt.ItemDataRole.ToolTipRole)
        self.seed = QLineEdit()
        self.seed.setPlaceholderText("random (recorded)")
        self.seed.setToolTip("Same plan seed, same plan: random picks and seeds repeat exactly")

        self.count_label = QLabel("Nothing to vary yet.")
        self.count_label.setObjectName("CountLabel")
        self.count_label.setWordWrap(True)
        self.busy_label = QLabel("counting…")
        self.busy_label.hide()
        self.notice = NoticeBanner(self)
        self.preview = QListWidget()
        self.preview.setToolTip("The first variants, exactly as the run will make them")

        self._build_layout()
        self._connect()
        self._show_hints()

    # --- layout and wiring --------------------------------------------------------------------

    def _build_layout(self) -> None:
        folder = QHBoxLayout()
        folder.addWidget(self.wildcards, 1)
        folder.addWidget(self.browse)
        mode_row = QHBoxLayout()
        mode_row.addWidget(self.mode, 1)
        self.random_label = QLabel("draw")
        mode_row.addWidget(self.random_label)
        mode_row.addWidget(self.random_count)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed_policy, 1)
        seed_row.addWidget(QLabel("plan seed"))
        seed_row.addWidget(self.seed)

        form = QFormLayout()
        form.addRow("Template", self.template)
        form.addRow("Negative", self.negative)
        form.addRow("", self.matrix_box)
        form.addRow("Wildcards", folder)
        form.addRow("Mode", mode_row)
        form.addRow("", self.mode_hint)
        form.addRow("Axes", self.axes)
        form.addRow("Images per variant", self.images_per_variant)
        form.addRow("At most", self.max_images)
        form.addRow("Seeds", seed_row)
        form.addRow("", self.seed_hint)

        count_row = QHBoxLayout()
        count_row.addWidget(self.count_label, 1)
        count_row.addWidget(self.busy_label)
        layout = QVBoxLayout(self)
        off_row = QHBoxLayout()
        off_row.addWidget(self.off_hint, 1)
        off_row.addWidget(self.turn_on)
        layout.addWidget(self.enabled_box)
        layout.addLayout(off_row)
        layout.addLayout(form)
        layout.addWidget(self.notice)
        layout.addLayout(count_row)
        layout.addWidget(self.preview, 1)

    def _connect(self) -> None:
        a = self.adapter
        self.enabled_box.toggled.connect(a.set_enabled)
        self.template.textChanged.connect(lambda: a.set_template(self.template.toPlainText()))
        self.negative.textChanged.connect(a.set_negative_template)
        self.matrix_box.toggled.connect(a.set_prompt_matrix)
        self.wildcards.editingFinished.connect(lambda: a.set_wildcards_dir(self.wildcards.text()))
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.random_count.valueChanged.connect(a.set_random_count)
        self.axes.axes_changed.connect(a.set_axes)
        self.images_per_variant.valueChanged.connect(a.set_images_per_variant)
        self.max_images.valueChanged.connect(a.set_max_images)
        self.seed_policy.currentIndexChanged.connect(self._seed_policy_changed)
        self.seed.textChanged.connect(self._seed_changed)
        a.summary_changed.connect(self.count_label.setText)
        a.preview_changed.connect(self._show_preview)
        a.error_changed.connect(self._show_error)
        a.busy_changed.connect(self.busy_label.setVisible)
        a.enabled_changed.connect(self._enabled_changed)
        a.spec_loaded.connect(self._load_spec)
        a.exact_count_changed.connect(self._count_arrived)
        a.wildcards_changed.connect(self._show_wildcards)
        a.library_changed.connect(self.axes.set_library_text)
        self.axes.set_library_text(a.library_text())
        self._show_wildcards(a.wildcards_dir)
        self._enabled_changed(a.enabled)
        self._load_spec()

    def _load_spec(self) -> None:
        """Show the adapter's spec without echoing each widget change back to it."""
        spec = self.adapter.spec
        widgets = (self.template, self.negative, self.matrix_box, self.mode, self.random_count,
                   self.axes, self.images_per_variant, self.max_images, self.seed_policy,
                   self.seed)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self.template.setPlainText(spec.template or "")
            self.negative.setText(spec.negative_template or "")
            self.matrix_box.setChecked(spec.prompt_matrix)
            self.mode.setCurrentIndex(max(0, self.mode.findData(str(spec.mode))))
            self.random_count.setValue(spec.count or 10)
            self.axes.set_rows(self.adapter.axis_rows())
            self.images_per_variant.setValue(spec.images_per_variant)
            self.max_images.setValue(spec.max_images or 0)
            self.seed_policy.setCurrentIndex(max(0, self.seed_policy.findData(str(spec.seed_policy))))
            self.seed.setText("" if spec.seed is None else str(spec.seed))
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self._show_hints()

    def _mode_changed(self) -> None:
        mode = str(self.mode.currentData())
        self.adapter.set_mode(mode)
        if mode == "random":
            self.adapter.set_random_count(self.random_count.value())
        self._show_hints()

    def _seed_policy_changed(self) -> None:
        self.adapter.set_seed_policy(str(self.seed_policy.currentData()))
        self._show_hints()

    def _seed_changed(self, text: str) -> None:
        text = text.strip()
        if not text:
            self.adapter.set_seed(None)
        elif text.isdigit():
            self.adapter.set_seed(int(text))
        else:
            self._show_error("The plan seed is a whole number of 0 or more (empty: random).")

    def _show_hints(self) -> None:
        self.mode_hint.setText(str(self.mode.currentData(Qt.ItemDataRole.ToolTipRole) or ""))
        self.seed_hint.setText(str(self.seed_policy.currentData(Qt.ItemDataRole.ToolTipRole) or ""))
        random_mode = self.mode.currentData() == "random"
        self.random_label.setVisible(random_mode)
        self.random_count.setVisible(random_mode)

    def _enabled_changed(self, on: bool) -> None:
        self.enabled_box.setChecked(on)
        self.off_hint.setVisible(not on)
        self.turn_on.setVisible(not on)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose your wildcards folder",
                                                  self.wildcards.text())
        if folder:
            self.wildcards.setText(folder)
            self.adapter.set_wildcards_dir(folder)

    # --- adapter → view -----------------------------------------------------------------------

    def _show_wildcards(self, folder: object) -> None:
        """The folder in use: kept in Settings, so it is back after a restart or a Settings edit."""
        text = "" if folder is None else str(folder)
        if self.wildcards.text() != text:
            self.wildcards.setText(text)

    def _show_preview(self, rows: list) -> None:
        self.preview.clear()
        for row in rows:
            self.preview.addItem(f"{row.number}. {row.label}")
            item = self.preview.item(self.preview.count() - 1)
            tip = row.prompt if not row.negative_prompt else (
                f"{row.prompt}\n\nNegative: {row.negative_prompt}")
            item.setToolTip(tip)
        summary = self.adapter.summary
        if summary is not None and summary.variants > len(rows):
            self.preview.addItem(f"… and {summary.variants - len(rows):,} more variants")

    def _show_error(self, text: str) -> None:
        if text:
            self.notice.show_notice(text, level="error")
            self.count_label.setText("Fix the problem above to see the count.")
            self.preview.clear()  # the old variants are not what this spec would make
        else:
            self.notice.clear()

    # --- the run path -------------------------------------------------------------------------

    def confirm_large_run(self, images: int | None = None) -> bool:
        """True when the run may start now: small plans at once, large ones after the user agrees.

        False, without asking, while the count for the current settings is still being made
        (the user just typed, or the template is big): the count runs on the adapter's worker,
        and `run_requested` is emitted when it is in, so the run is asked for again then."""
        if images is None:
            if not self.adapter.count_ready:
                self._run_waiting = True
                self.adapter.request_count()
                self.count_label.setText("Counting the images before the run starts…")
                return False
            images = self.adapter.exact_count()
        if images is None or not self.adapter.needs_confirmation(images):
            return True
        box = self._confirm_box(images)
        return box.exec() == QMessageBox.StandardButton.Yes

    def cancel_waiting_run(self) -> None:
        """Forget a Run that is waiting for its count (the user pressed Stop)."""
        self._run_waiting = False

    def _count_arrived(self, _images: object) -> None:
        if not self._run_waiting or not self.adapter.count_ready:
            return
        self._run_waiting = False
        if self.isSignalConnected(QMetaMethod.fromSignal(self.run_requested)):
            # From the event loop rather than inside the adapter's signal: the run may ask first.
            QTimer.singleShot(0, self, self.run_requested.emit)
        else:
            self.notice.show_notice("The images are counted. Press Run again to start.",
                                    level="info")

    def _confirm_box(self, images: int) -> QMessageBox:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Start a large run?")
        box.setText(f"This will make {images:,} images (more than {CONFIRM_THRESHOLD}).")
        box.setInformativeText(f"That takes {self.adapter.pace.estimate_text(images)}. Start it?")
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        self._last_confirm_box = box  # tests reach the dialog through this
        return box
