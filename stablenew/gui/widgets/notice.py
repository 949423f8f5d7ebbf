"""NoticeBanner: the one place a problem is shown — a plain sentence, details on demand, never modal."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from stablenew.gui.widgets.layouts import clear_layout

#: How long an information notice stays (see NoticeBanner.info_ms).
INFO_MS = 8000


class NoticeBanner(QFrame):
    """Shows an ErrorInfo-like value (message, detail) with Details, Copy and optional actions."""

    dismissed = Signal()
    changed = Signal()  # shown with a new message, or cleared

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("NoticeBanner")
        self.setProperty("level", "error")
        self._level = "error"
        #: An information ("4 images saved.") goes by itself after this long, unless the pointer
        #: is on it: it floats over the panels' bottom edge and would hide their buttons.
        #: Errors and warnings stay until they are closed or fixed.
        self.info_ms = INFO_MS
        self._expiry = QTimer(self)
        self._expiry.setSingleShot(True)
        self._expiry.timeout.connect(self._expire)
        self._icon = QLabel()
        self._message = QLabel()
        self._message.setObjectName("NoticeMessage")
        self._message.setWordWrap(True)
        self._message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._details_button = QToolButton()
        self._details_button.setText("Details")
        self._details_button.setCheckable(True)
        self._details_button.toggled.connect(self._toggle_details)
        self._copy_button = QToolButton()
        self._copy_button.setText("Copy")
        self._copy_button.setToolTip("Copy the message and its details")
        self._copy_button.clicked.connect(self._copy)
        self._close_button = QToolButton()
        self._close_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_TitleBarCloseButton))
        self._close_button.setToolTip("Dismiss")
        self._close_button.setAutoRaise(True)
        self._close_button.clicked.connect(self._dismiss)
        self._actions = QHBoxLayout()
        self._actions.setSpacing(6)
        self._details = QPlainTextEdit()
        self._details.setObjectName("NoticeDetails")
        self._details.setReadOnly(True)
        self._details.setMaximumHeight(160)
        self._details.hide()

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(10)
        row.addWidget(self._icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self._message, 1)
        row.addLayout(self._actions)
        row.addWidget(self._details_button)
        row.addWidget(self._copy_button)
        row.addWidget(self._close_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.setSpacing(6)
        layout.addLayout(row)
        layout.addWidget(self._details)
        self._text = ""
        self._detail_text = ""
        self.hide()

    @property
    def message(self) -> str:
        return self._text

    @property
    def level(self) -> str:
        """"error", "warning" or "info": how the notice shown (if any) was raised."""
        return self._level

    def show_notice(self, message: str, detail: str = "", *, level: str = "error",
                    actions: tuple[tuple[str, Callable[[], None]], ...] = ()) -> None:
        self._text = message
        self._detail_text = detail
        self._level = level
        self.setProperty("level", level)
        if level == "info" and not actions:
            self._expiry.start(self.info_ms)
        else:
            self._expiry.stop()
        icon = {"error": QStyle.StandardPixmap.SP_MessageBoxCritical,
                "warning": QStyle.StandardPixmap.SP_MessageBoxWarning}.get(
            level, QStyle.StandardPixmap.SP_MessageBoxInformation)
        self._icon.setPixmap(self.style().standardIcon(icon).pixmap(20, 20))
        self._message.setText(message)
        self._message.setToolTip(f"{message}\n\n{detail}".strip() if detail else message)
        self._details.setPlainText(detail)
        has_detail = bool(detail) and detail != message
        self._details_button.setVisible(has_detail)
        if not has_detail:
            self._details_button.setChecked(False)
        clear_layout(self._actions)
        for label, callback in actions:
            button = QPushButton(label)
            button.setObjectName("NoticeAction")
            button.clicked.connect(lambda _checked=False, c=callback: c())  # never c(checked)
            self._actions.addWidget(button)
        self.style().unpolish(self)
        self.style().polish(self)
        self.show()
        self.changed.emit()

    def show_error(self, info, *, actions: tuple[tuple[str, Callable[[], None]], ...] = ()) -> None:
        """Show an ErrorInfo (or hide the banner for None)."""
        if info is None:
            self.clear()
            return
        self.show_notice(info.message, info.detail, level="error", actions=actions)

    def _expire(self) -> None:
        if self.underMouse() or self._details_button.isChecked():
            self._expiry.start(self.info_ms)  # being read: try again later
            return
        self.clear()

    def clear(self) -> None:
        self._expiry.stop()
        self._text = ""
        self._details_button.setChecked(False)
        self.hide()
        self.changed.emit()

    def _toggle_details(self, on: bool) -> None:
        self._details.setVisible(on)

    def _copy(self) -> None:
        text = self._text if not self._detail_text else f"{self._text}\n\n{self._detail_text}"
        QGuiApplication.clipboard().setText(text)

    def _dismiss(self) -> None:
        self.clear()
        self.dismissed.emit()


class NoticeStack(QWidget):
    """Banners floating over the bottom edge of an anchor widget (the panels above the status
    bar): showing or hiding one never moves the rest of the window, so nothing jumps under the
    user's pointer, and the tabs and buttons at the top stay in reach."""

    def __init__(self, banners: list[NoticeBanner], anchor: QWidget, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("NoticeStack")
        self._anchor = anchor
        self._banners = list(banners)
        layout = self._layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        for banner in banners:
            layout.addWidget(banner)
            banner.changed.connect(self.place)
            banner.installEventFilter(self)  # its details opening or closing changes its height
        anchor.installEventFilter(self)
        self._place_pending = False
        self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Move, QEvent.Type.LayoutRequest):
            self._place_soon()
        return False

    def _place_soon(self) -> None:
        """One place() for all the resizes, moves and layout requests of a turn of the loop
        (one resize of the window brought five, each laying the banners' text out again)."""
        if not self._place_pending:
            self._place_pending = True
            QTimer.singleShot(0, self, self._place_now)

    def _place_now(self) -> None:
        self._place_pending = False
        self.place()

    def place(self) -> None:
        """Cover the anchor's bottom edge, as tall as the banners shown need; hidden with none."""
        host = self.parentWidget()
        if host is None or all(banner.isHidden() for banner in self._banners):
            self.hide()
            return
        layout = self._layout
        anchor = self._anchor
        top_left = anchor.mapTo(host, anchor.rect().topLeft())
        width = anchor.width()
        height = min(layout.heightForWidth(width) if layout.hasHeightForWidth()
                     else layout.sizeHint().height(), max(60, anchor.height() - 40))
        self.setGeometry(top_left.x(), top_left.y() + anchor.height() - height, width, height)
        self.show()
        self.raise_()
