"""Journeys: what the user rated and tagged, in the gallery, the viewer and a learning run, is
still there after the window is closed and opened again; and every image of a run is listed,
whatever its prompt says."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLineEdit, QPlainTextEdit, QTextEdit

from stablenew.gui.widgets.stars import STAR_SIZE
from tests.journeys.conftest import save_server


def type_into(qtbot, window, path: str, text: str) -> None:
    widget = window.pipeline_panel.editor(path).widget
    assert isinstance(widget, QLineEdit | QPlainTextEdit | QTextEdit), type(widget)
    widget.setFocus()
    widget.clear()
    qtbot.keyClicks(widget, text)


def run_images(qtbot, window, prompt: str, count: int) -> None:
    """Type a prompt, make the images small and few, press Run and wait until they are made."""
    type_into(qtbot, window, "txt2img.prompt", prompt)
    for path, value in (("txt2img.steps", 4), ("txt2img.batch_count", count),
                        ("txt2img.width", 64), ("txt2img.height", 64)):
        window.pipeline_panel.editor(path).set_value(value)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "running", timeout=5000)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=30000)
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == count, timeout=10000)


def click_gallery_row(qtbot, window, row: int) -> str:
    """Click a thumbnail; returns the image's key once the viewer shows it."""
    view = window.gallery_panel.view
    index = window.gallery_panel.model.index(row)
    view.scrollTo(index)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(index).center())
    key = index.data(window.gallery_panel.model.KeyRole)
    qtbot.waitUntil(lambda: window.viewer.sidebar.key == key, timeout=5000)
    return key


def star_position(stars: int) -> QPoint:
    return QPoint(2 + (stars - 1) * (STAR_SIZE + 4) + STAR_SIZE // 2, 12)


def gallery_row(window, key: str) -> tuple[str, str]:
    """What the gallery shows of an image: its stars, and its tooltip (name and tags)."""
    model = window.gallery_panel.model
    for row in range(model.rowCount()):
        index = model.index(row)
        if index.data(model.KeyRole) == key:
            return index.data(Qt.ItemDataRole.DisplayRole), index.data(Qt.ItemDataRole.ToolTipRole)
    raise AssertionError(f"{key} is not in the gallery")


def test_stars_and_tags_are_there_after_a_restart(qtbot, journey, fake_process):
    fake = fake_process(step_ms=5)
    save_server(fake.url)
    window = journey.open()
    run_images(qtbot, window, "a lighthouse at dusk", 2)
    learning = window.session.learning

    # The first image: 4 stars by keyboard, a tag chip, and a tag of the user's own.
    first = click_gallery_row(qtbot, window, 0)
    window.gallery_panel.view.setFocus()
    qtbot.keyClick(window.gallery_panel.view, Qt.Key.Key_4)
    sidebar = window.viewer.sidebar
    qtbot.mouseClick(sidebar.tag_buttons["nailed it"], Qt.MouseButton.LeftButton)
    sidebar.custom_tag.setFocus()
    qtbot.keyClicks(sidebar.custom_tag, "moody")
    qtbot.keyClick(sidebar.custom_tag, Qt.Key.Key_Return)
    # The second: 2 stars by clicking the viewer's stars.
    second = click_gallery_row(qtbot, window, 1)
    qtbot.mouseClick(sidebar.stars, Qt.MouseButton.LeftButton, pos=star_position(2))
    qtbot.waitUntil(lambda: learning.read_rating(first) == (4, ("moody", "nailed it"))
                    and learning.read_rating(second) == (2, ()), timeout=10000)
    assert window.notice.property("level") != "error", window.notice.message

    window = journey.restart()
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == 2, timeout=10000)
    stars, tip = gallery_row(window, first)
    assert stars == "★★★★" and "moody" in tip and "nailed it" in tip
    assert gallery_row(window, second)[0] == "★★"
    sidebar = window.viewer.sidebar
    click_gallery_row(qtbot, window, [i.key for i in window.session.gallery.items].index(first))
    assert sidebar.stars.stars == 4
    assert sidebar.tag_buttons["nailed it"].isChecked()
    assert not sidebar.tag_buttons["too noisy"].isChecked()
    assert sidebar.custom_tags.text() == "Your tags: moody"
    click_gallery_row(qtbot, window, [i.key for i in window.session.gallery.items].index(second))
    assert sidebar.stars.stars == 2 and sidebar.custom_tags.text() == ""


def test_a_rated_learning_run_and_its_insight_are_there_after_a_restart(qtbot, journey, fake_process):
    fake = fake_process(step_ms=5)
    save_server(fake.url)
    window = journey.open()
    type_into(qtbot, window, "txt2img.prompt", "a fox in snow")
    window.pipeline_panel.editor("txt2img.width").set_value(64)
    window.pipeline_panel.editor("txt2img.height").set_value(64)
    panel = window.learning_panel
    window.work_tabs.setCurrentWidget(panel)
    panel.mode_box.setCurrentIndex(panel.mode_box.findData("active"))
    panel.parameter_box.setCurrentIndex(panel.parameter_box.findData("steps"))
    panel.values_edit.clear()
    qtbot.keyClicks(panel.values_edit, "4, 6, 10, 12")
    panel.images_spin.setValue(3)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    learning = window.session.learning
    qtbot.waitUntil(lambda: learning.runs.running, timeout=5000)
    qtbot.waitUntil(lambda: not learning.runs.running, timeout=60000)
    assert learning.runs.run_result.state.value == "completed", learning.runs.run_result.message

    # Low steps get 1–2 stars, high steps 4–5, by keyboard in the comparison grid.
    wanted = {0: [1, 2, 1], 1: [2, 1, 2], 2: [4, 4, 5], 3: [5, 5, 4]}
    view = panel.comparison
    view.setFocus()
    for column in range(4):
        for row in range(3):
            view.select(row, column)
            qtbot.keyClick(view, Qt.Key(Qt.Key.Key_0 + wanted[column][row]))
    qtbot.waitUntil(lambda: learning.insights.current is not None
                    and learning.insights.current.parameter("steps") is not None
                    and learning.insights.current.parameter("steps").conclusive, timeout=20000)
    said = panel.insights.summary_text()
    assert "10–12 steps scores higher than 4–6" in said
    # The gallery shows the grid's stars too: one rating, read by every view.
    cell = learning.runs.run_result.cell(2, 3)
    qtbot.waitUntil(lambda: gallery_row(window, cell.path)[0] == "★★★★", timeout=5000)

    window = journey.restart()
    learning, panel = window.session.learning, window.learning_panel
    qtbot.waitUntil(lambda: "10–12 steps scores higher than 4–6" in panel.insights.summary_text(),
                    timeout=10000)
    assert learning.insights.current.parameter("steps").conclusive
    assert "Steps: 12" in panel.insights.recommendation.text()
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == 12, timeout=10000)
    assert gallery_row(window, cell.path)[0] == "★★★★"


def test_every_image_of_a_thumbs_up_prompt_is_listed_after_a_restart(qtbot, journey, fake_process):
    fake = fake_process(step_ms=5)
    save_server(fake.url)
    window = journey.open()
    run_images(qtbot, window, "thumbs up robot", 2)
    made = {i.key for i in window.session.gallery.items}

    window = journey.restart()
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == 2, timeout=10000)
    assert {i.key for i in window.session.gallery.items} == made
    assert window.gallery_panel.title.text().endswith("2 images")
