"""MainWindow: binds the controllers of a Session to the panels of the window."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QStatusBar, QVBoxLayout, QWidget

from stablenew.controller.session import Session
from stablenew.gui.widgets.notice import NoticeBanner


class MainWindow(QMainWindow):
    """The window users live in; every action goes through a controller of the session."""

    closed = Signal()

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.setWindowTitle("StableNew")
        self.resize(1400, 900)

        self.notice = NoticeBanner()
        self.server_notice = NoticeBanner()
        self.server_notice.setObjectName("ServerNotice")
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.server_notice)
        layout.addWidget(self.notice)
        layout.addStretch(1)
        self.setCentralWidget(central)

        self.node_label = QLabel()
        self.node_label.setObjectName("NodeLabel")
        status = QStatusBar()
        status.addWidget(self.node_label)
        self.setStatusBar(status)

        server = session.server
        server.state_changed.connect(self._server_changed)
        server.error_changed.connect(self._server_changed)
        session.app.notice_changed.connect(self.notice.show_error)
        if session.app.notice is not None:
            self.notice.show_notice(session.app.notice.message, session.app.notice.detail,
                                    level="warning")
        self._server_changed()

    def start_after_first_paint(self) -> None:
        QTimer.singleShot(0, self.session.start)

    def _server_changed(self, *_args) -> None:
        server = self.session.server
        self.node_label.setText(server.describe())
        error = server.error
        if error is not None:
            self.server_notice.show_notice(
                error.message, error.detail, level="error",
                actions=(("Try again", server.reconnect),))
        else:
            self.server_notice.clear()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt name)
        event.accept()
        self.closed.emit()

    async def shutdown(self) -> None:
        await self.session.aclose()


def build_main_window(startup=None) -> MainWindow:
    session = Session(startup)
    window = MainWindow(session)
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
    return window
