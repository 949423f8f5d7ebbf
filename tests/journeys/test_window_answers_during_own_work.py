"""Journeys: our own work that once ran on the Qt thread keeps the window answering: the
viewer's smooth scaling of a big image, the queue runner's first start at the first Run, and
the run log written as images come (each timed with the stall watchdog; see stall_watchdog.py)."""

from __future__ import annotations

import json
import threading

from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QImage, QPainter

from stablenew.gui.widgets.image_view import ImageView
from tests.journeys.conftest import save_server
from tests.journeys.test_ratings_after_restart import run_images


def _big_image() -> QImage:
    """4000×3000 (a 2× upscale of a large render): Qt's smooth scaling of it to the viewer's
    size took 115 ms on the Qt thread here."""
    image = QImage(4000, 3000, QImage.Format.Format_RGBA8888)
    image.fill(QColor(20, 90, 160))
    with QPainter(image) as painter:
        painter.fillRect(1000, 750, 2000, 1500, QColor(240, 200, 40))
    return image


def test_the_viewer_shows_and_resizes_a_big_image_without_freezing(qtbot, qt_stall_watchdog):
    view = ImageView("Nothing yet.")
    qtbot.addWidget(view)
    view.resize(420, 420)
    view.show()
    qtbot.waitExposed(view)
    image = _big_image()
    with qt_stall_watchdog.timing("showing a 4000×3000 image and resizing the viewer") as span:
        view.set_image(image)
        qtbot.waitUntil(lambda: view.smooth, timeout=10000)
        for side in (520, 640, 380):
            view.resize(side, side)
            qtbot.waitUntil(lambda: view.smooth, timeout=10000)
    assert not span.failures(), span.describe()
    # What is painted is the image, scaled smoothly to fit: the yellow middle and blue edge.
    shot = view.grab().toImage()
    middle = shot.pixelColor(shot.width() // 2, shot.height() // 2)
    edge = shot.pixelColor(shot.width() // 2, (shot.height() - 285) // 2 + 3)
    assert (middle.red(), middle.green(), middle.blue()) == (240, 200, 40)
    assert (edge.red(), edge.green(), edge.blue()) == (20, 90, 160)


def test_a_new_image_replaces_a_scale_still_being_made(qtbot, qt_stall_watchdog):
    view = ImageView()
    qtbot.addWidget(view)
    view.resize(300, 300)
    view.show()
    qtbot.waitExposed(view)
    view.set_image(_big_image())
    small = QImage(30, 30, QImage.Format.Format_RGBA8888)
    small.fill(QColor(200, 10, 10))
    view.set_image(small)
    qtbot.waitUntil(lambda: view.smooth, timeout=10000)
    shot = view.grab().toImage()
    assert shot.pixelColor(150, 150).red() == 200, "the earlier image's scale is dropped"
    assert view._scaled is not None and view._scaled.size() == QSize(300, 300)


def test_the_first_run_starts_the_queue_runner_off_the_qt_thread(qtbot, journey, fake_process,
                                                                  monkeypatch):
    save_server(fake_process(step_ms=5).url)
    window = journey.open()
    started_on_qt: list[str] = []
    start = threading.Thread.start

    def noting_the_thread(thread: threading.Thread) -> None:
        if threading.current_thread() is threading.main_thread():
            started_on_qt.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", noting_the_thread)
    with journey.watchdog.timing("the first Run of a session") as span:
        run_images(qtbot, window, "a lighthouse at dusk", 2)
    monkeypatch.undo()
    assert not span.failures(), span.describe()
    # Starting a thread waits for it to run: on a busy machine that stalled the window.
    assert [n for n in started_on_qt if n.startswith(("queue-db", "run-log"))] == []
    # The queue runs each image as a run of its own, each with its log, whole once it ended.
    logs = sorted(window.session.app.paths.log_dir.glob("*.jsonl"))
    assert len(logs) == 2
    for path in logs:
        events = [json.loads(line)["event"] for line in path.read_text(encoding="utf-8").splitlines()]
        assert events[0] == "RunStarted" and events[-1] == "RunFinished"
        assert events.count("ImageSaved") == 1
