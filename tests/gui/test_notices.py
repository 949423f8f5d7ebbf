"""Notices: they float without moving the window, say an error once, and go when it is fixed."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

FAST = {"step_ms": 8.0}


def _fill(window, prompt: str) -> None:
    for path, value in (("txt2img.prompt", prompt), ("txt2img.steps", 3), ("txt2img.width", 64),
                        ("txt2img.height", 64)):
        window.pipeline_panel.editor(path).set_value(value)


def _run(qtbot, window) -> None:
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=10000)


def _where(widget, window) -> tuple[int, int, int, int]:
    top_left = widget.mapTo(window, QPoint(0, 0))
    return top_left.x(), top_left.y(), widget.width(), widget.height()


@pytest.mark.parametrize("fake_sdwebui_thread", [FAST], indirect=True)
def test_an_error_shows_once_moves_nothing_and_clears_when_a_run_succeeds(
        qtbot, window_for, fake_sdwebui_thread):
    fake = fake_sdwebui_thread
    window = window_for(fake.url)
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.width() == 1280, timeout=3000)
    watched = (window.pipeline_panel, window.work_tabs, window.commands.run_button, window.viewer)
    before = [_where(w, window) for w in watched]

    fake.inject("500", path="/sdapi/v1/txt2img")
    _fill(window, "broken")
    _run(qtbot, window)
    error = window.session.pipeline.error
    assert error is not None
    assert window.notice.isVisible() and window.notice.message == error.message
    assert [_where(w, window) for w in watched] == before, "the banner moved the window's parts"
    banner = window.notice.mapTo(window, QPoint(0, 0))
    assert window.rect().contains(banner) and banner.y() >= window.commands.height()
    bottom = window.notice.mapTo(window, window.notice.rect().bottomLeft())
    assert window.rect().contains(bottom), "the whole banner is inside the window"
    assert not window.status.error_button.isVisible(), "said once: in the banner only"

    # Closed, the banner leaves the error in the status bar, where a click brings it back.
    qtbot.mouseClick(window.notice._close_button, Qt.MouseButton.LeftButton)
    assert window.notice.isHidden()
    assert window.status.error_button.isVisible()
    assert error.message[:20] in window.status.error_button.full_text()
    qtbot.mouseClick(window.status.error_button, Qt.MouseButton.LeftButton)
    assert window.notice.isVisible() and window.notice.message == error.message
    qtbot.mouseClick(window.notice._close_button, Qt.MouseButton.LeftButton)

    # The same Run works this time: the old error is gone from everywhere.
    _fill(window, "fixed")
    _run(qtbot, window)
    assert window.session.pipeline.error is None
    assert not window.status.error_button.isVisible()
    assert error.message not in window.notice.message
    assert [_where(w, window) for w in watched] == before


def test_a_long_error_never_pushes_progress_and_eta_off_the_bar(qtbot, window_for, dead_url):
    from stablenew.controller.errors import ErrorInfo
    from stablenew.controller.run_progress import RunProgress

    window = window_for(dead_url, connect=False)
    window.resize(1024, 640)
    qtbot.waitUntil(lambda: window.width() == 1024, timeout=3000)
    status = window.status
    status.set_last_error(ErrorInfo("The server said something very long about a model that "
                                    "could not be loaded because of reasons " * 4))
    status.show_progress(RunProgress(state="running", stage="txt2img", stage_index=1,
                                     stage_count=1, step=3, steps=20, total_images=6,
                                     image_index=2, overall_fraction=0.4, eta_seconds=30))
    qtbot.waitUntil(lambda: status.eta_label.isVisible(), timeout=3000)
    QApplication.processEvents()  # the status bar lays its widgets out
    for widget in (status.stage_label, status.step_bar, status.overall_bar, status.eta_label):
        geometry = widget.geometry()
        assert geometry.left() >= 0 and geometry.right() <= status.width(), widget.objectName()
        assert widget.width() >= widget.minimumSizeHint().width(), f"{widget.objectName()} squeezed"
    assert status.error_button.isVisible()
    assert status.error_button.geometry().right() <= status.stage_label.geometry().left()
