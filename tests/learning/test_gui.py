"""pytest-qt: start a learning run from the panel, rate the grid with the keyboard, see the insight."""

from __future__ import annotations

import asyncio
import re
import zipfile

from PySide6.QtCore import QPoint, Qt

from stablenew.controller.learning_controller import LearningController, LearningMode
from stablenew.gui.panels.learning_panel import LearningPanel
from stablenew.gui.widgets.stars import STAR_SIZE
from tests.learning.conftest import small_config


async def _until(controller, condition, timeout=20.0):
    async def _loop():
        while True:
            await controller.wait_idle(timeout)
            if condition():
                return
            await asyncio.sleep(0.01)
    await asyncio.wait_for(_loop(), timeout)


async def test_learning_run_rated_by_keyboard_shows_an_insight(qtbot, tmp_path, sd_backend):
    async def backend():
        return sd_backend

    controller = LearningController(tmp_path / "db.sqlite", backend=backend,
                                    output_dir=lambda: tmp_path / "out", base_config=small_config,
                                    mode=LearningMode.passive, remember_mode=False)
    panel = LearningPanel(controller)
    qtbot.addWidget(panel)
    panel.show()
    try:
        assert not panel.plan_box.isEnabled()  # learning runs need Active
        panel.mode_box.setCurrentIndex(panel.mode_box.findData("active"))
        assert controller.mode is LearningMode.active and panel.plan_box.isEnabled()

        panel.parameter_box.setCurrentIndex(panel.parameter_box.findData("steps"))
        assert panel.values_edit.text() == "15, 20, 25, 30, 35"  # suggested defaults
        panel.values_edit.setText("4, 6, 10, 12")
        panel.images_spin.setValue(3)
        panel.pack_box.setEditText("Foxes")
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
        assert controller.runs.running and not panel.start_button.isEnabled()
        await _until(controller, lambda: not controller.runs.running)
        view = panel.comparison
        run = controller.runs.run_result
        assert run.state.value == "completed", run.message
        assert panel.tabs.currentWidget() is view
        assert "4 of 4 values" in panel.progress_label.text()
        qtbot.waitUntil(lambda: not view.building, timeout=5000)  # a few cards per turn of the loop
        assert len(view._cards) == 12

        # Low steps get 1–2 stars, high steps 4–5, all by keyboard: arrows move, digits rate.
        wanted = {0: [1, 2, 1], 1: [2, 1, 2], 2: [4, 4, 5], 3: [5, 5, 4]}
        view.setFocus()
        view.select(0, 0)
        for column in range(4):
            for row in range(3):
                view.select(row, column)
                qtbot.keyClick(view, Qt.Key(Qt.Key.Key_0 + wanted[column][row]))
            await _until(controller, lambda: True)
        qtbot.keyClick(view, Qt.Key.Key_Up)
        qtbot.keyClick(view, Qt.Key.Key_Up)
        assert view.selected == (0, 3)
        qtbot.keyClick(view, Qt.Key.Key_B)  # best of the first row
        await _until(controller, lambda: controller.insights.current is not None
                     and controller.insights.current.parameter("steps") is not None
                     and controller.insights.current.parameter("steps").conclusive)
        ratings = {(c.row, c.column): c.rating for c in controller.runs.run_result.cells}
        assert ratings == {(r, c): wanted[c][r] for c in range(4) for r in range(3)}
        assert view._cards[(0, 3)].stars.stars == 5
        assert view._cards[(0, 0)].stars.stars == 1
        assert "best of this row" in view._cards[(0, 3)].caption.text()

        text = panel.insights.summary_text()
        assert "Across all packs, 10–12 steps scores higher than 4–6 in your learning runs:" in text
        assert "stars over 12 images" in text
        assert panel.insights.save_button.isEnabled()
        assert "Steps: 12" in panel.insights.recommendation.text()
        # With the taste model's confidence, as `learning recommend` prints it.
        assert re.search(r"Steps: 12 \(\d+% sure\)", panel.insights.recommendation.text())
        panel.insights.preview_button.setChecked(True)
        assert "steps: 12" in panel.insights.preview.toPlainText()

        # Tags by keyboard: T focuses the tag box.
        qtbot.keyClick(view, Qt.Key.Key_T)
        assert panel.window().focusWidget() in (view.tag_box, view.tag_box.lineEdit())
        view.tag_box.setCurrentText("too noisy")
        view.tag_selected()
        await _until(controller, lambda: "too noisy" in view._cards[(0, 3)].caption.text())

        controller.insights.export(tmp_path / "out.zip")
        await _until(controller, lambda: (tmp_path / "out.zip").exists())
        with zipfile.ZipFile(tmp_path / "out.zip") as zf:
            assert len(zf.read("records.jsonl").splitlines()) == 12
        assert "Exported 12 records" in panel.insights.status.text()
    finally:
        await controller.aclose()


