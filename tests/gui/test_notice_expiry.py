"""An information notice ("4 images saved.") floats over the panels' bottom edge: it goes by itself,
so it never hides the buttons there for good; errors and warnings stay until closed or fixed."""

from __future__ import annotations

from stablenew.gui.widgets.notice import NoticeBanner


def test_information_goes_by_itself_and_an_error_stays(qtbot):
    banner = NoticeBanner()
    qtbot.addWidget(banner)
    banner.info_ms = 50
    banner.move(400, 400)  # away from the pointer: a notice being read is left alone
    banner.show_notice("4 images saved.", level="info")
    assert banner.isVisible() and banner.level == "info"
    qtbot.waitUntil(banner.isHidden, timeout=2000)
    assert banner.message == ""

    banner.show_notice("No server answers at http://127.0.0.1:7860.", level="error")
    with qtbot.assertNotEmitted(banner.changed, wait=200):
        pass  # four times the information's life: still there
    assert banner.isVisible() and banner.level == "error"


def test_an_error_after_an_information_is_not_taken_away_by_its_timer(qtbot):
    banner = NoticeBanner()
    qtbot.addWidget(banner)
    banner.info_ms = 50
    banner.move(400, 400)
    banner.show_notice("Added to the queue.", level="info")
    banner.show_notice("The queue could not be opened.", level="error")
    with qtbot.assertNotEmitted(banner.changed, wait=200):
        pass
    assert banner.isVisible() and banner.message == "The queue could not be opened."
