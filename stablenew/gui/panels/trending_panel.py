"""TrendingPanel: CivitAI's top images as a list with thumbnails and LoRA badges; use one, reroll,
queue a batch. Thumbnails are decoded on a thread pool, never on the Qt thread."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QIcon, QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from stablenew.controller.trending_controller import BASE_MODELS, PERIODS, RATINGS, SORTS

if TYPE_CHECKING:
    from stablenew.controller.errors import ErrorInfo
    from stablenew.controller.trending_controller import ResolvedLora, TrendingController

THUMB = 96
PREVIEW = 256
#: Badge words for where a LoRA is.
_BADGES = {"here": "✓ here", "elsewhere": "on {nodes}", "missing": "✗ missing"}


class _Decoded(QObject):
    """Carries a decoded thumbnail from the pool's thread to the Qt thread."""

    ready = Signal(int, int, QImage)  # image id, size asked, image


class _Decode(QRunnable):
    """Reads one thumbnail scaled to *size* (off the Qt thread)."""

    def __init__(self, image_id: int, path: str, size: int, sink: _Decoded) -> None:
        super().__init__()
        self.image_id, self.path, self.size, self.sink = image_id, path, size, sink

    def run(self) -> None:
        reader = QImageReader(self.path)
        natural = reader.size()
        if natural.isValid():
            reader.setScaledSize(natural.scaled(self.size, self.size, Qt.AspectRatioMode.KeepAspectRatio))
        self.sink.ready.emit(self.image_id, self.size, reader.read())


def badge(lora: ResolvedLora) -> str:
    return _BADGES[lora.state.value].format(nodes=", ".join(lora.nodes))


