"""FunnelPanel: the draft funnel — a breadcrumb of its stages, the images of the stage looked at as
tiles to pick, the button that takes the picks on (and one that queues stopped images again), the
earlier funnels to reopen, and the counts and presets a funnel uses."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from stablenew.controller.format import plural
from stablenew.controller.funnel_controller import (
    THUMB_SIDE,
    FunnelController,
    FunnelImage,
    FunnelSettings,
    FunnelStage,
)
from stablenew.gui.widgets.image_view import to_qimage
from stablenew.gui.widgets.notice import NoticeBanner

COLUMNS = 4
#: The settings the panel offers: (section, field) of FunnelSettings; titles, ranges and hints
#: come from the fields themselves.
SETTING_FIELDS = (("counts", "drafts"), ("counts", "refine"), ("counts", "polish"),
                  ("counts", "final"), ("draft", "steps"), ("draft", "size"),
                  ("quality", "steps"), ("quality", "hires_denoise"), ("polish", "denoise"),
                  ("final", "scale"))


class FunnelTile(QToolButton):
    """One image of a stage: its picture and seed; checked when the user picked it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setCheckable(True)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        self.setIconSize(QSize(THUMB_SIDE, THUMB_SIDE))
        self.setFixedSize(THUMB_SIDE + 24, THUMB_SIDE + 44)
        self.path: str | None = None
        # A pick must be plain to see: a thick frame in the highlight colour.
        self.setStyleSheet("QToolButton:checked { border: 3px solid palette(highlight); "
                           "border-radius: 4px; }")


