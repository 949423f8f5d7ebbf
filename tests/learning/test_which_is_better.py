"""pytest-qt: "which is better?" — pick with ←/→ and the Same button, then queue the next
experiment with one click; the learning run it queues is made on the fake server."""

from __future__ import annotations

from PySide6.QtCore import Qt

from stablenew.controller.learning_controller import LearningController, LearningMode
from stablenew.controller.taste_controller import TasteController
from stablenew.gui.panels.which_is_better import WhichIsBetterPanel
from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore
from stablenew.learning.suggest import next_experiment
from stablenew.learning.taste import fit_taste
from stablenew.pipeline.config import PipelineConfig
from tests.learning.helpers import image_record, until


def _images(tmp_path, db):
    with LearningStore(db) as store:
        for i in range(6):
            config = PipelineConfig().with_changes({"txt2img.cfg_scale": 5 if i % 2 else 9})
            record = store.add_record(LearningRecord.from_image_record(
                image_record(tmp_path / "out", i, config=config, pack="Foxes")))
            store.rate(record.id, 4 if i % 2 else 2)


def _choices(db):
    with LearningStore(db) as store:
        return [(c.winner_id, c.loser_id, c.same, c.source) for c in store.choices()]


async def test_choices_by_keys_and_buttons_are_kept_and_the_suggestion_is_queued(
        qtbot, tmp_path, learning_rooms):
    db = tmp_path / "db.sqlite"
    _images(tmp_path, db)

    learning, taste = learning_rooms(db, seed=3)
    panel = WhichIsBetterPanel(taste)
    qtbot.addWidget(panel)
    panel.show()
    await until(lambda: panel.left.has_image and panel.right.has_image
                    and panel.left_button.isEnabled(), 10)
    first = taste.pair.pair
    # cfg is what the next experiment is about, so the pair differs in it.
    assert first.parameter == "cfg" and first.left_value != first.right_value
    panel.setFocus()
    qtbot.keyClick(panel, Qt.Key.Key_Left)
    await until(lambda: len(_choices(db)) == 1, 10)
    assert _choices(db) == [(first.left_id, first.right_id, False, "which is better")]

    await until(lambda: panel.same_button.isEnabled(), 10)
    second = taste.pair.pair
    qtbot.mouseClick(panel.same_button, Qt.MouseButton.LeftButton)
    await until(lambda: panel.right_button.isEnabled(), 10)
    third = taste.pair.pair
    qtbot.mouseClick(panel.right_button, Qt.MouseButton.LeftButton)
    await until(lambda: len(_choices(db)) == 3, 10)
    assert _choices(db)[1:] == [(second.left_id, second.right_id, True, "which is better"),
                                (third.right_id, third.left_id, False, "which is better")]
    await until(lambda: panel.counter.text() == "3 choices kept this session",
                 10)

    # The suggestion, in words, and one click queues it as a learning run.
    await until(lambda: panel.queue_button.isEnabled(), 10)
    suggestion = taste.suggestion
    assert panel.suggestion.text() == suggestion.text and "-image run at" in suggestion.text
    qtbot.mouseClick(panel.queue_button, Qt.MouseButton.LeftButton)
    assert learning.runs.running
    assert panel.notice.message.startswith(f"Queued: a learning run on "
                                           f"{suggestion.label.lower()} (9 images)")
    await until(lambda: not learning.runs.running, 60)
    run = learning.runs.run_result
    assert run.parameter == suggestion.parameter and run.pack == suggestion.pack
    assert run.values == suggestion.values and len(run.cells) == 9
    assert run.state.value == "completed", run.message


