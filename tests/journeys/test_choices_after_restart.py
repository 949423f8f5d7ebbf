"""Journey: the user compares two images in "Which is better?" with the arrow keys, closes the
window, opens it again, and the choice is still kept (and counts in what StableNew suggests)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from stablenew.learning.store import LearningStore
from stablenew.storage.paths import AppPaths
from tests.journeys.conftest import save_server
from tests.journeys.test_ratings_after_restart import run_images


def kept_choices() -> list[tuple[str, str, bool]]:
    with LearningStore(AppPaths.default().database_file) as store:
        return [(c.winner_path, c.loser_path, c.same) for c in store.choices()]


def open_which_is_better(qtbot, window):
    learning_panel = window.learning_panel
    window.work_tabs.setCurrentWidget(learning_panel)
    tabs = learning_panel.tabs
    index = next(i for i in range(tabs.count()) if tabs.tabText(i) == "Which is better?")
    qtbot.mouseClick(tabs.tabBar(), Qt.MouseButton.LeftButton,
                     pos=tabs.tabBar().tabRect(index).center())
    panel = tabs.widget(index)
    assert tabs.currentWidget() is panel
    qtbot.waitUntil(lambda: panel.left_button.isEnabled() and panel.left.has_image
                    and panel.right.has_image, timeout=10000)
    return panel


def test_a_choice_made_with_the_arrow_keys_is_there_after_a_restart(qtbot, journey, fake_process):
    fake = fake_process(step_ms=5)
    save_server(fake.url)
    window = journey.open()
    run_images(qtbot, window, "a lighthouse at dusk", 2)

    panel = open_which_is_better(qtbot, window)
    pair = window.session.taste.pair.pair
    panel.setFocus()
    qtbot.keyClick(panel, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: panel.counter.text() == "1 choice kept this session", timeout=10000)
    assert kept_choices() == [(pair.right_path, pair.left_path, False)]
    assert window.notice.property("level") != "error", window.notice.message

    window = journey.restart()
    assert kept_choices() == [(pair.right_path, pair.left_path, False)]
    panel = open_which_is_better(qtbot, window)
    # The model after the restart learns from the kept choice: the suggestion says so.
    qtbot.waitUntil(lambda: window.session.taste.suggestion is not None, timeout=10000)
    assert panel.suggestion.text() == window.session.taste.suggestion.text
    assert panel.counter.text() == ""  # a new session: nothing chosen in it yet
