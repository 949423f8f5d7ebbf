"""Journey: the draft funnel, clicked through against a fake server — drafts, pick, refine, look
back at the drafts, close the window, reopen on the same STABLENEW_HOME and find the funnel at
the same stage with the same picks, then polish and upscale to one final image that carries the
draft's seed."""

from __future__ import annotations

import sqlite3

from PySide6.QtCore import Qt

# The queue's first start imports its runner on the Qt thread: a known stall of every first Run
# ("a module's first import"), which the watchdog cannot always tell when the import runs
# through shiboken's import hook. Imported here so this journey times the funnel, not that.
import stablenew.cluster.machinery  # noqa: F401
import stablenew.cluster.queue_runner  # noqa: F401
import stablenew.pipeline.runner  # noqa: F401
from stablenew.pipeline.infotext import read_image_metadata
from stablenew.storage.paths import AppPaths
from tests.journeys.conftest import fill_cards, save_server

LEFT = Qt.MouseButton.LeftButton


def open_funnel_tab(qtbot, window):
    bar = window.work_tabs.tabBar()
    index = next(i for i in range(bar.count()) if bar.tabText(i) == "Funnel")
    qtbot.mouseClick(bar, LEFT, pos=bar.tabRect(index).center())
    qtbot.waitUntil(lambda: window.work_tabs.currentWidget() is window.funnel_panel, timeout=3000)
    panel = window.funnel_panel
    assert type(panel).__name__ == "FunnelPanel"
    return panel


def type_into(qtbot, spin, value: int) -> None:
    edit = spin.lineEdit()
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, str(value))
    qtbot.keyClick(edit, Qt.Key.Key_Return)


def ready(panel, count: int) -> bool:
    """The stage looked at shows *count* made images."""
    images = panel.controller.images()
    return len(images) == count and all(i.path for i in images) and all(
        t.isEnabled() for t in panel.tiles[:count])


def seed_of(path: str) -> int:
    return int(read_image_metadata(path).parsed["Seed"])


def job_tiers() -> dict[str, str | None]:
    con = sqlite3.connect(f"file:{AppPaths.default().database_file}?mode=ro", uri=True, timeout=5)
    try:
        return dict(con.execute("SELECT name, tier FROM queue_jobs").fetchall())
    finally:
        con.close()


def test_a_funnel_from_drafts_to_one_final_image_survives_a_restart(qtbot, journey, fake_process):
    fake = fake_process(step_ms=2)
    save_server(fake.url)
    window = journey.open()
    fill_cards(qtbot, window, "a red lighthouse at dusk", 1)
    for path, value in (("txt2img.width", 128), ("txt2img.height", 128)):
        window.pipeline_panel.editor(path).set_value(value)
    panel = open_funnel_tab(qtbot, window)
    assert panel.summary.text().startswith("Start a funnel")

    # Four drafts are enough here (the settings say how many each stage makes).
    qtbot.mouseClick(panel.settings_button, LEFT)
    assert panel.settings_box.isVisible()
    type_into(qtbot, panel.settings_fields[("counts", "drafts")], 4)
    type_into(qtbot, panel.settings_fields[("counts", "refine")], 2)
    type_into(qtbot, panel.settings_fields[("draft", "steps")], 4)
    qtbot.waitUntil(lambda: panel.controller.settings.counts.refine == 2, timeout=3000)

    qtbot.mouseClick(panel.start_button, LEFT)
    qtbot.waitUntil(lambda: ready(panel, 4), timeout=30000)
    drafts = panel.controller.funnel.runs[0]
    assert all(seed_of(path) == seed for path, seed in zip(drafts.images, drafts.seeds, strict=True))
    assert read_image_metadata(drafts.images[0]).width == 64  # drafts are half the cards' size
    assert not panel.go_button.isEnabled()

    qtbot.mouseClick(panel.tiles[1], LEFT)
    qtbot.mouseClick(panel.tiles[3], LEFT)
    assert panel.go_button.text() == "Refine 2 picked images"
    qtbot.mouseClick(panel.go_button, LEFT)
    qtbot.waitUntil(lambda: panel.crumbs["refine"].isChecked() and ready(panel, 2), timeout=30000)
    refined = panel.controller.funnel.runs[1]
    assert refined.seeds == [drafts.seeds[1], drafts.seeds[3]]
    assert [seed_of(p) for p in refined.images] == refined.seeds
    refined_meta = read_image_metadata(refined.images[0])
    assert refined_meta.width == 128  # back up to the cards' size
    # Redrawn from the picked draft (image to image), not rendered again with a hires pass.
    assert refined_meta.parsed["Denoising strength"] == "0.45"
    assert "Hires resize" not in refined_meta.parsed
    qtbot.mouseClick(panel.tiles[1], LEFT)  # the refined draft 4 goes on

    # The breadcrumb goes back to the drafts, with their picks, and forward again.
    qtbot.mouseClick(panel.crumbs["drafts"], LEFT)
    qtbot.waitUntil(lambda: [t.isChecked() for t in panel.tiles[:4]] == [False, True, False, True],
                    timeout=3000)
    assert panel.crumbs["refine"].isEnabled() and not panel.crumbs["polish"].isEnabled()
    qtbot.mouseClick(panel.crumbs["refine"], LEFT)
    qtbot.waitUntil(lambda: [t.isChecked() for t in panel.tiles[:2]] == [False, True], timeout=3000)
    assert panel.go_button.text() == "Polish 1 picked image"

    # Closed and opened again: the same stage, the same picks.
    qtbot.waitUntil(lambda: not panel.controller.tasks.busy, timeout=5000)
    window = journey.restart()
    panel = open_funnel_tab(qtbot, window)
    qtbot.waitUntil(lambda: panel.crumbs["refine"].isChecked() and ready(panel, 2), timeout=10000)
    assert [t.isChecked() for t in panel.tiles[:2]] == [False, True]
    assert panel.controller.funnel.runs[0].picks == [1, 3]
    assert panel.summary.text() == ("Refined: 2 of 2 images ready, 1 picked (pick up to 3 to "
                                    "polish).")

    qtbot.mouseClick(panel.go_button, LEFT)
    qtbot.waitUntil(lambda: panel.crumbs["polish"].isChecked() and ready(panel, 1), timeout=30000)
    qtbot.mouseClick(panel.tiles[0], LEFT)
    assert panel.go_button.text() == "Upscale 1 picked image"
    qtbot.mouseClick(panel.go_button, LEFT)
    qtbot.waitUntil(lambda: panel.crumbs["final"].isChecked() and ready(panel, 1), timeout=30000)
    assert not panel.go_button.isVisible()

    final = panel.controller.funnel.runs[3]
    meta = read_image_metadata(final.images[0])
    assert int(meta.parsed["Seed"]) == drafts.seeds[3], "the final image has the draft's seed"
    assert meta.parsed["Prompt"] == "a red lighthouse at dusk"
    assert (meta.width, meta.height) == (256, 256)  # refined to 128, upscaled twice
    # Each stage was a queue job asking for its tier.
    tiers = job_tiers()
    assert sorted(tiers.values()) == ["draft", "premium", "quality", "quality"]