async def test_without_two_images_the_panel_says_so_and_queue_switches_to_active(qtbot, tmp_path):
    db = tmp_path / "db.sqlite"
    # No prompt on the settings: a learning run could not start even in Active.
    learning = LearningController(db, base_config=PipelineConfig, mode=LearningMode.passive,
                                  remember_mode=False)
    taste = TasteController(db, learning=learning)
    panel = WhichIsBetterPanel(taste)
    qtbot.addWidget(panel)
    panel.show()
    try:
        await until(lambda: panel.queue_button.isEnabled(), 10)
        assert panel.suggestion.text() == ("No rated images yet. A 9-image run at 20, 25 and 30 "
                                           "steps is a good start.")
        assert not panel.left_button.isEnabled() and not panel.left.has_image
        qtbot.keyClick(panel, Qt.Key.Key_Left)  # nothing to choose: nothing happens
        assert _choices(db) == []
        # In Passive the button says that it switches learning to Active, and does.
        assert panel.queue_button.text() == "Switch to Active and queue"
        learning.set_mode(LearningMode.active)  # switched elsewhere (the Learning tab's combo)
        assert panel.queue_button.text() == "Queue it"
        learning.set_mode(LearningMode.passive)
        assert panel.queue_button.text() == "Switch to Active and queue"
        qtbot.mouseClick(panel.queue_button, Qt.MouseButton.LeftButton)
        assert learning.mode is LearningMode.active
        assert panel.queue_button.text() == "Queue it"
        # Active now, but no prompt on the settings: the run cannot start, and that is said
        # once, beside the button (the Learning tab's own notice stays clear).
        assert not learning.runs.running
        assert "needs a prompt" in panel.notice.message and panel.notice.level == "error"
        assert learning.error is None
    finally:
        await taste.aclose()
        await learning.aclose()


async def test_an_unreadable_image_is_left_out_and_another_pair_shown(qtbot, tmp_path):
    db = tmp_path / "db.sqlite"
    with LearningStore(db) as store:
        records = [store.add_record(LearningRecord.from_image_record(
            image_record(tmp_path / "out", i, pack="Foxes"))) for i in range(3)]
    broken = records[1]
    broken_path = tmp_path / "out" / "run-1" / "00001.png"
    broken_path.write_bytes(b"\x89PNG\r\n\x1a\n half written")
    taste = TasteController(db, seed=5)
    shown = []
    taste.pair_changed.connect(shown.append)
    try:
        for count in range(1, 5):
            taste.next_pair()
            await until(lambda n=count: len(shown) == n and not taste.tasks.busy)
        assert all(s is not None for s in shown)
        assert all(broken.id not in (s.pair.left_id, s.pair.right_id) for s in shown)
        assert taste.error is None
    finally:
        await taste.aclose()


async def test_the_pack_is_chosen_from_the_packs_there_are_not_typed(qtbot, tmp_path):
    db = tmp_path / "db.sqlite"
    with LearningStore(db) as store:
        for i, pack in enumerate(("Foxes", "Owls", "Owls", "")):
            config = PipelineConfig().with_changes({"txt2img.cfg_scale": 5 + i})
            record = store.add_record(LearningRecord.from_image_record(
                image_record(tmp_path / "out", i, config=config, pack=pack)))
            store.rate(record.id, 2 + i % 3)
    taste = TasteController(db, seed=1)
    panel = WhichIsBetterPanel(taste)
    qtbot.addWidget(panel)
    panel.show()
    try:
        box = panel.pack_box
        await until(lambda: box.count() == 4, 10)
        assert [box.itemText(i) for i in range(4)] == [
            "All packs", "Images without a pack", "Foxes", "Owls"]
        assert not box.isEditable()  # nothing to misspell
        # Pick "Owls" the way a user does: open the list with the mouse, then arrows and Enter.
        qtbot.mouseClick(box, Qt.MouseButton.LeftButton)
        view = box.view()
        await until(lambda: view.isVisible(), 5)
        for _ in range(3):
            qtbot.keyClick(view, Qt.Key.Key_Down)
        qtbot.keyClick(view, Qt.Key.Key_Return)
        await until(lambda: taste.pack == "Owls", 5)
        await until(lambda: taste.suggestion is not None and taste.suggestion.pack == "Owls"
                     and not taste.tasks.busy, 10)
        assert box.currentText() == "Owls"
        # The suggestion comes from that pack's images alone.
        with LearningStore(db) as store:
            owls = next_experiment(fit_taste(store, "Owls")).text
            every = next_experiment(fit_taste(store, None)).text
        assert panel.suggestion.text() == owls != every
    finally:
        await taste.aclose()
