"""GalleryFilterBar: the gallery's search box (debounced), order and filters, as the fields of one
gallery query (the controller makes the query of them)."""

from __future__ import annotations

import time

from PySide6.QtCore import QDate, QDateTime, QTime, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

DEBOUNCE_MS = 300  # typing pauses this long before the index is asked
#: (label, sort key, descending)
SORTS = (("Newest first", "date", True), ("Oldest first", "date", False),
         ("Name", "name", False), ("Largest first", "size", True),
         ("Best rated first", "rating", True), ("Lowest rated first", "rating", False))
FILTERS = ("tag", "model", "lora", "run", "pack", "node")
ANY = "Any"


class GalleryFilterBar(QWidget):
    """Search, sort and filter controls; `query_changed` carries the query's fields they describe
    (text, min_rating, tag, model, lora, run, pack, node, collection, since, until, sort,
    descending)."""

    query_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit()
        self.search.setObjectName("GallerySearch")
        self.search.setPlaceholderText("Search prompts and file names")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(80)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._emit)
        self.search.textChanged.connect(lambda _t: self._debounce.start())
        self.search.returnPressed.connect(self._emit)
        self.sort = QComboBox()
        self.sort.setToolTip("Order of the gallery")
        for label, *_ in SORTS:
            self.sort.addItem(label)
        self.sort.currentIndexChanged.connect(self._emit)
        self.filters_button = QPushButton("Filters")
        self.filters_button.setCheckable(True)
        self.filters_button.setToolTip(
            "Filter by rating, tag, model, LoRA, run, pack, node, type, date or collection")
        self.collection = QComboBox()
        self.collection.setToolTip("Show one collection (an album of your choice)")
        self.collection.addItem("All images", "")
        self.collection.currentIndexChanged.connect(self._emit)
        # Narrow columns shorten the combos' text rather than widen the window's right column.
        for combo in (self.sort, self.collection):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)
        # The panel's title goes first on this row (`title_row`): a short gallery keeps its rows.
        top = self.title_row = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.search, 1)
        top.addWidget(self.sort)
        top.addWidget(self.filters_button)

        self.panel = QWidget()
        grid = QGridLayout(self.panel)
        grid.setContentsMargins(0, 0, 0, 0)
        self.min_rating = QComboBox()
        self.min_rating.addItem("Any rating", 0)
        for stars in range(1, 6):
            self.min_rating.addItem("★" * stars + (" or more" if stars < 5 else ""), stars)
        self.min_rating.currentIndexChanged.connect(self._emit)
        grid.addWidget(QLabel("Rating"), 0, 0)
        grid.addWidget(self.min_rating, 0, 1)
        grid.addWidget(QLabel("Collection"), 2, 0)
        grid.addWidget(self.collection, 2, 1)
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.setToolTip(
            "Show the images of another folder too (A1111, ComfyUI or InvokeAI outputs, say): "
            "they can be searched, rated and tagged like yours")
        grid.addWidget(QLabel("Folders"), 3, 0)
        grid.addWidget(self.add_folder_button, 3, 1)
        self.media = QComboBox()
        for label, value in (("Any type", ""), ("PNG", "png"), ("JPEG", "jpeg"), ("WebP", "webp")):
            self.media.addItem(label, value)
        self.media.currentIndexChanged.connect(self._emit)
        grid.addWidget(QLabel("Type"), 1, 6)
        grid.addWidget(self.media, 1, 7)
        self.combos: dict[str, QComboBox] = {}
        for n, name in enumerate(FILTERS, start=1):
            combo = QComboBox()
            combo.setEditable(True)
            combo.addItem(ANY)
            combo.setObjectName(f"GalleryFilter_{name}")
            combo.currentTextChanged.connect(lambda _t: self._debounce.start())
            self.combos[name] = combo
            grid.addWidget(QLabel("LoRA" if name == "lora" else name.capitalize()), n // 4,
                           (n % 4) * 2)
            grid.addWidget(combo, n // 4, (n % 4) * 2 + 1)
        self.dates = QCheckBox("Made between")
        self.dates.toggled.connect(self._emit)
        today = QDate.currentDate()
        self.since = QDateEdit(today.addDays(-7))
        self.until = QDateEdit(today)
        for edit in (self.since, self.until):
            edit.setCalendarPopup(True)
            edit.dateChanged.connect(lambda _d: self._emit() if self.dates.isChecked() else None)
        dates = QHBoxLayout()
        dates.addWidget(self.dates)
        dates.addWidget(self.since)
        dates.addWidget(QLabel("and"))
        dates.addWidget(self.until)
        dates.addStretch(1)
        self.clear_button = QPushButton("Clear filters")
        self.clear_button.clicked.connect(self.clear)
        dates.addWidget(self.clear_button)
        grid.addLayout(dates, 2, 2, 1, 6)
        self.panel.hide()
        self.filters_button.toggled.connect(self.panel.setVisible)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.panel)

    def set_choices(self, choices: dict[str, list[str]]) -> None:
        """Offer what the index holds in each filter (the user may still type anything)."""
        for name, combo in self.combos.items():
            text = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(ANY)
            combo.addItems(choices.get(name, []))
            combo.setEditText(text)
            combo.blockSignals(False)

    def set_collections(self, collections: list[tuple[str, int]]) -> None:
        current = self.collection.currentData()
        self.collection.blockSignals(True)
        self.collection.clear()
        self.collection.addItem("All images", "")
        for name, n in collections:
            self.collection.addItem(f"{name} ({n:,})", name)
        found = self.collection.findData(current)
        self.collection.setCurrentIndex(max(found, 0))
        self.collection.blockSignals(False)

    def clear(self) -> None:
        for widget in (self.min_rating, self.collection, self.media):
            widget.blockSignals(True)
            widget.setCurrentIndex(0)
            widget.blockSignals(False)
        for combo in self.combos.values():
            combo.blockSignals(True)
            combo.setEditText(ANY)
            combo.blockSignals(False)
        self.dates.blockSignals(True)
        self.dates.setChecked(False)
        self.dates.blockSignals(False)
        self._emit()

    def query(self) -> dict[str, object]:
        _label, sort, descending = SORTS[max(self.sort.currentIndex(), 0)]
        values = {name: ("" if combo.currentText().strip() in ("", ANY)
                         else combo.currentText().strip())
                  for name, combo in self.combos.items()}
        since = until = None
        if self.dates.isChecked():
            since = _epoch(self.since.date())
            until = _epoch(self.until.date().addDays(1))  # the whole last day
        return {"text": self.search.text().strip(),
                "min_rating": self.min_rating.currentData() or None,
                "collection": self.collection.currentData() or "",
                "media": self.media.currentData() or "",
                "since": since, "until": until, "sort": sort, "descending": descending, **values}

    def _emit(self) -> None:
        self._debounce.stop()
        self.query_changed.emit(self.query())


def _epoch(day: QDate) -> float:
    """Local midnight at the start of *day*, in seconds since the epoch."""
    moment = QDateTime(day, QTime(0, 0))
    return moment.toSecsSinceEpoch() if moment.isValid() else time.time()
