"""At the smallest window size (1024×640) every part is reachable: cards scroll, tabs overflow."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QToolButton


def _drawn_pixels(button: QToolButton) -> int:
    """Pixels inside the button (off its edges) that stand out from its background."""
    image = button.grab().toImage()
    width, height = image.width(), image.height()
    background = QColor(image.pixel(width // 2, 2)).lightness()
    return sum(1 for x in range(3, width - 3) for y in range(3, height - 3)
               if abs(QColor(image.pixel(x, y)).lightness() - background) > 60)


def _smallest(qtbot, window):
    # Every room's panel in place first: the presets sidebar is wider than its placeholder.
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=10000)
    window.resize(100, 100)  # asks for less than the minimum: the window stops at its minimum
    qtbot.waitUntil(lambda: window.width() <= 1024 and window.height() <= 640, timeout=3000)
    QApplication.processEvents()
    assert (window.width(), window.height()) == (1024, 640)


def test_the_nodes_tab_is_reachable_through_the_tab_bars_scroll_buttons(qtbot, window_for,
                                                                        fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    _smallest(qtbot, window)
    bar = window.work_tabs.tabBar()
    nodes = window.work_tabs.indexOf(window.nodes_panel)
    assert window.work_tabs.tabText(nodes) == "Nodes"
    arrows = [b for b in bar.findChildren(QToolButton) if b.isVisible()]
    assert bar.tabRect(nodes).right() > bar.width(), "this test is about tabs that do not fit"
    if bar.tabRect(nodes).right() > bar.width():
        assert arrows, "tabs that do not fit get scroll buttons"
        for arrow in arrows:  # they show their arrows (the buttons' padding once ate them)
            assert _drawn_pixels(arrow) >= 6, "a blank box, not an arrow"
            assert arrow.geometry().right() <= bar.width(), "both buttons inside the bar"
        right = max(arrows, key=lambda b: b.x())
        for _ in range(window.work_tabs.count()):
            if bar.tabRect(nodes).right() <= right.x():
                break
            qtbot.mouseClick(right, Qt.MouseButton.LeftButton)
    rect = bar.tabRect(nodes)
    assert rect.left() >= 0 and rect.right() <= bar.width(), "the Nodes tab can be brought into view"
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.work_tabs.currentWidget() is window.nodes_panel


def test_the_stage_cards_scroll_instead_of_being_cut_off(qtbot, window_for, fake_sdwebui_thread):
    window = window_for(fake_sdwebui_thread.url)
    window.pipeline_panel.editor("img2img.enabled").set_value(True)
    window.pipeline_panel.editor("txt2img.hires.enabled").set_value(True)
    _smallest(qtbot, window)
    panel = window.pipeline_panel
    inner = panel.widget()
    assert inner.width() >= inner.minimumSizeHint().width(), "the cards are never squeezed (cut off)"
    if inner.width() > panel.viewport().width():
        assert panel.horizontalScrollBar().isVisible(), "wider than the column: a scroll bar shows"
    # The last card's switch can be scrolled to and clicked.
    switch = panel.cards["upscale"].switch.widget
    panel.ensureWidgetVisible(switch)
    QApplication.processEvents()
    top_left = switch.mapTo(panel.viewport(), QPoint(0, 0))
    assert panel.viewport().rect().contains(top_left)
    qtbot.mouseClick(switch, Qt.MouseButton.LeftButton, pos=switch.rect().center())
    assert panel.editor("upscale.enabled").value() is True
