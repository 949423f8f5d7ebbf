"""The notice stack follows the panels it floats over: placed once per turn of the loop, however
many resizes, moves and layout requests the turn brings (each place lays the banners' text out)."""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout, QWidget

from stablenew.gui.widgets.notice import NoticeBanner, NoticeStack


def test_the_stack_is_placed_once_per_turn_and_covers_the_anchors_bottom_edge(qtbot):
    host = QWidget()
    qtbot.addWidget(host)
    anchor = QWidget()
    QVBoxLayout(host).addWidget(anchor)
    banner = NoticeBanner()
    stack = NoticeStack([banner], anchor, host)
    host.resize(600, 400)
    host.show()
    qtbot.waitExposed(host)
    banner.show_notice("No server answers at http://127.0.0.1:7860. " * 3, "connection refused",
                       level="warning")
    qtbot.waitUntil(stack.isVisible, timeout=2000)
    placed: list[int] = []
    stack.place = lambda place=stack.place: (placed.append(1), place())[1]  # counts, then places
    for width in (700, 720, 760, 800):
        host.resize(width, 500)
    anchor.updateGeometry()
    margins = host.layout().contentsMargins()
    qtbot.waitUntil(lambda: stack.width() == anchor.width() == 800 - margins.left() - margins.right(),
                    timeout=2000)
    qtbot.waitUntil(lambda: not getattr(stack, "_place_pending", False), timeout=2000)
    # Four resizes (each a resize, a move or a layout request of the anchor): placed once, and
    # once more for the banner's own resize that the placing made.
    assert len(placed) <= 2, placed
    bottom = anchor.mapTo(host, anchor.rect().bottomLeft()).y()
    assert stack.geometry().bottom() == bottom
    assert stack.height() == stack.layout().heightForWidth(stack.width()) == banner.height()
