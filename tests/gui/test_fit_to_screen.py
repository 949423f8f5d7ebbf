"""A window bigger than the screen (first launch on a laptop, or saved on a larger monitor) opens
whole on it; one that fits stays where the user left it."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize

from stablenew.gui.screen_fit import fit_to_screen

LAPTOP = QRect(0, 0, 1366, 740)  # 1366×768 less a task bar
MINIMUM = QSize(1024, 640)


def test_the_default_size_shrinks_to_a_laptop_screen():
    assert fit_to_screen(QRect(0, 0, 1480, 920), MINIMUM, LAPTOP) == QRect(0, 0, 1366, 740)


def test_a_window_saved_on_a_second_monitor_comes_back_onto_this_one():
    assert fit_to_screen(QRect(2000, 100, 1200, 700), MINIMUM, LAPTOP) == QRect(166, 40, 1200, 700)


def test_a_window_that_fits_is_left_alone():
    assert fit_to_screen(QRect(50, 30, 1100, 700), MINIMUM, LAPTOP) is None


def test_a_screen_smaller_than_the_minimum_leaves_the_minimum_to_qt():
    assert fit_to_screen(QRect(0, 0, 1480, 920), MINIMUM, QRect(0, 0, 800, 600)) is None
