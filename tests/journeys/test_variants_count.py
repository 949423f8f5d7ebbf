"""Journey: the Variants tab says how many images a Run makes; Run makes exactly that many, and
after a restart the gallery still lists each of them once."""

from __future__ import annotations

import re

from PySide6.QtCore import QPoint, Qt

from tests.journeys.conftest import save_server
from tests.journeys.test_ratings_after_restart import type_into


def test_the_count_shown_is_what_a_run_makes(qtbot, journey, fake_process):
    fake = fake_process(step_ms=3)
    save_server(fake.url)
    window = journey.open()
    type_into(qtbot, window, "txt2img.prompt", "a fox")
    for path, value in (("txt2img.steps", 3),
                        ("txt2img.width", 64), ("txt2img.height", 64)):
        window.pipeline_panel.editor(path).set_value(value)
    window.work_tabs.setCurrentWidget(window.variants_panel)
    panel = _panel(window)
    qtbot.waitUntil(panel.enabled_box.isVisible, timeout=5000)
    box = panel.enabled_box
    # On the box itself, as a user clicks it (the widget stretches far beyond its label).
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    assert panel.enabled_box.isChecked()
    panel.template.setFocus()
    panel.template.clear()
    qtbot.keyClicks(panel.template, "a {red|blue|green} fox in {snow|rain}")
    # 3 × 2 variants: what the tab says it will make is what Run must make.
    qtbot.waitUntil(lambda: re.search(r"make (\d+) images? in 6 variants", panel.count_label.text())
                    is not None, timeout=10000)
    shown = panel.count_label.text()
    expected = int(re.search(r"make (\d+) images?", shown).group(1))
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "running", timeout=10000)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=60000)
    assert window.session.pipeline.error is None, window.session.pipeline.error
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == expected, timeout=10000)
    made = sorted(window.session.app.output_dir.rglob("*.png"))
    assert len(made) == expected, (shown, [p.name for p in made])

    window = journey.restart()
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == expected, timeout=10000)
    model = window.gallery_panel.model
    keys = [model.index(row).data(model.KeyRole) for row in range(model.rowCount())]
    assert len(set(keys)) == expected, "each image listed once"


def _panel(window):
    from stablenew.gui.panels.randomizer_panel import RandomizerPanel

    found = window.findChild(RandomizerPanel)
    assert found is not None, "the Variants room did not open"
    return found
