"""pytest-qt: the opened image's details stand beside it on a wide viewer and go below it on a
narrow one (the window's default right column), so the image is never squeezed to a stamp and
no inspector button is clipped."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QPushButton

from stablenew.controller.gallery_reading import ImageDetail
from stablenew.controller.images import DecodedImage
from stablenew.gui.viewer_panel import ViewerPanel


def _detail() -> ImageDetail:
    side = 64
    image = DecodedImage(side, side, bytes([90, 200, 140, 255]) * side * side, 1024, 1024)
    return ImageDetail(path=Path("/images/00001-123-a lighthouse at dusk.png"), image=image,
                       prompt="a lighthouse on a cliff at dusk, oil painting", seed=123,
                       parameters="a lighthouse\nSteps: 20, Sampler: Euler, Seed: 123",
                       model="sd_xl_base_1.0", family="SDXL")


def _buttons_fit(panel: ViewerPanel) -> None:
    viewport = panel.sidebar_scroll.viewport().width()
    for button in panel.sidebar.findChildren(QPushButton):
        if button.isVisible():
            right = button.mapTo(panel.sidebar, button.rect().topRight()).x()
            assert right < viewport, f"{button.text()!r} is clipped ({right} ≥ {viewport})"


def test_details_go_below_a_narrow_image_and_beside_a_wide_one(qtbot):
    panel = ViewerPanel()
    qtbot.addWidget(panel)
    panel.resize(500, 800)  # the right column of a 1600-pixel-wide window
    panel.show()
    panel.show_detail(_detail())
    qtbot.waitUntil(lambda: panel.sidebar_scroll.isVisible())

    qtbot.waitUntil(lambda: not panel.details_beside)
    # The image has the panel's width (less margins), not what a 304-pixel sidebar left it.
    assert panel.image.width() >= 450
    assert panel.image.height() >= 350
    _buttons_fit(panel)

    panel.resize(1200, 800)
    qtbot.waitUntil(lambda: panel.details_beside)
    assert panel.image.width() >= 1200 - panel.sidebar_scroll.width() - 30
    _buttons_fit(panel)
