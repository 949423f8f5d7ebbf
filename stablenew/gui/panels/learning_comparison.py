"""ComparisonView: the learning run's grid — one column per value, one row per seed — rated by
keyboard (1–5 stars, 0 clears, B picks the best of the row, arrows move) or by mouse."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QImage, QImageReader, QKeyEvent, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from stablenew.gui.widgets.layouts import clear_layout
from stablenew.gui.widgets.stars import StarRating

if TYPE_CHECKING:
    from stablenew.controller.learning_controller import LearningController
    from stablenew.controller.learning_runs import LearningRunController, LearningRunResult, RunCell

THUMB = 176
#: A big grid is built a few cards per turn of the event loop, each turn stopping once it has
#: worked this long: a card costs a few milliseconds in the styled window, and a turn over
#: 50 ms freezes the window (issue 18).
BUILD_TURN_S = 0.010
_STAR_KEYS = {Qt.Key.Key_0: 0, Qt.Key.Key_1: 1, Qt.Key.Key_2: 2, Qt.Key.Key_3: 3, Qt.Key.Key_4: 4,
              Qt.Key.Key_5: 5}
_MOVES = {Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, 1), Qt.Key.Key_Up: (-1, 0),
          Qt.Key.Key_Down: (1, 0)}


def stars_text(rating: int | None) -> str:
    if not rating:
        return "not rated"
    return "★" * rating + "☆" * (5 - rating)


class _CellCard(QFrame):
    """One image of the grid with its stars, tags and any error."""

    clicked = Signal(int, int)
    rated = Signal(int, int, int)  # row, column, stars (0 clears)

    def __init__(self, row: int, column: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LearningCell")
        self.row, self.column = row, column
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setLineWidth(2)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setProperty("selected", False)  # the window's style sheet draws the border
        self._path: str | None = None
        self.image = QLabel("waiting…")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setFixedSize(QSize(THUMB, THUMB))
        self.stars = StarRating()
        # The grid takes the keys (arrows, 1–5, B): a click on a star rates without taking them.
        self.stars.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.stars.rated.connect(lambda stars: self.rated.emit(self.row, self.column, stars))
        self.caption = QLabel()
        self.caption.setObjectName("LearningCellCaption")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.image)
        layout.addWidget(self.stars, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.caption)

    def show_cell(self, cell: RunCell, best: bool) -> bool:
        """Show *cell*'s stars, tags and error; True when its image is new and is to be read
        (off the Qt thread: see `ComparisonView._read_image`), then given to `show_image`."""
        new_image = bool(cell.path) and cell.path != self._path
        if new_image:
            self._path = cell.path
        elif cell.error:
            self.image.setText("not made")
        self.stars.set_stars(cell.rating or 0)
        self.stars.setEnabled(bool(cell.path))
        parts = []
        if best:
            parts.append("best of this row")
        if cell.tags:
            parts.append(", ".join(cell.tags))
        if cell.error:
            parts.append(cell.error)
        self.caption.setText("\n".join(parts) or " ")
        self.setToolTip(cell.error or (cell.path or ""))
        self.setAccessibleName(f"{stars_text(cell.rating)}; {', '.join(cell.tags)}")
        return new_image

    def show_image(self, path: str, image: QImage) -> None:
        if path != self._path:
            return  # read for an image the card no longer shows
        if image.isNull():
            self.image.setText("image missing")
        else:
            self.image.setPixmap(QPixmap.fromImage(image))

    def set_selected(self, on: bool) -> None:
        if self.property("selected") == on:
            return
        # A property the window's style sheet reads (#LearningCell[selected="true"]): a sheet
        # of the card's own would be parsed and applied to its every child on each move.
        self.setProperty("selected", on)
        self.style().unpolish(self)
        self.style().polish(self)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt name)
        self.clicked.emit(self.row, self.column)
        super().mousePressEvent(event)


def read_thumbnail(source: str) -> QImage:
    """The image at *source* scaled to fit a card (a null QImage when it cannot be read): a
    file read and a decode, for a worker thread (QImage, unlike QPixmap, may be made there)."""
    reader = QImageReader(source)
    size = reader.size()
    if size.isValid():
        reader.setScaledSize(size.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio))
    return reader.read()


class _Reads(QObject):
    """Carries each image read on the view's pool back to the Qt thread."""

    ready = Signal(int, int, str, QImage)  # row, column, path, image (null: unreadable)


def _read(row: int, column: int, path: str, source: str, sink: _Reads) -> None:
    sink.ready.emit(row, column, path, read_thumbnail(source))  # queued to the Qt thread


