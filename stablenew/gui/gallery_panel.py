"""GalleryPanel: thumbnails newest first as a virtual list (every image has its row from the start;
the controller reads a row's details and thumbnail as it comes into view); a search and filter
bar above, batch actions below; keys 1–5/0 rate the selection."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, cast

from PySide6.QtCore import (
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QModelRoleData,
    QModelRoleDataSpan,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QSize,
    QStringListModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QIcon,
    QImage,
    QKeyEvent,
    QPainter,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListView,
    QSizePolicy,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from stablenew.gui.compare_dialog import CompareDialog
from stablenew.gui.gallery_actions_bar import GalleryActionsBar
from stablenew.gui.gallery_filters import GalleryFilterBar
from stablenew.gui.widgets.image_view import to_qimage

if TYPE_CHECKING:
    from stablenew.controller.gallery_controller import GalleryController, GalleryItem

THUMB = 132
#: Thumbnail icons kept ready to paint: 70 kB each at 132 px, so about 21 MB; about what a
#: 4K screen of tiles holds.
MAX_ICONS = 300
GRID = (THUMB + 12, THUMB + 24)
#: Scrolling that pauses this long lets the thumbnails and details of the tiles in view load
#: (while it goes on, their reading would compete with the painting).
SETTLE_MS = 80


class GalleryModel(QStringListModel):
    """A view of the controller's list: a row for every image from the start; a row's details
    and thumbnail are asked for only when it is painted.

    Its rows are a string list's (of empty strings), so the row count is answered in C++: list
    views ask for every row's index when they lay the grid out (after any change), and a row
    count answered in Python cost 150 ms per layout at 100,000 rows.
    """

    KeyRole = Qt.ItemDataRole.UserRole + 1
    FamilyRole = Qt.ItemDataRole.UserRole + 2  # the model family's badge ("SDXL"), or ""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.controller: GalleryController | None = None  # once bound: no rows until then
        # Least recently shown first; capped, so scrolling through tens of thousands of outputs
        # keeps memory flat (an evicted icon is rebuilt from the controller's thumbnail cache
        # or decoded again in the background when it scrolls back into view).
        self._icons: OrderedDict[str, QIcon] = OrderedDict()
        # The badge each icon was drawn with: a thumbnail can come before its row's model.
        self._badges: dict[str, str] = {}
        self._placeholder = self._make_placeholder()
        # The badge's font is loaded here, while the window is built: loading it at the first
        # thumbnail stalled the window (54 ms).
        self._badge_font = QFont()
        self._badge_font.setPixelSize(11)
        self._badge_font.setBold(True)
        self._badge_metrics = QFontMetrics(self._badge_font)
        self._badge_metrics.boundingRect("SDXL")
        self._resetting = False

    @property
    def _rows(self) -> int:
        return QStringListModel.rowCount(self)

    def bind(self, controller: GalleryController) -> None:
        self._about_to_reset()
        self.controller = controller
        controller.set_thumbnail_side(THUMB)
        self._reset()
        controller.items_resetting.connect(self._about_to_reset)
        controller.items_reset.connect(self._reset)
        controller.item_added.connect(self._added)
        controller.rows_read.connect(self._read)
        controller.item_changed.connect(self._changed)
        controller.thumbnail_ready.connect(self._thumb)

    @staticmethod
    def _make_placeholder() -> QIcon:
        pixmap = QPixmap(THUMB, THUMB)
        pixmap.fill(QColor(128, 128, 128, 40))
        return QIcon(pixmap)

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> QIcon | str | None:
        row = self._row_key(index, read=role != self.KeyRole)
        if row is None:
            return None
        key, item = row
        if key is None:  # a row whose key comes a moment after the list's first page
            return self._placeholder if role == Qt.ItemDataRole.DecorationRole else None
        return self._value(key, item, role)

    def multiData(self, index: QModelIndex | QPersistentModelIndex,  # noqa: N802
                  span: QModelRoleDataSpan | QModelRoleData) -> None:
        # The seven roles Qt's delegate asks a tile for, answered in one call. Each call from
        # Qt into Python takes the GIL, and while a worker thread runs Python (a page of
        # details read, a thumbnail decoded) each take may wait the interpreter's switch
        # interval (5 ms): one call per tile is one such wait, not seven.
        row = self._row_key(index)
        # A span iterates as its roles (PySide's stubs do not say so).
        roles = [span] if isinstance(span, QModelRoleData) else cast("Iterable[QModelRoleData]", span)
        for wanted in roles:
            role = wanted.role()
            if row is None:
                wanted.clearData()
            elif row[0] is None:
                wanted.setData(self._placeholder if role == Qt.ItemDataRole.DecorationRole
                               else None)
            else:
                wanted.setData(self._value(row[0], row[1], role))

    def _row_key(self, index: QModelIndex | QPersistentModelIndex, *, read: bool = True
                 ) -> tuple[str | None, GalleryItem | None] | None:
        """The key and (once read) item of *index*'s row; None for no row (or no
        controller). With *read*, an item not read yet is asked for."""
        controller = self.controller
        if not index.isValid() or controller is None or index.row() >= self._rows:
            return None
        key = controller.key_at(index.row())
        item = controller.item_at(index.row()) if key is not None and read else None
        return key, item

    def _value(self, key: str, item: GalleryItem | None, role: int) -> QIcon | str | None:
        if role == self.KeyRole:
            return key
        if role == Qt.ItemDataRole.DecorationRole:
            icon = self._icons.get(key)
            badge = family_badge(item.model) if item is not None else self._badges.get(key, "")
            if icon is not None and badge == self._badges.get(key):
                self._icons.move_to_end(key)
                return icon
            decoded = self.controller.thumbnail(key) if self.controller is not None else None
            if decoded is None:  # asked for: the old icon (if any) meanwhile
                return icon if icon is not None else self._placeholder
            return self._icon(key, decoded)
        if item is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return "★" * (item.rating or 0)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(item)
        if role == self.FamilyRole:
            return family_badge(item.model)
        return None

    def _icon(self, key: str, decoded) -> QIcon:
        image: QImage = to_qimage(decoded)
        canvas = QPixmap(THUMB, THUMB)
        canvas.fill(Qt.GlobalColor.transparent)
        painter = QPainter(canvas)
        scaled = image  # fitted to the tile in the background (the controller knows THUMB)
        if max(image.width(), image.height()) != THUMB:
            scaled = image.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                  Qt.TransformationMode.SmoothTransformation)
        painter.drawImage((THUMB - scaled.width()) // 2, (THUMB - scaled.height()) // 2, scaled)
        item = self.controller.item(key) if self.controller is not None else None
        badge = family_badge(item.model) if item is not None else ""
        if badge:  # the model family in the top left corner, on a dark chip that reads on any image
            painter.setFont(self._badge_font)
            box = self._badge_metrics.boundingRect(badge).adjusted(-4, -2, 4, 2)
            box.moveTo(3, 3)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 170))
            painter.drawRoundedRect(box, 4, 4)
            painter.setPen(QColor("white"))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, badge)
        painter.end()
        icon = QIcon(canvas)
        self._icons[key] = icon
        self._icons.move_to_end(key)
        self._badges[key] = badge
        while len(self._icons) > MAX_ICONS:
            dropped, _ = self._icons.popitem(last=False)
            self._badges.pop(dropped, None)
        return icon

    def _row_of(self, key: str) -> int:
        return self.controller.row_of(key) if self.controller is not None else -1

    def _about_to_reset(self) -> None:
        # Begun while the old list is still there, so views can note the place they show.
        if not self._resetting:
            self._resetting = True
            self.beginResetModel()

    def _reset(self) -> None:
        if not self._resetting:
            self.beginResetModel()
        self._resetting = False
        # Inside the reset, so views hear of one reset and not of these rows coming and going.
        self.blockSignals(True)
        try:
            self.removeRows(0, self._rows)
            self.insertRows(0, self.controller.row_count if self.controller is not None else 0)
        finally:
            self.blockSignals(False)
        self.endResetModel()

    def _added(self, item) -> None:
        # The controller put the item first; an insert (not a reset) keeps the view's layout
        # and selection, which matters when a fast run adds several images a second.
        count = self.controller.row_count if self.controller is not None else 0
        if count != self._rows + 1:
            self._reset()  # a replaced duplicate: the list changed in more than one place
            return
        self.insertRows(0, 1)

    def _read(self, first: int, last: int) -> None:
        # A page of rows got its details (stars, badge, tooltip).
        last = min(last, self._rows - 1)
        if first <= last:
            self.dataChanged.emit(self.index(first), self.index(last))

    def _changed(self, item) -> None:
        row = self._row_of(item.key)
        if row >= 0:
            index = self.index(row)
            self.dataChanged.emit(index, index)

    def _thumb(self, key: str, decoded) -> None:
        row = self._row_of(key)
        if 0 <= row < self._rows:
            self._icon(key, decoded)
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class TileDelegate(QStyledItemDelegate):
    """Every tile is the same size: the view's size sample (a row it picks) is not read."""

    def sizeHint(self, option: QStyleOptionViewItem,  # noqa: N802
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        return QSize(GRID[0] - 4, GRID[1] - 4)


@lru_cache(maxsize=512)
def family_badge(model: str) -> str:
    """The model family's badge ("SDXL"); the controller's reading loads on first use, not
    at start-up. Cached: it is asked at every paint of every tile."""
    from stablenew.controller.gallery_reading import family_badge as badge

    return badge(model)


def tooltip(item: GalleryItem) -> str:
    """File name, model and the start of the prompt (as much as a tooltip shows well)."""
    lines = [item.path.name]
    if item.model:
        family = family_badge(item.model)
        lines.append(f"Model: {item.model}" + (f" ({family})" if family else ""))
    if item.prompt:
        prompt = item.prompt if len(item.prompt) <= 300 else item.prompt[:300] + "…"
        lines.append(f"Prompt: {prompt}")
    if item.tags:
        lines.append(f"Tags: {', '.join(item.tags)}")
    return "\n".join(lines)


class GalleryView(QListView):
    """Icon grid; number keys rate the selected images without leaving the keyboard."""

    rate_requested = Signal(object, int)  # keys, stars

    def dataChanged(self, top_left: QModelIndex | QPersistentModelIndex,  # noqa: N802
                    bottom_right: QModelIndex | QPersistentModelIndex,
                    roles: Sequence[int] = ()) -> None:
        # QListView's list mode lays every row out again when any row's data changes (each
        # thumbnail that arrives: 6 ms at 100,000 rows). Every tile has the same size, so a
        # repaint of the changed tiles is all that is needed.
        QAbstractItemView.dataChanged(self, top_left, bottom_right, list(roles))

    def initViewItemOption(self, option: QStyleOptionViewItem) -> None:  # noqa: N802
        # Tiles as icon mode draws them (thumbnail above its stars), in list mode's layout.
        super().initViewItemOption(option)
        option.decorationPosition = QStyleOptionViewItem.Position.Top
        option.displayAlignment = Qt.AlignmentFlag.AlignCenter
        option.showDecorationSelected = False

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        text = event.text()
        if text in ("0", "1", "2", "3", "4", "5"):
            keys = [i.data(GalleryModel.KeyRole) for i in self.selectionModel().selectedIndexes()]
            if not keys and self.currentIndex().isValid():
                keys = [self.currentIndex().data(GalleryModel.KeyRole)]
            if keys:
                self.rate_requested.emit(keys, int(text))
                return
        super().keyPressEvent(event)


class GalleryPanel(QWidget):
    """The strip of outputs; selecting one asks the controller to open it large."""

    selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("GalleryPanel")
        self.controller: GalleryController | None = None  # once bound
        self.model = GalleryModel(self)
        self.view = GalleryView()
        self.view.setObjectName("GalleryView")
        self.view.setModel(self.model)
        # List mode wrapping left to right, not icon mode: icon mode keeps a rectangle per row
        # and lays every row out again when rows are added (seconds at 100,000 images); list
        # mode with uniform sizes places rows by arithmetic, so the scroll bar has its full
        # length at once. The view draws the tiles as icon mode would.
        self.view.setViewMode(QListView.ViewMode.ListMode)
        self.view.setFlow(QListView.Flow.LeftToRight)
        self.view.setWrapping(True)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setIconSize(QSize(THUMB, THUMB))
        self.view.setGridSize(QSize(*GRID))
        self.view.setSpacing(2)
        self.view.setLayoutMode(QListView.LayoutMode.SinglePass)
        self.view.setItemDelegate(TileDelegate(self.view))
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.title = QLabel("Gallery")
        self.title.setObjectName("PanelTitle")
        self._title_text = "Gallery"
        self.title.installEventFilter(self)  # its width decides how much of the title shows
        self.filters = GalleryFilterBar()
        self.batch = GalleryActionsBar(self.selected_keys)
        self.view.selectionModel().selectionChanged.connect(self.batch.selection_changed)
        self.model.modelReset.connect(self.batch.selection_changed)
        self.message = QLabel("")
        self.message.setObjectName("MutedLabel")
        self.message.setWordWrap(True)
        self.message.hide()
        self.compare: CompareDialog | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(4)
        # The title gives way (clipped) before the search box does: the right column's minimum
        # width must not grow with "Gallery · 12,345 of 100,000 images…".
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title.setMinimumWidth(40)
        self.filters.title_row.insertWidget(0, self.title, 1)
        layout.addWidget(self.filters)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.batch)
        layout.addWidget(self.message)
        # A refresh of the list keeps the selected image and the place scrolled to.
        self._current_key: str | None = None
        # Selected image, first image in view, and its row's top edge in the view (pixels).
        self._place: tuple[str | None, str | None, int] = (None, None, 0)
        self._scroll_back: tuple[QPersistentModelIndex, int, int] | None = None  # index, top, tries
        self._kept_selection: list[str] = []
        self.model.modelAboutToBeReset.connect(self._note_place)
        self.model.modelReset.connect(self._restore_place)
        self.model.modelReset.connect(self._update_title)
        self.model.rowsInserted.connect(self._update_title)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(lambda: self._scrolling(False))
        self.view.verticalScrollBar().valueChanged.connect(lambda _value: self._scrolling(True))
        self._update_title()

    def bind(self, controller: GalleryController) -> None:
        """Join the GalleryController: its items are the rows; ratings from the keys go to it."""
        self.controller = controller
        self.view.rate_requested.connect(controller.rate_many)
        self.model.bind(controller)
        self.filters.query_changed.connect(controller.set_query)
        self.batch.bind(controller)
        self.batch.compare_requested.connect(self.open_compare)
        self.filters.add_folder_button.clicked.connect(self.batch.choose_folder_to_add)
        controller.actions.message_changed.connect(self._say)
        controller.actions.collections_changed.connect(self.filters.set_collections)
        controller.actions.choices_changed.connect(self.filters.set_choices)
        # The lists the filters offer are read when the user opens them, not at start.
        self.filters.filters_button.toggled.connect(
            lambda shown: controller.actions.load_choices() if shown else None)
        controller.actions.load_collections()
        self._update_title()

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def selected_keys(self) -> list[str]:
        """The selected images, in the order they are listed."""
        if self.controller is None:
            return []
        rows = sorted(i.row() for i in self.view.selectionModel().selectedIndexes())
        keys = (self.controller.key_at(r) for r in rows)
        return [k for k in keys if k is not None]

    def open_compare(self, left: str, right: str) -> None:
        if self.controller is None:
            return
        if self.compare is not None:
            self.compare.deleteLater()
        self.compare = CompareDialog(self.controller, left, right, self)
        self.compare.open()

    def _update_title(self, *_args) -> None:
        if self.controller is None:
            self._set_title("Gallery")
            return
        total = self.controller.total
        if self.controller.query is not None:
            self._set_title(f"Gallery · {total:,} image{'s' if total != 1 else ''} found")
            self.title.setToolTip("")
        elif not total:
            # Short enough for the header beside the search box (a longer line was clipped).
            self._set_title("Gallery · no images yet")
            self.title.setToolTip("Images you make appear here, newest first")
        else:
            # The order is in the sort box beside the title: the title says only how many.
            self._set_title(f"Gallery · {total:,} image{'s' if total != 1 else ''}")
            self.title.setToolTip("")

    def _set_title(self, text: str) -> None:
        self._title_text = text
        self._fit_title()

    def _fit_title(self) -> None:
        # Beside the search box the title is clipped before the box gives way; rather than
        # "Gallery · 13 image" it drops its "Gallery · " and keeps the count whole.
        text = self._title_text
        room = self.title.contentsRect().width()
        if room > 0 and self.title.fontMetrics().horizontalAdvance(text) > room:
            text = text.removeprefix("Gallery · ")
        if self.title.text() != text:
            self.title.setText(text)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if watched is self.title and event.type() == QEvent.Type.Resize:
            self._fit_title()
        return super().eventFilter(watched, event)

    def _scrolling(self, moving: bool) -> None:
        if self.controller is not None:
            self.controller.pause_reading(moving, None if moving else self._rows_in_view())
        if moving:
            self._settle.start()

    def _rows_in_view(self) -> tuple[int, int] | None:
        """The first and last row the grid shows (the last may be a row of tiles beyond)."""
        viewport = self.view.viewport()
        first = self.view.indexAt(QPoint(GRID[0] // 2, 2))  # a row shown in part counts
        if not first.isValid():
            return None
        columns = max(1, viewport.width() // GRID[0])
        shown = columns * (viewport.height() // GRID[1] + 2)
        return first.row(), min(self.model.rowCount() - 1, first.row() + shown)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid() and self.controller is not None:
            key = current.data(GalleryModel.KeyRole)
            if key == self._current_key:
                return  # the same image selected again after a refresh: it is open already
            self._current_key = key
            self.controller.open(key)
            self.selected.emit(key)

    def _note_place(self) -> None:
        first, top = None, 0
        if self.view.verticalScrollBar().value() > 0:  # at the top, the newest stay in view
            index = self.view.indexAt(QPoint(GRID[0] // 2, GRID[1] // 2))
            first, top = index.data(GalleryModel.KeyRole), self.view.visualRect(index).top()
        self._place = (self._current_key, first, top)
        # A selection of several (for the batch bar) is kept through the reset too: a Copy…
        # or a rating listed the images again and left only the current one selected.
        keys = self.selected_keys()
        self._kept_selection = keys if len(keys) > 1 else []

    def _restore_place(self) -> None:
        selected, first, top = self._place
        self._place = (None, None, 0)
        controller = self.controller
        rows = {key: row for key in (selected, first) if key is not None and controller is not None
                and (row := controller.row_of(key)) >= 0}
        if selected in rows:
            self.view.setCurrentIndex(self.model.index(rows[selected]))
        kept, self._kept_selection = self._kept_selection, []
        if kept and controller is not None:
            self._select_rows(sorted(r for key in kept if (r := controller.row_of(key)) >= 0))
        if first in rows:
            self._scroll_back = (QPersistentModelIndex(self.model.index(rows[first])), top, 50)
            self._try_scroll_back()

    def _select_rows(self, rows: list[int]) -> None:
        """Add *rows* (sorted) to the selection, as ranges of neighbouring rows."""
        selection = QItemSelection()
        start = prev = None
        for row in [*rows, None]:
            if row is not None and prev is not None and row == prev + 1:
                prev = row
                continue
            if start is not None and prev is not None:
                selection.select(self.model.index(start), self.model.index(prev))
            start = prev = row
        self.view.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.Select)

    def _try_scroll_back(self) -> None:
        """Put the image that was first in view back where it was, to the pixel. The layout is
        batched, so after a reset its row may have no place yet: then try again shortly."""
        if self._scroll_back is None:
            return
        index, top, tries = self._scroll_back
        if not index.isValid() or tries <= 0:
            self._scroll_back = None
            return
        target = self.model.index(index.row())
        if not self.view.visualRect(target).isValid():
            self._scroll_back = (index, top, tries - 1)
            QTimer.singleShot(10, self, self._try_scroll_back)
            return
        self._scroll_back = None
        self.view.scrollTo(target, QAbstractItemView.ScrollHint.PositionAtTop)
        bar = self.view.verticalScrollBar()
        bar.setValue(bar.value() + self.view.visualRect(target).top() - top)

    def select_first(self) -> None:
        if self.model.rowCount():
            self.view.setCurrentIndex(self.model.index(0))
            self.view.setFocus()