async def test_errors_show_in_the_panel_banner(qtbot, tmp_path):
    controller = LearningController(tmp_path / "db.sqlite", mode="passive", remember_mode=False,
                                    base_config=small_config)
    panel = LearningPanel(controller)
    qtbot.addWidget(panel)
    try:
        controller.set_mode(LearningMode.active)
        panel.values_edit.setText("20, 20")
        assert not panel.start()
        assert "listed twice" in panel.notice.message
    finally:
        await controller.aclose()


async def test_a_lora_weight_run_from_the_panel(qtbot, tmp_path, sd_backend):
    async def backend():
        return sd_backend

    def base():
        return small_config(**{"txt2img.prompt": "a fox, <lora:film_grain:1>"})

    controller = LearningController(tmp_path / "db.sqlite", backend=backend,
                                    output_dir=lambda: tmp_path / "out", base_config=base,
                                    mode=LearningMode.active, remember_mode=False)
    panel = LearningPanel(controller)
    qtbot.addWidget(panel)
    try:
        panel.parameter_box.setCurrentIndex(panel.parameter_box.findData("lora:"))
        assert not panel.lora_box.isHidden() and panel.lora_box.currentText() == "film_grain"
        panel.lora_box.setCurrentText("")
        assert not panel.start()
        assert "Name the LoRA" in panel.notice.message
        panel.lora_box.setCurrentText("film_grain")
        panel.values_edit.setText("0.5, 0.9")
        panel.images_spin.setValue(1)
        assert panel.start()
        await _until(controller, lambda: not controller.runs.running)
        run = controller.runs.run_result
        assert run.state.value == "completed" and run.parameter == "lora:film_grain"
        qtbot.waitUntil(lambda: not panel.comparison.building, timeout=5000)
        assert panel.comparison._cards.keys() == {(0, 0), (0, 1)}
        assert "film_grain weight" in panel.comparison.grid.itemAtPosition(0, 1).widget().text()
        # Stars can be clicked too; clicking the same star again clears the rating.
        stars = panel.comparison._cards[(0, 1)].stars
        fourth = QPoint(2 + 3 * (STAR_SIZE + 4) + STAR_SIZE // 2, stars.height() // 2)
        qtbot.mouseClick(stars, Qt.MouseButton.LeftButton, pos=fourth)
        await _until(controller, lambda: controller.runs.run_result.cell(0, 1).rating == 4)
        assert stars.stars == 4
        qtbot.mouseClick(stars, Qt.MouseButton.LeftButton, pos=fourth)
        await _until(controller, lambda: controller.runs.run_result.cell(0, 1).rating is None)
        # The finished run is listed among the earlier runs and opens again from there.
        await _until(controller, lambda: panel.comparison.earlier.count() == 2)
        assert "LoRA film_grain weight" in panel.comparison.earlier.itemText(1)
        controller.runs._set_run(None)
        assert not panel.comparison._cards
        panel.comparison._open_earlier(1)
        await _until(controller, lambda: controller.runs.run_result is not None)
        qtbot.waitUntil(lambda: not panel.comparison.building, timeout=5000)
        assert controller.runs.run_result == run and len(panel.comparison._cards) == 2
    finally:
        await controller.aclose()


async def test_passive_mode_says_why_the_run_is_greyed_out_and_offers_to_switch(qtbot, tmp_path):
    controller = LearningController(tmp_path / "db.sqlite", mode="passive", remember_mode=False,
                                    base_config=small_config)
    panel = LearningPanel(controller)
    qtbot.addWidget(panel)
    panel.show()
    try:
        assert not panel.start_button.isEnabled()
        assert panel.passive_hint.isVisible() and "Active" in panel.passive_hint.text()
        qtbot.mouseClick(panel.switch_button, Qt.MouseButton.LeftButton)
        assert controller.mode is LearningMode.active
        assert panel.start_button.isEnabled()
        assert not panel.passive_hint.isVisible() and not panel.switch_button.isVisible()
    finally:
        await controller.aclose()


async def test_a_learning_run_with_no_prompt_is_refused_in_plain_words(qtbot, tmp_path, sd_backend):
    async def backend():
        return sd_backend

    controller = LearningController(tmp_path / "db.sqlite", backend=backend,
                                    output_dir=lambda: tmp_path / "out",
                                    base_config=lambda: small_config(**{"txt2img.prompt": "  "}),
                                    mode=LearningMode.active, remember_mode=False)
    panel = LearningPanel(controller)
    qtbot.addWidget(panel)
    panel.show()
    try:
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
        assert not controller.runs.running
        assert panel.notice.isVisible()
        assert panel.notice.message.startswith("A learning run needs a prompt.")
    finally:
        await controller.aclose()