class TrendingPanel(QWidget):
    """The Trending tab: fetch, filter, a list of combos, and the chosen one beside it."""

    def __init__(self, controller: TrendingController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TrendingPanel")
        self.controller = controller
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._decoded = _Decoded(self)
        self._decoded.ready.connect(self._thumbnail_decoded)

        self.sort = QComboBox()
        self.sort.addItems(SORTS)
        self.period = QComboBox()
        self.period.addItems(PERIODS)
        self.period.setCurrentText(controller.options.period)
        self.rating = QComboBox()
        for words, level in RATINGS:
            self.rating.addItem(words, level)
        self.base_model = QComboBox()
        for label in BASE_MODELS:
            self.base_model.addItem(label or "Any base model", label)
        self.fetch_button = QPushButton("Fetch")
        self.fetch_button.setToolTip("Ask CivitAI for its top images now")
        self.lookup_button = QPushButton("Look up missing")
        self.lookup_button.setToolTip("Ask CivitAI what the LoRAs you do not have are, and where to get them")
        self.runnable_only = QCheckBox("Only combos I can run")
        self.runnable_only.setChecked(controller.options.runnable_only)
        self.with_settings = QCheckBox("Also sampler, steps, CFG and size")
        self.by_engagement = QCheckBox("Reroll by engagement")
        self.status = QLabel(controller.status)
        self.status.setObjectName("MutedLabel")
        self.status.setWordWrap(True)

        self.list = QListWidget()
        self.list.setObjectName("TrendingList")
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setUniformItemSizes(False)
        self.list.setWordWrap(True)

        self.preview = QLabel()
        self.preview.setObjectName("TrendingPreview")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(PREVIEW // 2, PREVIEW // 2)
        self.details = QLabel("Choose a combo to see its prompt and LoRAs.")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setOpenExternalLinks(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.use_button = QPushButton("Use this combo")
        self.use_button.setEnabled(False)
        self.favourite_button = QPushButton("★ Favourite")
        self.favourite_button.setToolTip("Keep this combo in your \"Trending favourites\" prompt pack")
        self.favourite_button.setEnabled(False)
        self.reroll_button = QPushButton("Reroll")
        self.reroll_button.setToolTip("Use another combo of the list, drawn at random")
        self.batch_count = QSpinBox()
        self.batch_count.setRange(1, 200)
        self.batch_count.setValue(10)
        self.batch_count.setSuffix(" combos")
        self.download_button = QPushButton("Download missing LoRA…")
        self.download_button.setEnabled(False)
        self.queue_button = QPushButton("Queue a batch")
        self.queue_button.setToolTip("Queue one image of each of the first combos of the list")

        # Two short rows above, the use options beside the buttons they change: the tab must
        # never be wider than the others (a wider one pushes the cards and viewer aside).
        top = QHBoxLayout()
        for widget in (self.sort, self.period, self.rating):
            top.addWidget(widget)
        top.addStretch(1)
        second = QHBoxLayout()
        second.addWidget(self.base_model)
        second.addWidget(self.runnable_only)
        second.addStretch(1)
        second.addWidget(self.fetch_button)
        second.addWidget(self.lookup_button)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.preview)
        side_layout.addWidget(self.details, 1)
        side_layout.addWidget(self.with_settings)
        buttons = QHBoxLayout()
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.favourite_button)
        buttons.addWidget(self.reroll_button)
        side_layout.addLayout(buttons)
        side_layout.addWidget(self.by_engagement)
        side_layout.addWidget(self.download_button)
        batch = QHBoxLayout()
        batch.addWidget(self.batch_count)
        batch.addWidget(self.queue_button)
        side_layout.addLayout(batch)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.list)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addLayout(second)
        layout.addWidget(self.status)
        layout.addWidget(split, 1)

        self.fetch_button.clicked.connect(self._fetch)
        self.lookup_button.clicked.connect(controller.lookup_missing)
        self.download_button.clicked.connect(self._download)
        self.runnable_only.toggled.connect(lambda on: controller.set_options(runnable_only=on))
        self.with_settings.toggled.connect(lambda on: controller.set_options(with_settings=on))
        self.by_engagement.toggled.connect(lambda on: controller.set_options(by_engagement=on))
        self.list.currentItemChanged.connect(lambda *_: self._show_current())
        self.list.itemDoubleClicked.connect(lambda _item: self._use())
        self.use_button.clicked.connect(self._use)
        self.reroll_button.clicked.connect(controller.reroll)
        self.favourite_button.clicked.connect(self._favourite)
        self.queue_button.clicked.connect(
            lambda: controller.queue_batch(count=self.batch_count.value()))
        controller.combos_changed.connect(self._fill)
        controller.status_changed.connect(self.status.setText)
        controller.busy_changed.connect(lambda busy: self.fetch_button.setEnabled(not busy))
        controller.thumbnail_ready.connect(self._thumbnail_ready)
        controller.current_changed.connect(self._select)
        controller.error_changed.connect(self._error)
        self._fill()

    # --- actions -------------------------------------------------------------------------------

    def _fetch(self) -> None:
        base = str(self.base_model.currentData() or "")
        self.controller.set_options(sort=self.sort.currentText(), period=self.period.currentText(),
                                    browsing_level=int(self.rating.currentData()),
                                    base_models=(base,) if base else ())
        self.controller.fetch()

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return int(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def _use(self) -> None:
        image_id = self.current_id()
        if image_id is not None:
            self.controller.use(image_id)

    def _download(self) -> None:
        """Each missing LoRA CivitAI offers, after the user said yes to its size and folder."""
        image_id = self.current_id()
        for info, question in self.controller.download_offers(image_id) if image_id is not None else []:
            answer = QMessageBox.question(self, "Download a LoRA", question,
                                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                          QMessageBox.StandardButton.No)
            if answer == QMessageBox.StandardButton.Yes:
                self.controller.download(info)

    def _favourite(self) -> None:
        image_id = self.current_id()
        if image_id is not None:
            self.controller.favourite(image_id)

    # --- the list ------------------------------------------------------------------------------

    def _fill(self) -> None:
        keep = self.current_id()
        self.list.clear()
        for combo in self.controller.combos():
            image = combo.image
            loras = ", ".join(f"{lora.name} {lora.weight:g} ({badge(lora)})" for lora in combo.loras)
            reactions = image.stats.reactions
            text = (f"#{image.id} · {reactions} reaction{'s' if reactions != 1 else ''} · "
                    f"{image.base_model or '?'}\n{image.prompt[:90]}\n{loras}")
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, image.id)
            item.setToolTip(image.prompt)
            self.list.addItem(item)
            path = self.controller.thumbnail(image.id)
            if path:
                self._pool.start(_Decode(image.id, path, THUMB, self._decoded))
        self.list.setEnabled(self.list.count() > 0)
        if keep is not None:
            self._select(keep)
        self._show_current()

    def _select(self, image_id: int) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == image_id:
                self.list.setCurrentRow(row)
                return

    def _show_current(self) -> None:
        image_id = self.current_id()
        combo = self.controller.find(image_id) if image_id is not None else None
        self.use_button.setEnabled(combo is not None)
        self.favourite_button.setEnabled(combo is not None)
        offers = self.controller.download_offers(image_id) if image_id is not None else []
        self.download_button.setEnabled(bool(offers))
        self.download_button.setToolTip(
            "" if offers else "Look the missing LoRAs up first; downloads are off unless turned on "
            "in settings (civitai_downloads: true), and need a LoRA folder in the Models tab.")
        if combo is None:
            self.preview.clear()
            self.details.setText("Choose a combo to see its prompt and LoRAs.")
            return
        image = combo.image
        path = self.controller.thumbnail(image.id)
        if path:
            self._pool.start(_Decode(image.id, path, PREVIEW, self._decoded))
        stats = image.stats
        rows = [f"<b>#{image.id}</b> by {escape(image.username or 'someone')} · {stats.reactions} "
                f"reactions · {stats.comments} comments · "
                f"<a href=\"{escape(image.page_url(self.controller.base_url))}\">open on CivitAI</a>",
                f"<p>{escape(image.prompt)}</p>"]
        if image.negative:
            rows.append(f"<p><i>Negative:</i> {escape(image.negative)}</p>")
        settings = [f"{k} {v}" for k, v in (("steps", image.steps), ("CFG", image.cfg_scale),
                                            ("sampler", image.sampler or None)) if v is not None]
        if settings:
            rows.append(f"<p>{escape(', '.join(settings))}</p>")
        for lora in combo.loras:
            how = f", by {lora.matched_by}" if lora.matched_by else ""
            found = ""
            if lora.entry is None and lora.info is not None:
                size = f", {lora.info.size_kb / 1024:.0f} MB" if lora.info.size_kb else ""
                found = (f" — {escape(lora.info.base_model)}{size}, "
                         f"<a href=\"{escape(lora.info.page_url)}\">its page</a>")
            rows.append(f"LoRA <b>{escape(lora.name)}</b> {lora.weight:g} — "
                        f"{escape(badge(lora))}{how}{found}<br>")
        self.details.setText("".join(rows))

    def _thumbnail_ready(self, image_id: int, path: str) -> None:
        self._pool.start(_Decode(image_id, path, THUMB, self._decoded))
        if image_id == self.current_id():
            self._pool.start(_Decode(image_id, path, PREVIEW, self._decoded))

    def _thumbnail_decoded(self, image_id: int, size: int, image: QImage) -> None:
        if image.isNull():
            return
        pixmap = QPixmap.fromImage(image)
        if size == PREVIEW:
            if image_id == self.current_id():
                self.preview.setPixmap(pixmap)
            return
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == image_id:
                item.setIcon(QIcon(pixmap))

    def _error(self, info: ErrorInfo | None) -> None:
        if info is not None:
            self.status.setText(info.message)
