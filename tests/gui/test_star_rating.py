"""StarRating repaints only when its stars change: a learning grid re-shows all its cards (up to
30, five stars each) every time one of its images comes in."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication

from stablenew.gui.widgets.stars import StarRating


class _Paints(QObject):
    """Counts the paint events a widget gets."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, _watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def test_the_same_stars_again_paint_nothing_and_a_change_paints(qtbot):
    stars = StarRating()
    qtbot.addWidget(stars)
    stars.set_stars(3)
    stars.show()
    qtbot.waitExposed(stars)
    paints = _Paints()
    stars.installEventFilter(paints)
    QApplication.processEvents()
    paints.count = 0

    for _ in range(5):
        stars.set_stars(3)
        QApplication.processEvents()
    assert paints.count == 0
    assert stars.accessibleDescription() == "3 of 5 stars"

    stars.set_stars(None)
    qtbot.waitUntil(lambda: paints.count > 0, timeout=2000)
    assert stars.stars == 0 and stars.accessibleDescription() == "0 of 5 stars"
