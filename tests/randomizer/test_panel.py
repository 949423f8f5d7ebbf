"""RandomizerAdapter and RandomizerPanel: live exact count, preview, inline errors, confirm."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from stablenew.controller.randomizer_adapter import RandomizerAdapter
from stablenew.gui.panels.randomizer_panel import RandomizerPanel
from stablenew.pipeline.config import PipelineConfig
from tests.randomizer.slow_wildcards import SlowWildcards

WAIT_MS = 5000


@pytest.fixture
def adapter(qtbot):
    adapter = RandomizerAdapter(debounce_ms=10)
    yield adapter
    adapter.close()


@pytest.fixture
def panel(qtbot, adapter):
    panel = RandomizerPanel(adapter)
    qtbot.addWidget(panel)
    panel.enabled_box.setChecked(True)
    return panel


def test_adapter_counts_off_thread_and_debounces(qtbot, adapter):
    adapter.set_enabled(True)
    seen = []
    adapter.count_changed.connect(lambda images, variants: seen.append((images, variants)))
    with qtbot.waitSignal(adapter.count_changed, timeout=WAIT_MS):
        adapter.set_template("a {b|c")  # typing…
        adapter.set_template("a {b|c}")
        adapter.set_template("a {b|c} {d|e|f}")
        adapter.set_images_per_variant(4)
    qtbot.wait(50)
    assert seen == [(24, 6)]  # one recount for the burst, for the last text
    assert adapter.summary.text == "This will make 24 images in 6 variants."


def test_huge_counts_travel_as_python_ints(qtbot, adapter):
    template = " ".join("{" + "|".join(str(j) for j in range(10)) + "}" for _ in range(12))
    with qtbot.waitSignal(adapter.count_changed, timeout=WAIT_MS) as blocker:
        adapter.set_template(template)
    assert blocker.args == [10**12, 10**12]


def test_template_error_is_shown_and_cleared(qtbot, adapter):
    with qtbot.waitSignal(adapter.error_changed, timeout=WAIT_MS) as blocker:
        adapter.set_template("a {x::b|c}")
    assert "not a number" in blocker.args[0] and "line 1, column 4" in blocker.args[0]
    with qtbot.waitSignal(adapter.error_changed, timeout=WAIT_MS) as blocker:
        adapter.set_template("a {b|c}")
    assert blocker.args == [""]


def test_plan_for_run_is_the_previewed_plan(qtbot, adapter):
    assert adapter.plan_for_run(PipelineConfig()) is None  # off: run the cards as they are
    adapter.set_enabled(True)
    adapter.set_template("{a|b}")
    adapter.set_axes([("steps", "10-30 (+10)"), ("sampler", "Euler a, DDIM"), ("lora", "")])
    adapter.set_seed(5)
    with qtbot.waitSignal(adapter.preview_changed, timeout=WAIT_MS) as blocker:
        adapter.refresh_now()
    rows = blocker.args[0]
    p = adapter.plan_for_run(PipelineConfig())
    assert p.count == adapter.summary.images == 12
    assert [r.variant_id for r in rows] == [i.variant_id for i in p.variant_previews(20)]


def test_panel_shows_count_preview_hints_and_errors(qtbot, panel, adapter, wildcards):
    panel.wildcards.setText(str(wildcards))
    panel.wildcards.editingFinished.emit()
    with qtbot.waitSignal(adapter.preview_changed, timeout=WAIT_MS):
        panel.template.setPlainText("a {red|blue} __people/names__")
        panel.images_per_variant.setValue(3)
    qtbot.waitUntil(lambda: panel.count_label.text() == "This will make 12 images in 4 variants.",
                    timeout=WAIT_MS)
    assert panel.preview.count() == 4
    assert panel.preview.item(0).text() == "1. a red Ada"
    assert panel.mode_hint.text().startswith("Every combination")
    assert not panel.random_count.isVisibleTo(panel)

    panel.mode.setCurrentIndex(panel.mode.findData("random"))
    assert "random sample" in panel.mode_hint.text()
    assert panel.random_count.isVisibleTo(panel)

    with qtbot.waitSignal(adapter.error_changed, timeout=WAIT_MS):
        panel.template.setPlainText("a {red|blue")
    assert panel.notice.isVisibleTo(panel)
    assert "never closed" in panel.notice.message
    assert panel.preview.count() == 0


def test_axes_editor_feeds_the_count(qtbot, panel, adapter):
    with qtbot.waitSignal(adapter.count_changed, timeout=WAIT_MS):
        panel.template.setPlainText("x {a|b}")
    row = panel.axes.add_axis("steps", "20, 30, 40")
    qtbot.waitUntil(lambda: adapter.summary is not None and adapter.summary.images == 6,
                    timeout=WAIT_MS)
    row.kind.setCurrentIndex(row.kind.findData("sampler"))
    row.values.setText("Euler a, DDIM")
    qtbot.waitUntil(lambda: adapter.summary.images == 4, timeout=WAIT_MS)
    row.remove.click()
    qtbot.waitUntil(lambda: adapter.summary.images == 2, timeout=WAIT_MS)
    panel.images_per_variant.setValue(10)
    panel.max_images.setValue(15)
    qtbot.waitUntil(lambda: adapter.summary.images == 15, timeout=WAIT_MS)
    assert panel.count_label.text() == "This will make 15 images in 2 variants (limited from 20)."


def test_large_runs_ask_first_with_a_time_estimate(qtbot, panel, adapter, monkeypatch):
    adapter.pace.set_seconds_per_image(6.0)
    assert panel.confirm_large_run(500) is True  # at the threshold: no question
    box = panel._confirm_box(1200)
    assert "1,200 images" in box.text()
    assert "2 h" in box.informativeText() and "6.0 s per image" in box.informativeText()
    monkeypatch.setattr(QMessageBox, "exec", lambda self: QMessageBox.StandardButton.No)
    assert panel.confirm_large_run(1200) is False
    monkeypatch.setattr(QMessageBox, "exec", lambda self: QMessageBox.StandardButton.Yes)
    assert panel.confirm_large_run(1200) is True


def test_disabled_randomizer_never_asks(qtbot, panel, adapter):
    panel.enabled_box.setChecked(False)
    assert panel.confirm_large_run(10**6) is True


def test_variations_off_still_take_typing_and_say_how_to_use_it(qtbot, adapter):
    panel = RandomizerPanel(adapter)
    qtbot.addWidget(panel)
    panel.show()
    assert not panel.enabled_box.isChecked()
    qtbot.keyClicks(panel.template, "a {red|blue} fox")
    assert panel.template.toPlainText() == "a {red|blue} fox", "typing is never ignored"
    assert panel.off_hint.isVisible() and "off" in panel.off_hint.text()
    assert not adapter.enabled, "typing alone does not change what Run makes"
    qtbot.mouseClick(panel.turn_on, Qt.MouseButton.LeftButton)
    assert adapter.enabled and panel.enabled_box.isChecked()
    assert not panel.off_hint.isVisible() and not panel.turn_on.isVisible()
    qtbot.waitUntil(lambda: "make 2 images" in panel.count_label.text(), timeout=WAIT_MS)


def test_setting_the_folder_again_rereads_wildcards(qtbot, adapter, wildcards):
    adapter.set_wildcards_dir(wildcards)
    with qtbot.waitSignal(adapter.error_changed, timeout=WAIT_MS) as blocker:
        adapter.set_template("a __weather__")
    assert "__weather__" in blocker.args[0]
    (wildcards / "weather.txt").write_text("rain\nsnow\nfog\n", encoding="utf-8")
    with qtbot.waitSignal(adapter.count_changed, timeout=WAIT_MS) as blocker:
        adapter.set_wildcards_dir(wildcards)
    assert blocker.args == [3, 3]
    assert adapter.error == ""


def test_loading_a_spec_fills_the_panel_without_echo(qtbot, panel, adapter):
    from stablenew.randomizer.spec import VariationSpec

    spec = VariationSpec(template="a {b|c}", negative_template="blurry", mode="random", count=4,
                         axes=[{"steps": [10, 20]}, {"img2img.cfg_scale": [4, 5]},
                               {"style": [{"name": "noir", "prompt": "noir {prompt}"}]}],
                         images_per_variant=2, seed_policy="increment", seed=77)
    with qtbot.waitSignal(adapter.count_changed, timeout=WAIT_MS) as blocker:
        adapter.set_spec(spec)
    assert blocker.args == [8, 4]
    assert adapter.spec == spec  # the widgets did not rewrite it (style prompt kept)
    assert panel.template.toPlainText() == "a {b|c}"
    assert panel.mode.currentData() == "random" and panel.random_count.value() == 4
    assert panel.axes.value() == [("steps", "10, 20"), ("img2img.cfg_scale", "4, 5"),
                                  ("style", "noir")]
    assert (panel.images_per_variant.value(), panel.seed.text()) == (2, "77")
    assert panel.seed_policy.currentData() == "increment"


def test_confirm_waits_for_the_count_of_what_was_typed_last(qtbot, panel, adapter, monkeypatch):
    asked = []
    monkeypatch.setattr(QMessageBox, "exec",
                        lambda self: asked.append(self.text()) or QMessageBox.StandardButton.No)
    started = []
    panel.run_requested.connect(lambda: started.append(panel.confirm_large_run()))
    adapter.set_template("{a|b|c|d|e|f|g|h|i|j}{0|1|2|3|4|5|6|7|8|9}")  # 100: no question
    assert panel.confirm_large_run() is False  # not counted yet: the run waits for the count
    qtbot.waitUntil(lambda: started == [True], timeout=WAIT_MS)
    assert asked == []
    assert panel.confirm_large_run() is True  # counted and unchanged: no second wait

    adapter.set_images_per_variant(6)  # 600: the preview's 100 must not decide
    assert panel.confirm_large_run() is False
    qtbot.waitUntil(lambda: len(started) == 2, timeout=WAIT_MS)
    assert started == [True, False]  # asked on the exact count, and the user said no
    assert asked == ["This will make 600 images (more than 500)."]


def test_a_waiting_run_says_press_run_again_when_nothing_restarts_it(qtbot, panel, adapter):
    adapter.set_template("{a|b}")
    assert panel.confirm_large_run() is False
    qtbot.waitUntil(lambda: "Press Run again" in panel.notice.message, timeout=WAIT_MS)
    assert panel.confirm_large_run() is True


def test_run_on_a_slow_count_never_counts_on_the_qt_thread(qtbot, panel, adapter, wildcards,
                                                         monkeypatch):
    asked = []
    monkeypatch.setattr(QMessageBox, "exec",
                        lambda self: asked.append(self.text()) or QMessageBox.StandardButton.Yes)
    slow = SlowWildcards(wildcards)
    started = []

    def press_run():  # what MainWindow.run does with the panel
        if panel.confirm_large_run():
            started.append(True)

    panel.run_requested.connect(press_run)
    try:
        adapter.set_wildcards_dir(slow)
        adapter.set_template("a __colors__ " + "{0|1|2|3|4|5|6|7|8|9}" * 2)
        adapter.set_images_per_variant(2)
        press_run()  # returns at once although the count is stuck on the disk
        assert started == [] and asked == []
        assert slow.reading.wait(timeout=30)  # the worker is counting
        ticks = []
        QTimer.singleShot(0, lambda: ticks.append(1))
        qtbot.waitUntil(lambda: ticks == [1], timeout=WAIT_MS)  # the Qt thread keeps going
        assert panel.count_label.text() == "Counting the images before the run starts…"
        assert started == [] and asked == []  # nothing starts, and nothing is asked, before the count
    finally:
        slow.gate.set()
    qtbot.waitUntil(lambda: started == [True], timeout=WAIT_MS)
    images = 5 * 100 * 2  # red, blue, green, light grey, dark grey × 100 × 2 per variant
    assert asked == [f"This will make {images:,} images (more than 500)."]
    assert adapter.exact_count() == images
    run = adapter.plan_for_run(PipelineConfig())  # the counted plan: nothing parsed again
    assert run.count == images
    assert threading.main_thread() not in slow.readers


def test_the_wildcards_folder_is_kept_in_settings_and_follows_them(qtbot, qloop, wildcards, tmp_path):
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import peek_settings
    from tests.storage.helpers import app_controller_for

    paths = AppPaths.default()
    app = app_controller_for(paths)
    adapter = RandomizerAdapter(debounce_ms=10, app=app)
    panel = RandomizerPanel(adapter)
    qtbot.addWidget(panel)
    panel.enabled_box.setChecked(True)
    assert panel.wildcards.text() == "" and adapter.wildcards_dir is None
    # Typed in the Variants panel: kept in the settings, written off the Qt thread.
    panel.wildcards.setText(str(wildcards))
    panel.wildcards.editingFinished.emit()
    assert adapter.wildcards_dir == wildcards and app.settings.wildcards_dir == str(wildcards)
    with qtbot.waitSignal(adapter.count_changed, timeout=WAIT_MS) as blocker:
        adapter.set_template("__animals__")
    assert blocker.args[0] > 1
    qtbot.waitUntil(lambda: paths.settings_file.exists()
                    and peek_settings(paths).wildcards_dir == str(wildcards), timeout=WAIT_MS)

    # The next start finds it again, in the adapter and in the panel's field.
    later = RandomizerAdapter(debounce_ms=10, app=app_controller_for(paths))
    later_panel = RandomizerPanel(later)
    qtbot.addWidget(later_panel)
    assert later.wildcards_dir == wildcards and later_panel.wildcards.text() == str(wildcards)
    later.close()

    # Changed in the Settings dialog: the adapter recounts with the new folder, the field shows it.
    other = tmp_path / "other"
    other.mkdir()
    (other / "animals.txt").write_text("cat\n", encoding="utf-8")
    with qtbot.waitSignal(adapter.count_changed, timeout=WAIT_MS) as blocker:
        assert app.apply_settings({"wildcards_dir": str(other)}) == ""
    assert blocker.args == [1, 1]
    assert panel.wildcards.text() == str(other)
    assert app.apply_settings({"wildcards_dir": ""}) == ""
    assert adapter.wildcards_dir is None and panel.wildcards.text() == ""
    qtbot.waitUntil(lambda: not app.tasks.busy, timeout=WAIT_MS)  # the last save is written
    adapter.close()
