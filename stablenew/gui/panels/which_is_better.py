"""WhichIsBetterPanel: two images side by side, ←/→ or "same"; the next experiment with its
Queue button, and the recommended values with how sure StableNew is of each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from stablenew.gui.widgets.image_view import ImageView
from stablenew.gui.widgets.notice import NoticeBanner

if TYPE_CHECKING:
    from stablenew.controller.taste_controller import (
        NextExperiment,
        PairShown,
        PresetValue,
        TasteController,
    )

_SAME_KEYS = (Qt.Key.Key_S, Qt.Key.Key_Down, Qt.Key.Key_Equal, Qt.Key.Key_Space)


class WhichIsBetterPanel(QWidget):
    """The pairwise-choice mode of the learning room, bound to a TasteController."""

    def __init__(self, controller: TasteController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("WhichIsBetterPanel")
        self.controller = controller
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.notice = NoticeBanner()
        self.notice.dismissed.connect(controller.clear_error)

        # A choice, not free text: a misspelt pack would make an empty taste model.
        self.pack_box = QComboBox()
        self.pack_box.setToolTip("Compare and learn within one prompt pack, or all together")
        self._fill_packs(controller.packs)
        self.pack_box.activated.connect(self._pack_chosen)
        top = QHBoxLayout()
        top.addWidget(QLabel("Pack:"))
        top.addWidget(self.pack_box, 1)

        self.question = QLabel("Which is better? Press ← or →, or S if they are the same.")
        self.question.setWordWrap(True)
        self.left = ImageView("Looking for two images to compare…")
        self.right = ImageView("")
        images = QHBoxLayout()
        images.addWidget(self.left, 1)
        images.addWidget(self.right, 1)
        self.left_button = QPushButton("← Left is better")
        self.same_button = QPushButton("Same")
        self.right_button = QPushButton("Right is better →")
        for button, outcome in ((self.left_button, "left"), (self.same_button, "same"),
                                (self.right_button, "right")):
            button.clicked.connect(lambda _=False, o=outcome: self.choose(o))
            button.setEnabled(False)
        self.same_button.setToolTip("Neither is better: that says the difference does not matter")
        choice_row = QHBoxLayout()
        choice_row.addWidget(self.left_button)
        choice_row.addWidget(self.same_button)
        choice_row.addWidget(self.right_button)
        self.counter = QLabel("")
        self.counter.setObjectName("MutedLabel")
        self._kept = 0

        next_box = QGroupBox("Next experiment")
        self.suggestion = QLabel("Working out what to try next…")
        self.suggestion.setWordWrap(True)
        self.queue_button = QPushButton("Queue it")
        self.queue_button.setEnabled(False)
        self.queue_button.clicked.connect(
            lambda: controller.queue_suggestion(switch_to_active=True))
        self._label_queue_button()
        next_row = QHBoxLayout(next_box)
        next_row.addWidget(self.suggestion, 1)
        next_row.addWidget(self.queue_button)

        self.recommended = QLabel("")
        self.recommended.setWordWrap(True)
        self.recommended.setToolTip("Shown, never applied: save it as a preset from the Insights "
                                    "tab when you want it")

        layout = QVBoxLayout(self)
        layout.addWidget(self.notice)
        layout.addLayout(top)
        layout.addWidget(self.question)
        layout.addLayout(images, 1)
        layout.addLayout(choice_row)
        layout.addWidget(self.counter)
        layout.addWidget(next_box)
        layout.addWidget(self.recommended)

        controller.packs_changed.connect(self._fill_packs)
        controller.pair_changed.connect(self._show_pair)
        controller.suggestion_changed.connect(self._show_suggestion)
        controller.recommendation_changed.connect(self._show_recommendation)
        controller.choice_recorded.connect(self._count)
        controller.queued.connect(lambda text: self.notice.show_notice(text, level="info"))
        controller.error_changed.connect(self.notice.show_error)
        controller.mode_changed.connect(self._label_queue_button)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt name)
        """Shown: the model is refitted and a pair looked for now (images and ratings may have
        come in since it was last shown), never while nobody looks."""
        super().showEvent(event)
        self.controller.refresh()
        if self.controller.pair is None:
            self.controller.next_pair()

    def choose(self, outcome: str) -> None:
        if self.left_button.isEnabled():
            self._enable(False)  # until the next pair is in
            self.controller.choose(outcome)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt name)
        key = event.key()
        if key == Qt.Key.Key_Left:
            self.choose("left")
        elif key == Qt.Key.Key_Right:
            self.choose("right")
        elif key in _SAME_KEYS:
            self.choose("same")
        else:
            super().keyPressEvent(event)

    def _fill_packs(self, packs: list[str]) -> None:
        """All packs, then each pack there are images of; the pack chosen stays chosen."""
        chosen = self.controller.pack
        box = self.pack_box
        box.blockSignals(True)
        box.clear()
        box.addItem("All packs", None)
        for pack in packs:
            box.addItem(pack or "Images without a pack", pack)
        if chosen is not None and chosen not in packs:
            box.addItem(chosen or "Images without a pack", chosen)  # its images went; keep it
        box.setCurrentIndex(0 if chosen is None else 1 + [*packs, chosen].index(chosen))
        box.blockSignals(False)

    def _pack_chosen(self, index: int) -> None:
        pack = self.pack_box.itemData(index)
        if pack != self.controller.pack:
            self.controller.set_pack(pack)

    def _enable(self, on: bool) -> None:
        for button in (self.left_button, self.same_button, self.right_button):
            button.setEnabled(on)

    def _show_pair(self, shown: PairShown | None) -> None:
        if shown is None:
            self.left.set_image(None)
            self.right.set_image(None)
            self.left.set_placeholder("Fewer than two images to compare yet: make a few "
                                      "(a learning run is a good way).")
            self._enable(False)
            return
        self.left.set_decoded(shown.left)
        self.right.set_decoded(shown.right)
        self._enable(True)

    def _count(self, _choice: object) -> None:
        self._kept += 1
        self.counter.setText(f"{self._kept} choice{'s' if self._kept != 1 else ''} kept "
                             "this session")

    def _label_queue_button(self) -> None:
        # The button says what one click will do: in Passive (or Off) it also switches
        # learning to Active, which learning runs need.
        if self.controller.needs_active_mode:
            self.queue_button.setText("Switch to Active and queue")
            self.queue_button.setToolTip("Learning runs need the Active mode: switch learning to "
                                         "Active and queue this run on your current settings")
        else:
            self.queue_button.setText("Queue it")
            self.queue_button.setToolTip("Queue this learning run on your current settings; "
                                         "rate or compare its images when they are made")

    def _show_suggestion(self, suggestion: NextExperiment | None) -> None:
        self.suggestion.setText(suggestion.text if suggestion is not None else
                                "Nothing to suggest yet.")
        self.queue_button.setEnabled(suggestion is not None)

    def _show_recommendation(self, values: list[PresetValue]) -> None:
        if not values:
            self.recommended.setText("Recommended settings: none yet — StableNew is not sure "
                                     "enough of any value.")
            return
        self.recommended.setText("Recommended settings: " + "; ".join(v.words() for v in values)
                                 + ". Nothing is changed until you save it as a preset.")