class ComparisonView(QWidget):
    """The comparison grid of the current learning run, bound to a LearningRunController
    (ratings and tags go to the LearningController)."""

    def __init__(self, runs: LearningRunController, learning: LearningController,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ComparisonView")
        self.setAccessibleName("Learning run comparison")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.controller = runs
        self.learning = learning
        self._run: LearningRunResult | None = None
        self._cards: dict[tuple[int, int], _CellCard] = {}
        self._shape: tuple[object, ...] = ()  # the run, values and seeds the grid is built for
        self.selected = (0, 0)
        # The grid's headers and cards still to be made, a few per turn of the loop.
        self._to_build: deque[Callable[[], None]] = deque()
        self._build_timer = QTimer(self)
        self._build_timer.setInterval(0)
        self._build_timer.timeout.connect(self._build_some)
        # The images are read on a pool of the view's own: its thread starts without holding
        # up the Qt thread (a Python thread's start waits for it to run), and a read under way
        # is waited for when the view goes.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._reads = _Reads(self)
        self._reads.ready.connect(self._show_image)

        self.title = QLabel("No learning run yet — choose a setting above and start one.")
        self.title.setObjectName("LearningRunTitle")
        self.title.setWordWrap(True)
        self.earlier = QComboBox()
        self.earlier.setAccessibleName("Earlier learning runs")
        self.earlier.setToolTip("Open an earlier learning run to look at or rate its images again")
        self.earlier.addItem("Earlier runs…", None)
        self.earlier.activated.connect(self._open_earlier)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.earlier)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setSpacing(8)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.grid_host)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.scores = QLabel()
        self.scores.setWordWrap(True)
        self.scores.setObjectName("LearningRunScores")

        self.tag_box = QComboBox()
        tag_line = QLineEdit()  # setLineEdit makes the box editable; we keep a typed handle
        tag_line.setPlaceholderText("Tag the selected image, e.g. too noisy")
        self.tag_box.setLineEdit(tag_line)
        self.tag_box.addItems(learning.known_tags())
        self.tag_box.setCurrentText("")
        self.tag_box.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        tag_line.returnPressed.connect(self.tag_selected)
        tag_button = QPushButton("Add tag")
        tag_button.clicked.connect(self.tag_selected)
        best_button = QPushButton("Pick the best (B)")
        best_button.setToolTip("Mark the selected image as the best of its row (rates it 5 stars)")
        best_button.clicked.connect(self.pick_best)
        help_text = QLabel("Keys: arrows move · 1–5 rate · 0 clears · B best of row · T tag")
        help_text.setObjectName("HintLabel")
        tools = QHBoxLayout()
        tools.addWidget(self.tag_box, 1)
        tools.addWidget(tag_button)
        tools.addWidget(best_button)

        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.scores)
        layout.addLayout(tools)
        layout.addWidget(help_text)

        runs.run_changed.connect(self.show_run)
        runs.progress_changed.connect(self._progress)
        runs.runs_changed.connect(self._set_runs)
        if runs.run_result is not None:
            self.show_run(runs.run_result)

    # --- showing --------------------------------------------------------------------------

    def _set_runs(self, runs: list) -> None:
        self.earlier.clear()
        self.earlier.addItem("Earlier runs…", None)
        for run_id, words in runs:
            self.earlier.addItem(words, run_id)

    def _open_earlier(self, index: int) -> None:
        run_id = self.earlier.itemData(index)
        if run_id and not self.controller.running:
            self.controller.open_run(run_id)
            self.setFocus()

    def show_run(self, run: LearningRunResult | None) -> None:
        self._run = run
        if run is None:
            self._clear()
            return
        shape = (run.run_id, run.values, run.seeds)
        if shape != self._shape:
            self._build(run)
            self._shape = shape
        for cell in run.cells:
            card = self._cards.get((cell.row, cell.column))
            if card is not None and card.show_cell(cell, run.best.get(cell.row) == cell.column):
                self._read_image(cell)
        parts = []
        for score in run.scores():
            mean = f"{score.mean:.1f}★ ({score.rated} rated)" if score.mean is not None else "not rated"
            best = f", best of {score.picked} row{'s' if score.picked != 1 else ''}" if score.picked else ""
            parts.append(f"{score.label}: {mean}{best}")
        self.scores.setText("This run — " + " · ".join(parts))
        if not self.controller.running:
            self.title.setText(self._title(run))

    def _title(self, run: LearningRunResult) -> str:
        states = {"completed": "finished", "partial": "finished with some images missing",
                  "cancelled": "stopped", "failed": "failed", "running": "running"}
        what = f"Learning run on {run.parameter.replace('_', ' ')}"
        return (f"{what} — {states.get(run.state.value, run.state.value)}. Rate each image "
                "(1–5), or press B on the best of each row.")

    def _progress(self, text: str, _fraction: float) -> None:
        if text:
            self.title.setText(text)

    def _clear(self) -> None:
        self._build_timer.stop()
        self._to_build.clear()
        clear_layout(self.grid)
        self._cards.clear()
        self._shape = ()
        self.scores.clear()

    @property
    def building(self) -> bool:
        """True while some headers or cards of the grid are still to be made."""
        return bool(self._to_build)

    def _build(self, run: LearningRunResult) -> None:
        """Lay out the grid for *run*: its headers and cards are made a few per turn of the
        event loop (`_build_some`), each card showing its cell as it comes."""
        self._clear()
        self.selected = (0, 0)
        for column, label in enumerate(run.column_labels):
            self._to_build.append(partial(self._add_label, f"<b>{label}</b>", 0, column + 1))
        for row, seed in enumerate(run.seeds):
            self._to_build.append(partial(self._add_label, f"Image {row + 1}\nseed {seed}", row + 1, 0))
            for column in range(len(run.values)):
                self._to_build.append(partial(self._add_card, row, column))
        self._build_timer.start()  # from the next turn: this one may have done much already

    def _build_some(self) -> None:
        """Make the next headers and cards until this turn of the loop has taken BUILD_TURN_S."""
        started = time.monotonic()
        while self._to_build:
            self._to_build.popleft()()
            if time.monotonic() - started > BUILD_TURN_S:
                break
        if not self._to_build:
            self._build_timer.stop()

    def _add_label(self, text: str, row: int, column: int) -> None:
        label = QLabel(text, self.grid_host)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.grid.addWidget(label, row, column)

    def _add_card(self, row: int, column: int) -> None:
        # Made inside the grid's widget: a card made alone would be styled twice, before and
        # after it joins the window.
        card = _CellCard(row, column, self.grid_host)
        card.clicked.connect(self.select)
        card.rated.connect(self._rate_cell)
        self._cards[(row, column)] = card
        self.grid.addWidget(card, row + 1, column + 1)
        card.set_selected((row, column) == self.selected)
        run = self._run
        if run is not None:
            try:
                cell = run.cell(row, column)
            except KeyError:
                return
            if card.show_cell(cell, run.best.get(row) == column):
                self._read_image(cell)

    def _read_image(self, cell: RunCell) -> None:
        # The runner's small JPEG thumbnail when there is one, read off the Qt thread.
        if not cell.path:
            return  # show_cell asks only for cells with an image
        self._pool.start(partial(_read, cell.row, cell.column, cell.path, cell.thumbnail or cell.path,
                                 self._reads))

    def _show_image(self, row: int, column: int, path: str, image: QImage) -> None:
        card = self._cards.get((row, column))
        if card is not None:
            card.show_image(path, image)

    # --- selecting and rating -------------------------------------------------------------

    def select(self, row: int, column: int) -> None:
        if (row, column) in self._cards:
            self.selected = (row, column)
            self._highlight()
            self.setFocus()

    def _highlight(self) -> None:
        for key, card in self._cards.items():
            card.set_selected(key == self.selected)  # restyles only the cards that change

    def selected_cell(self) -> RunCell | None:
        if self._run is None:
            return None
        try:
            return self._run.cell(*self.selected)
        except KeyError:
            return None

    def _rate_cell(self, row: int, column: int, stars: int) -> None:
        self.select(row, column)
        self.rate_selected(stars)

    def rate_selected(self, stars: int) -> None:
        cell = self.selected_cell()
        if cell is not None and cell.path:
            self.learning.rate(cell.path, stars)

    def pick_best(self) -> None:
        if self._run is not None:
            self.controller.pick_best(*self.selected)

    def tag_selected(self) -> None:
        cell = self.selected_cell()
        text = self.tag_box.currentText().strip()
        if cell is not None and cell.path and text:
            self.learning.tag(cell.path, text)
            self.tag_box.setCurrentText("")
            self.setFocus()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt name)
        key = Qt.Key(event.key())
        if key in _STAR_KEYS:
            self.rate_selected(_STAR_KEYS[key])
        elif key in _MOVES and self._run is not None:
            d_row, d_col = _MOVES[key]
            row = min(max(self.selected[0] + d_row, 0), len(self._run.seeds) - 1)
            column = min(max(self.selected[1] + d_col, 0), len(self._run.values) - 1)
            self.select(row, column)
        elif key in (Qt.Key.Key_B, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.pick_best()
        elif key == Qt.Key.Key_T:
            self.tag_box.setFocus()
        else:
            super().keyPressEvent(event)