class FunnelPanel(QWidget):
    """The Funnel tab; it talks only to its FunnelController."""

    def __init__(self, controller: FunnelController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("FunnelPanel")
        self.notice = NoticeBanner(self)
        self.notice.dismissed.connect(controller.clear_error)

        self.crumbs: dict[FunnelStage, QPushButton] = {}
        crumbs = QHBoxLayout()
        for n, stage in enumerate(FunnelStage):
            if n:
                crumbs.addWidget(QLabel("›"))
            button = QPushButton(stage.label)
            button.setObjectName(f"FunnelCrumb-{stage.value}")
            button.setCheckable(True)
            button.setFlat(True)
            button.setToolTip(f"Show the {stage.label.lower()} images and the picks made there.")
            button.clicked.connect(lambda _checked, n=n: self._crumb_clicked(n))
            crumbs.addWidget(button)
            self.crumbs[stage] = button
        crumbs.addStretch(1)

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.start_button = QPushButton("New funnel from the cards")
        self.start_button.setToolTip("Make quick drafts of the cards' prompt on the draft nodes; "
                                     "then pick the ones worth refining.")
        self.start_button.clicked.connect(self._new_funnel_clicked)
        #: The question asked before a new funnel puts this one aside (open, not exec: the
        #: queue goes on meanwhile); None when not asked.
        self.question: QMessageBox | None = None
        self.go_button = QPushButton()
        self.go_button.setObjectName("FunnelGoOn")
        self.go_button.clicked.connect(controller.go_on)
        self.again_button = QPushButton()
        self.again_button.setObjectName("FunnelAgain")
        self.again_button.clicked.connect(controller.run_again)

        self.past_button = QPushButton("Earlier funnels")
        self.past_button.setCheckable(True)
        self.past_button.setToolTip("The funnels you started before: reopen one where you left "
                                    "it, with its picks.")
        self.past_list = QListWidget()
        self.past_list.setObjectName("FunnelPastList")
        self.reopen_button = QPushButton("Reopen this funnel")
        self.reopen_button.setToolTip("Go back to the chosen funnel as you left it; the one "
                                      "open now joins the earlier funnels.")
        self.reopen_button.setEnabled(False)
        self.reopen_button.clicked.connect(self._reopen)
        self.past_list.itemDoubleClicked.connect(lambda _item: self._reopen())
        self.past_list.currentRowChanged.connect(
            lambda row: self.reopen_button.setEnabled(row >= 0))
        past_layout = QVBoxLayout()
        past_layout.addWidget(self.past_list)
        past_layout.addWidget(self.reopen_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.past_box = QGroupBox("Earlier funnels — their images stay in the gallery")
        self.past_box.setLayout(past_layout)
        self.past_box.setVisible(False)
        self.past_button.toggled.connect(self.past_box.setVisible)

        self.tiles: list[FunnelTile] = []
        self._grid_box = QWidget()
        self._grid = QGridLayout(self._grid_box)
        self._grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._grid_box)
        # As many tiles a row as the tab's width holds (four fixed ones ran off its right side).
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll = scroll
        self._columns = COLUMNS
        scroll.viewport().installEventFilter(self)  # its width is known once it has resized

        self.settings_button = QPushButton("Funnel settings")
        self.settings_button.setCheckable(True)
        self.settings_button.setToolTip("How many images each stage makes, and how drafts, "
                                        "refining, polishing and the final upscale are done.")
        self.settings_fields: dict[tuple[str, str], QSpinBox | QDoubleSpinBox] = {}
        form = QGridLayout()  # two columns of label and box: the counts, then the presets
        for n, (section, key) in enumerate(SETTING_FIELDS):
            widget = _field_editor(section, key)
            widget.setObjectName(f"FunnelSetting-{section}-{key}")
            widget.valueChanged.connect(self._settings_edited)
            row, column = divmod(n, 2)
            form.addWidget(QLabel(_field_title(section, key)), row, column * 2)
            form.addWidget(widget, row, column * 2 + 1)
            self.settings_fields[(section, key)] = widget
        self.settings_box = QGroupBox()
        self.settings_box.setLayout(form)
        self.settings_box.setVisible(False)
        self.settings_button.toggled.connect(self.settings_box.setVisible)

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.past_button)
        buttons.addWidget(self.settings_button)
        buttons.addStretch(1)
        buttons.addWidget(self.again_button)
        buttons.addWidget(self.go_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.notice)
        layout.addLayout(crumbs)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        layout.addWidget(self.past_box)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.settings_box)

        controller.funnel_changed.connect(self._show)
        controller.past_changed.connect(self._show_past)
        controller.settings_changed.connect(self._show_settings)
        controller.error_changed.connect(self._show_error)
        controller.thumbnail_ready.connect(self._thumbnail)
        # Until the funnel file is read, a change made here would be overwritten by it.
        self.setEnabled(controller.loaded)
        controller.loaded_changed.connect(self.setEnabled)
        self._filling = False
        self._show_settings()
        self._show_past()
        self._show()
        if controller.error is not None:
            self._show_error(controller.error)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self._scroll.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_columns()
        return super().eventFilter(watched, event)

    def _fit_columns(self) -> None:
        width = self._scroll.viewport().width()
        spacing = max(self._grid.horizontalSpacing(), 0)
        margins = self._grid.contentsMargins()
        tile = THUMB_SIDE + 24 + spacing
        columns = max(1, (width - margins.left() - margins.right() + spacing) // tile)
        if columns != self._columns:
            self._columns = columns
            for index, placed in enumerate(self.tiles):
                self._grid.removeWidget(placed)
                self._grid.addWidget(placed, index // columns, index % columns)

    # --- from the controller -------------------------------------------------------------------

    def _show(self) -> None:
        controller = self.controller
        for crumb, button in zip(controller.crumbs(), self.crumbs.values(), strict=True):
            button.setEnabled(crumb.made)
            button.setChecked(crumb.current)
        self.summary.setText(controller.summary())
        images = controller.images()
        self._fill_tiles(images)
        following = controller.next_stage()
        picked = sum(i.picked for i in images)
        self.go_button.setVisible(following is not None)
        if following is not None:
            again = " again" if controller.replaces_later() else ""
            self.go_button.setText(f"{following.verb} {plural(picked, 'picked image')}{again}"
                                   if picked else f"{following.verb} (pick images first)")
            replaces = (" The images made there before are replaced in the funnel (they stay "
                        "in the gallery)." if again else "")
            self.go_button.setToolTip(f"Queue the picked images for the "
                                      f"{following.label.lower()} stage on "
                                      f"{following.tier.value} nodes (others when those are "
                                      f"busy or down).{replaces}")
        self.go_button.setEnabled(picked > 0)
        offer = controller.again_offer()
        self.again_button.setVisible(offer is not None)
        if offer is not None:
            self.again_button.setText(offer.label)
            self.again_button.setToolTip(
                f"{plural(offer.count, 'image')} of this stage {'was' if offer.count == 1 else 'were'} "
                "cancelled or could not be made: queue "
                f"{'it' if offer.count == 1 else 'them'} once more, with the same seeds and "
                "from the same picked images.")

    def _fill_tiles(self, images: list[FunnelImage]) -> None:
        while len(self.tiles) < len(images):
            tile = FunnelTile(self._grid_box)
            index = len(self.tiles)
            tile.setObjectName(f"FunnelTile-{index}")
            tile.toggled.connect(lambda checked, index=index: self._tile_toggled(index, checked))
            self._grid.addWidget(tile, index // self._columns, index % self._columns)
            self.tiles.append(tile)
        for n, tile in enumerate(self.tiles):
            tile.setVisible(n < len(images))
        for image, tile in zip(images, self.tiles, strict=False):
            tile.blockSignals(True)
            tile.setChecked(image.picked)
            tile.blockSignals(False)
            tile.setText(image.caption)
            tile.setToolTip(image.error or image.caption)
            # Only made images may be picked: the next stage renders from their seeds.
            tile.setEnabled(image.path is not None)
            if tile.path != image.path:
                tile.path = image.path
                tile.setIcon(QIcon())
            if image.path is not None and tile.icon().isNull():
                decoded = self.controller.thumbnail(image.path)
                if decoded is not None:
                    tile.setIcon(QIcon(QPixmap.fromImage(to_qimage(decoded))))

    def _show_past(self) -> None:
        past = self.controller.past_funnels()
        self.past_list.clear()
        for funnel in past:
            item = QListWidgetItem(funnel.words)
            item.setData(Qt.ItemDataRole.UserRole, funnel.id)
            self.past_list.addItem(item)
        self.reopen_button.setEnabled(False)
        # As tall as its rows (up to six, then it scrolls): the drafts keep the room.
        rows = max(1, min(len(past), 6))
        frame = 2 * self.past_list.frameWidth()
        self.past_list.setMaximumHeight(rows * max(self.past_list.sizeHintForRow(0), 18) + frame)
        self.past_button.setText(f"Earlier funnels ({len(past)})" if past else "Earlier funnels")
        self.past_button.setEnabled(bool(past))
        if not past:
            self.past_button.setChecked(False)

    def _thumbnail(self, path: str, decoded: object) -> None:
        for tile in self.tiles:
            if tile.path == path and tile.isVisible():
                tile.setIcon(QIcon(QPixmap.fromImage(to_qimage(decoded))))

    def _show_settings(self) -> None:
        settings = self.controller.settings
        self._filling = True
        try:
            for (section, key), widget in self.settings_fields.items():
                widget.setValue(getattr(getattr(settings, section), key))
        finally:
            self._filling = False

    def _show_error(self, info: object) -> None:
        if info is None:
            self.notice.clear()
        else:
            self.notice.show_error(info)

    # --- to the controller -----------------------------------------------------------------------

    def _new_funnel_clicked(self) -> None:
        """A new funnel at once, or after asking when the one open has picks or work under
        way (it is kept under Earlier funnels either way)."""
        if self.question is not None:
            self.question.raise_()
            return
        question = self.controller.new_funnel_question()
        if not question:
            self.controller.start_funnel()
            return
        box = QMessageBox(self)
        box.setObjectName("NewFunnelQuestion")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Start a new funnel?")
        box.setText(question)
        box.setInformativeText("This funnel moves to Earlier funnels, where you can reopen it "
                               "as it is. What it has queued goes on being made, and its images "
                               "stay in the gallery.")
        start = box.addButton("Start a new funnel", QMessageBox.ButtonRole.AcceptRole)
        start.setObjectName("StartNewFunnel")
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        cancel.setObjectName("KeepThisFunnel")
        box.setDefaultButton(cancel)
        box.setEscapeButton(cancel)
        box.buttonClicked.connect(
            lambda button: self.controller.start_funnel() if button is start else None)
        box.finished.connect(self._question_closed)
        self.question = box
        box.open()

    def _question_closed(self) -> None:
        if self.question is not None:
            self.question.deleteLater()
        self.question = None

    def _reopen(self) -> None:
        item = self.past_list.currentItem()
        if item is not None:
            self.controller.reopen(item.data(Qt.ItemDataRole.UserRole))

    def _tile_toggled(self, index: int, checked: bool) -> None:
        self.controller.set_picked(index, checked)

    def _crumb_clicked(self, index: int) -> None:
        self.controller.view_stage(index)
        self._show()  # a crumb not made stays unchecked

    def _settings_edited(self, *_value: object) -> None:
        if self._filling:
            return
        data = self.controller.settings.model_dump()
        for (section, key), widget in self.settings_fields.items():
            data[section][key] = widget.value()
        self.controller.set_settings(FunnelSettings.model_validate(data))


def _field_info(section: str, key: str):  # noqa: ANN202 - pydantic's FieldInfo
    annotation = FunnelSettings.model_fields[section].annotation
    assert annotation is not None and hasattr(annotation, "model_fields")
    return annotation.model_fields[key]


def _field_title(section: str, key: str) -> str:
    return f"{_field_info(section, key).title or key}:"


def _field_editor(section: str, key: str) -> QSpinBox | QDoubleSpinBox:
    """A spin box with the field's range and hint."""
    info = _field_info(section, key)
    low = next((m.ge for m in info.metadata if hasattr(m, "ge")), 0)
    high = next((m.le for m in info.metadata if hasattr(m, "le")), 1000)
    widget: QSpinBox | QDoubleSpinBox
    if info.annotation is float:
        widget = QDoubleSpinBox()
        widget.setDecimals(2)
        widget.setSingleStep(0.05)
    else:
        widget = QSpinBox()
    widget.setRange(low, high)
    if low == 0 and "(0:" in (info.description or ""):
        widget.setSpecialValueText("As on the cards")  # 0 means the cards' own value
    widget.setToolTip(info.description or "")
    return widget
