"""ViewerPanel: the live preview while a run works, or the selected image large with its parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QResizeEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from stablenew.gui.prompt_assist import FeedbackBox
from stablenew.gui.widgets.elided_label import ElidedLabel
from stablenew.gui.widgets.image_view import ImageView
from stablenew.gui.widgets.stars import StarRating

if TYPE_CHECKING:
    from stablenew.controller.gallery_controller import GalleryController

PRESET_TAGS = ("too noisy", "too smooth", "nailed it")
SIDEBAR_WIDTH = 304  # pixels, beside the image when the panel is wide enough
MIN_IMAGE_SIDE = 420  # narrower room left for the image than this: the details go below it


class DetailSidebar(QFrame):
    """Rating, tags, prompt, seed and the image's parameters, with copy and reuse buttons."""

    use_settings = Signal(str)
    funnel_from = Signal(str)  # the image's settings go to the cards, and the Funnel tab opens

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("DetailSidebar")
        self.gallery: GalleryController | None = None  # once bound
        self._prompt = ""  # what the copy buttons copy: the shown image's prompt and seed
        self._seed = ""
        self.key = ""
        self.stars = StarRating()
        self.stars.rated.connect(self._rated)
        self.tag_buttons: dict[str, QPushButton] = {}
        tags_row = QHBoxLayout()
        tags_row.setSpacing(4)
        for tag in PRESET_TAGS:
            button = QPushButton(tag)
            button.setObjectName("TagChip")
            button.setCheckable(True)
            button.clicked.connect(lambda _c=False, t=tag: self._toggle(t))
            self.tag_buttons[tag] = button
            tags_row.addWidget(button)
        tags_row.addStretch(1)
        self.custom_tag = QLineEdit()
        self.custom_tag.setPlaceholderText("Add your own tag and press Enter")
        self.custom_tag.returnPressed.connect(self._add_custom)
        self.custom_tags = QLabel()
        self.custom_tags.setObjectName("MutedLabel")
        self.custom_tags.setWordWrap(True)
        self.prompt = QLabel()
        self.prompt.setObjectName("PromptText")
        self.prompt.setWordWrap(True)
        self.prompt.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.seed = QLabel()
        self.seed.setObjectName("MutedLabel")
        self.params = QPlainTextEdit()
        self.params.setObjectName("ParamsText")
        self.params.setReadOnly(True)
        self.params.setMinimumHeight(120)
        self._prompt = ""
        self._seed = ""
        self._all = ""  # every parameter, as the image carries them
        self._shown_for = ""
        # "Copy: Prompt Seed All" fits the sidebar's width where three "Copy …" buttons did not.
        self.copy_prompt = QPushButton("Prompt")
        self.copy_prompt.setToolTip("Copy the prompt")
        self.copy_seed = QPushButton("Seed")
        self.copy_seed.setToolTip("Copy the seed")
        self.copy_all = QPushButton("All")
        self.copy_all.setToolTip("Copy every parameter the image carries, as A1111 writes them")
        self.use_button = QPushButton("Use these settings")
        self.use_button.setObjectName("PrimaryButton")
        self.use_button.setToolTip("Load this image's settings into the cards")
        # Building on this image: each is queued (or fills the cards) off the Qt thread.
        self.regenerate_button = QPushButton("Regenerate")
        self.regenerate_button.setToolTip("Queue this image's own settings and seed once more")
        self.init_button = QPushButton("Use as init image")
        self.init_button.setToolTip("Fill the Image to image card with this picture and its prompt")
        self.more_button = QPushButton("More like this")
        self.more_button.setToolTip("Queue 3 images redrawn a little from this one (denoise "
                                    "0.3, 0.4, 0.5) with its prompt and seed")
        self.upscale_button = QPushButton("Upscale")
        self.upscale_button.setToolTip("Queue an upscale of this image, with the Upscale card's "
                                       "upscaler, on the node best placed for it")
        self.funnel_button = QPushButton("Start a funnel from its settings")
        self.funnel_button.setToolTip("Load this image's settings into the cards and open the "
                                      "Funnel: Make drafts starts quick drafts from them")
        self.funnel_button.clicked.connect(lambda: self.funnel_from.emit(self.key))
        for button, action in ((self.regenerate_button, "regenerate"),
                               (self.init_button, "use_as_init"),
                               (self.more_button, "more_like_this"),
                               (self.upscale_button, "upscale")):
            button.clicked.connect(lambda _c=False, a=action: self._build_on(a))
        self.action_message = QLabel("")
        self.action_message.setObjectName("MutedLabel")
        self.action_message.setWordWrap(True)
        self.action_message.hide()
        self.family_badge = QLabel("")
        self.family_badge.setObjectName("TagChip")
        self.family_badge.setToolTip("The model family, as the model's name tells")
        self.family_badge.hide()
        self.copy_prompt.clicked.connect(lambda: QGuiApplication.clipboard().setText(self._prompt))
        self.copy_seed.clicked.connect(lambda: QGuiApplication.clipboard().setText(self._seed))
        self.copy_all.clicked.connect(lambda: QGuiApplication.clipboard().setText(self._all))
        self.use_button.clicked.connect(lambda: self.use_settings.emit(self.key))
        buttons = QHBoxLayout()
        copy_label = QLabel("Copy:")
        copy_label.setObjectName("MutedLabel")
        buttons.addWidget(copy_label)
        buttons.addWidget(self.copy_prompt)
        buttons.addWidget(self.copy_seed)
        buttons.addWidget(self.copy_all)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(6)
        heading = QLabel("Rate this image")
        heading.setObjectName("SectionTitle")
        layout.addWidget(heading)
        layout.addWidget(self.stars)
        layout.addLayout(tags_row)
        layout.addWidget(self.custom_tag)
        layout.addWidget(self.custom_tags)
        prompt_title = QLabel("Prompt")
        prompt_title.setObjectName("SectionTitle")
        title_row = QHBoxLayout()
        title_row.addWidget(prompt_title)
        title_row.addStretch(1)
        title_row.addWidget(self.family_badge)
        layout.addLayout(title_row)
        layout.addWidget(self.prompt)
        layout.addWidget(self.seed)
        layout.addLayout(buttons)
        layout.addWidget(self.use_button)
        for pair in ((self.regenerate_button, self.init_button),
                     (self.more_button, self.upscale_button)):
            row = QHBoxLayout()
            for button in pair:
                row.addWidget(button)
            layout.addLayout(row)
        layout.addWidget(self.funnel_button)
        layout.addWidget(self.action_message)
        # "What should change?" for the local LLM, shown once a PromptController is bound.
        self.feedback = FeedbackBox()
        self.feedback.hide()
        layout.addWidget(self.feedback)
        params_title = QLabel("Parameters")
        params_title.setObjectName("SectionTitle")
        layout.addWidget(params_title)
        layout.addWidget(self.params, 1)

    def bind(self, gallery: GalleryController) -> None:
        self.gallery = gallery
        gallery.item_changed.connect(self._item_changed)
        gallery.inspector.message_changed.connect(self._action_said)

    def _build_on(self, action: str) -> None:
        if self.key and self.gallery is not None:
            self.action_message.hide()
            getattr(self.gallery.inspector, action)(self.key)

    def _action_said(self, text: str, problem: bool) -> None:
        self.action_message.setText(text)
        self.action_message.setProperty("problem", problem)
        self.action_message.setVisible(bool(text))

    def show_detail(self, detail) -> None:
        self.key = str(detail.path)
        self._prompt = detail.prompt
        self._seed = "" if detail.seed is None else str(detail.seed)
        self._all = detail.parameters
        self.copy_all.setEnabled(bool(detail.parameters))
        self.prompt.setText(detail.prompt or "(no prompt stored in this image)")
        self.seed.setText(f"Seed {detail.seed}" if detail.seed is not None else "Seed unknown")
        self.copy_seed.setEnabled(detail.seed is not None)
        self.copy_prompt.setEnabled(bool(detail.prompt))
        self.use_button.setEnabled(bool(detail.parameters))
        self.funnel_button.setEnabled(bool(detail.parameters))
        self.family_badge.setText(detail.family)
        self.family_badge.setToolTip(f"Model family of {detail.model}" if detail.model else "")
        self.family_badge.setVisible(bool(detail.family))
        if str(detail.path) != self._shown_for:  # another image: the last action's words go
            self._shown_for = str(detail.path)
            self.action_message.hide()
        self.params.setPlainText(detail.parameters or "This image carries no generation settings.")
        self.feedback.show_image(detail.prompt, detail.path)
        item = self.gallery.item(self.key) if self.gallery is not None else None
        if item is not None:
            self._item_changed(item)

    def _item_changed(self, item) -> None:
        if item.key != self.key:
            return
        self.stars.set_stars(item.rating)
        for tag, button in self.tag_buttons.items():
            button.setChecked(tag in item.tags)
        custom = [t for t in item.tags if t not in PRESET_TAGS]
        self.custom_tags.setText(("Your tags: " + ", ".join(custom)) if custom else "")

    def _rated(self, stars: int) -> None:
        if self.key and self.gallery is not None:
            self.gallery.rate(self.key, stars)

    def _toggle(self, tag: str) -> None:
        if self.key and self.gallery is not None:
            self.gallery.toggle_tag(self.key, tag)

    def _add_custom(self) -> None:
        tag = self.custom_tag.text().strip()
        if tag and self.key and self.gallery is not None:
            self.gallery.toggle_tag(self.key, tag)
            self.custom_tag.clear()


