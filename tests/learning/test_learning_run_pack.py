"""pytest-qt: a learning run's pack is chosen from the packs there are (those "Which is better?"
lists), starts as the pack chosen there, and a name typed that is not one of them is said to be
a new pack — with the near one when it looks like a typo — before the run records under it."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from stablenew.gui.panels.learning_panel import LearningPanel
from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore
from stablenew.pipeline.config import PipelineConfig
from tests.learning.helpers import image_record, until


def choose(qtbot, box, downs: int) -> None:
    """Open a combo's list with the mouse (on its arrow: the rest of an editable one is for
    typing), move *downs* rows from the one chosen (up when negative) and press Enter."""
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(box.width() - 8, box.height() // 2))
    view = box.view()
    qtbot.waitUntil(view.isVisible, timeout=5000)
    for _ in range(abs(downs)):
        qtbot.keyClick(view, Qt.Key.Key_Down if downs > 0 else Qt.Key.Key_Up)
    qtbot.keyClick(view, Qt.Key.Key_Return)


def open_tab(qtbot, panel: LearningPanel, widget) -> None:
    bar = panel.tabs.tabBar()
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton,
                     pos=bar.tabRect(panel.tabs.indexOf(widget)).center())
    qtbot.waitUntil(widget.isVisible, timeout=5000)


def type_pack(qtbot, panel: LearningPanel, text: str) -> None:
    line = panel.pack_box.lineEdit()
    line.setFocus()
    line.selectAll()
    qtbot.keyClick(line, Qt.Key.Key_Delete)
    qtbot.keyClicks(line, text)


async def test_the_runs_pack_is_a_known_one_or_said_to_be_new(qtbot, tmp_path, learning_rooms):
    db = tmp_path / "db.sqlite"
    with LearningStore(db) as store:
        for i, pack in enumerate(("Foxes", "Owls", "Owls", "")):
            config = PipelineConfig().with_changes({"txt2img.cfg_scale": 5 + i})
            record = store.add_record(LearningRecord.from_image_record(
                image_record(tmp_path / "out", i, config=config, pack=pack)))
            store.rate(record.id, 2 + i % 3)

    learning, taste = learning_rooms(db, seed=1)
    panel = LearningPanel(learning)
    panel.add_taste(taste)  # as the window joins the rooms
    qtbot.addWidget(panel)
    panel.resize(900, 800)
    panel.show()
    box = panel.pack_box
    await until(lambda: box.count() == 2, 10)
    assert [box.itemText(i) for i in range(2)] == ["Foxes", "Owls"]
    assert box.currentText() == "" and not panel.pack_words.isVisible()

    # The pack chosen in "Which is better?" is the run's pack too.
    open_tab(qtbot, panel, panel.which)
    choose(qtbot, panel.which.pack_box, 3)  # All packs, without a pack, Foxes, Owls
    await until(lambda: taste.pack == "Owls", 5)
    assert box.currentText() == "Owls" and not panel.pack_words.isVisible()

    # A typo is caught before anything is recorded under it.
    type_pack(qtbot, panel, "Owsl")
    assert panel.pack_words.isVisible()
    assert panel.pack_words.text() == ("“Owsl” is a new pack: no images are recorded under "
                                       "it yet. Did you mean “Owls”?")
    choose(qtbot, box, 0)  # the list opens on the first pack: Foxes
    assert box.currentText() == "Foxes" and not panel.pack_words.isVisible()

    # A new pack is allowed, said plainly, and the run is recorded under it.
    type_pack(qtbot, panel, "Badgers")
    assert panel.pack_words.text() == ("“Badgers” is a new pack: no images are recorded "
                                       "under it yet.")
    panel.parameter_box.setCurrentIndex(panel.parameter_box.findData("steps"))
    panel.values_edit.setText("4, 6")
    panel.images_spin.setValue(1)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert learning.runs.running
    await until(lambda: not learning.runs.running, 30)
    assert learning.runs.run_result.pack == "Badgers"
    # Later choices in "Which is better?" leave a pack the user typed alone.
    open_tab(qtbot, panel, panel.which)
    choose(qtbot, panel.which.pack_box, -1)  # from Owls up to Foxes
    await until(lambda: taste.pack == "Foxes", 5)
    assert box.currentText() == "Badgers"