class ViewerPanel(QFrame):
    """Top right of the window: preview during a run, the chosen output otherwise."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ViewerPanel")
        # A long file name shortens in the middle, never pushing the buttons beside it away.
        self.caption = ElidedLabel("Preview")
        self.caption.setObjectName("PanelTitle")
        self.image = ImageView("Nothing yet. Fill in a prompt and press Run (Ctrl+Enter); the image "
                               "appears here while it is being made.")
        self.sidebar = DetailSidebar()
        # Scrolls when the window is short: a long answer from the LLM or many tags never squeeze
        # the words into clipped lines.
        self.sidebar_scroll = QScrollArea()
        self.sidebar_scroll.setObjectName("DetailScroll")
        self.sidebar_scroll.setWidget(self.sidebar)
        self.sidebar_scroll.setWidgetResizable(True)
        self.sidebar_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.sidebar_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.sidebar_scroll.hide()
        self.live_button = QPushButton("Show live preview")
        self.live_button.setToolTip("Follow the image being made instead of the one you opened")
        self.live_button.clicked.connect(self.follow_live)
        self.live_button.hide()
        self._latest_preview = None
        self._latest_caption = ""
        caption_row = QHBoxLayout()
        caption_row.setContentsMargins(0, 0, 0, 0)
        caption_row.addWidget(self.caption, 1)
        caption_row.addWidget(self.live_button)
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.addLayout(caption_row)
        left.addWidget(self.image, 1)
        self._box = QBoxLayout(QBoxLayout.Direction.LeftToRight, self)
        self._box.setContentsMargins(10, 6, 6, 6)
        self._box.addLayout(left, 1)
        self._box.addWidget(self.sidebar_scroll)
        self._arrange()

    @property
    def details_beside(self) -> bool:
        """True when the details stand beside the image, False when they are below it."""
        return self._box.direction() == QBoxLayout.Direction.LeftToRight

    def _sidebar_width(self) -> int:
        # Wide enough for the sidebar's own rows (buttons side by side) and its scroll bar:
        # a fixed 304 pixels clipped "Use as init image" and the family badge in some styles.
        bar = self.sidebar_scroll.verticalScrollBar().sizeHint().width()
        return max(SIDEBAR_WIDTH, self.sidebar.minimumSizeHint().width() + bar)

    def _arrange(self) -> None:
        """Details beside the image on a wide panel; below it, full width, on a narrow one
        (the window's default right column), so the image is not squeezed to a stamp."""
        side = self._sidebar_width()
        if self.width() - side >= MIN_IMAGE_SIDE:
            self._box.setDirection(QBoxLayout.Direction.LeftToRight)
            self.sidebar_scroll.setFixedWidth(side)
            self.sidebar_scroll.setMaximumHeight(16777215)
        else:
            self._box.setDirection(QBoxLayout.Direction.TopToBottom)
            self.sidebar_scroll.setMinimumWidth(0)
            self.sidebar_scroll.setMaximumWidth(16777215)
            # The image keeps at least half the height; the details scroll below it.
            self.sidebar_scroll.setMaximumHeight(max(160, self.height() // 2))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._arrange()

    def bind(self, gallery: GalleryController) -> None:
        """Join the GalleryController: images opened there show here, with their details."""
        self.sidebar.bind(gallery)
        gallery.detail_ready.connect(self.show_detail)

    @property
    def following_live(self) -> bool:
        """True while the viewer shows the run as it happens (no image opened from the gallery)."""
        return self.sidebar_scroll.isHidden()

    def show_preview(self, decoded, caption: str = "Live preview") -> None:
        """A new preview of the running job; an image the user opened stays until they go back."""
        self._latest_preview, self._latest_caption = decoded, caption
        if self.following_live:
            self.image.set_decoded(decoded)
            self.caption.set_full_text(caption)
        else:
            self.live_button.show()

    def follow_live(self) -> None:
        self.sidebar_scroll.hide()
        self.live_button.hide()
        if self._latest_preview is not None:
            self.image.set_decoded(self._latest_preview)
            self.caption.set_full_text(self._latest_caption)

    def show_detail(self, detail) -> None:
        self.image.set_decoded(detail.image)
        size = f"{detail.image.original_width}×{detail.image.original_height}"
        self.caption.set_full_text(detail.path.name)  # both ends: the item id and the prompt
        self.caption.setToolTip(f"{detail.path} · {size}")
        self.sidebar.show_detail(detail)
        self.sidebar_scroll.show()
