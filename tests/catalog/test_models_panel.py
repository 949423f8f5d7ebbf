"""The Models panel on a real catalog controller: read a folder, filter, add a LoRA, watch the folder."""

from __future__ import annotations

import hashlib

import pytest
from PySide6.QtCore import QPoint, Qt

from stablenew.controller.catalog_controller import CatalogController
from stablenew.gui.panels.models_panel import ModelsPanel
from stablenew.pipeline.config import PipelineConfig
from tests.catalog.factory import PNG_2PX, SDXL_CHECKPOINT_KEYS, SDXL_KEYS, write_json, write_model

WAIT_MS = 8000


class Cards:
    """Stands in for the pipeline cards: the current config, and the configs loaded into them."""

    def __init__(self) -> None:
        self.config = PipelineConfig().with_changes({"txt2img.prompt": "a city at night",
                                                     "txt2img.checkpoint": "juggernautXL"})

    def load(self, config: PipelineConfig) -> None:
        self.config = config


@pytest.fixture
def library(tmp_path):
    loras = tmp_path / "Lora"
    write_model(loras / "style" / "neon.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"}, SDXL_KEYS)
    write_json(loras / "style" / "neon.json", {"activation text": "neonstyle, glowing lines",
                                               "preferred weight": 0.6})
    (loras / "style" / "neon.preview.png").write_bytes(PNG_2PX)
    write_model(loras / "character" / "mira.safetensors", {"ss_base_model_version": "sd_v1",
                                                           "modelspec.trigger_phrase": "mira girl"})
    write_model(loras / "plain.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"}, SDXL_KEYS)
    write_model(tmp_path / "ckpt" / "juggernautXL.safetensors", None, SDXL_CHECKPOINT_KEYS)
    return loras, tmp_path / "ckpt"


@pytest.fixture
def setup(qtbot, qloop, tmp_path, library):
    controller = CatalogController(tmp_path / "catalog.db", quiet_ms=150)
    cards = Cards()
    controller.set_prompt_target(lambda: cards.config, cards.load)
    panel = ModelsPanel(controller)
    qtbot.addWidget(panel)
    panel.resize(700, 600)
    panel.show()
    loras, ckpts = library
    controller.add_folder(ckpts, "checkpoint")
    controller.add_folder(loras)
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3 and not controller._tasks.busy, timeout=WAIT_MS)
    yield panel, controller, cards, loras
    qtbot.waitUntil(lambda: not controller._tasks.busy, timeout=WAIT_MS)
    controller._quiet.stop()
    controller.wait_hashed(WAIT_MS / 1000)
    controller._cache.close()


def _click(qtbot, panel, name):
    rows = [e.name for e in panel.model.rows]
    index = panel.model.index(rows.index(name))
    rect = panel.grid.visualRect(index)
    qtbot.mouseClick(panel.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_filter_pick_and_add_a_lora_with_its_ticked_trigger_words(qtbot, setup):
    panel, controller, cards, _loras = setup
    assert [e.name for e in panel.model.rows] == ["mira", "neon", "plain"]
    qtbot.keyClicks(panel.search, "glow")
    assert [e.name for e in panel.model.rows] == ["neon"]
    panel.search.clear()
    panel.family.setCurrentIndex(panel.family.findData("SDXL"))
    assert [e.name for e in panel.model.rows] == ["neon", "plain"]
    panel.category.setCurrentIndex(panel.category.findData("style"))
    assert [e.name for e in panel.model.rows] == ["neon"]

    _click(qtbot, panel, "neon")
    assert [b.text() for b in panel.trigger_boxes] == ["neonstyle", "glowing lines"]
    assert [b.isChecked() for b in panel.trigger_boxes] == [True, False]
    assert panel.weight.value() == pytest.approx(0.6)
    second = panel.trigger_boxes[1]
    qtbot.waitUntil(lambda: second.isVisible() and second.width() > 20, timeout=WAIT_MS)  # laid out
    qtbot.mouseClick(second, Qt.MouseButton.LeftButton)
    assert second.isChecked()
    controller.entries_changed.emit()  # what arriving hashes do: the ticks and selection stay
    assert panel.trigger_boxes[1] is second and second.isChecked() and panel._entry().name == "neon"
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    assert cards.config.txt2img.prompt == "a city at night, neonstyle, glowing lines, <lora:neon:0.6>"
    assert controller.current_checkpoint_base() == "SDXL"

    # The preview is decoded off the Qt thread and then shown.
    preview = controller.catalog.find("neon").preview
    qtbot.waitUntil(lambda: preview in panel.model._icons, timeout=WAIT_MS)

    panel.category.setCurrentIndex(0)
    panel.family.setCurrentIndex(0)
    _click(qtbot, panel, "plain")
    assert panel.trigger_boxes == [] and "no trigger words: add some" in panel.details.text()


def test_a_change_that_keeps_the_entries_costs_the_grid_nothing(qtbot, setup):
    # Hashes arrive in bursts (every 300 ms while thousands are hashed), and node checks repeat
    # the same lists: the grid is not reset or repainted row by row, the choices not refilled.
    panel, controller, _cards, _loras = setup
    panel.tag.setCurrentIndex(0)
    seen: list[str] = []
    panel.model.modelReset.connect(lambda: seen.append("reset"))
    panel.model.dataChanged.connect(lambda *_: seen.append("repaint"))
    panel.category.model().rowsRemoved.connect(lambda *_: seen.append("categories refilled"))
    panel.tag.model().rowsRemoved.connect(lambda *_: seen.append("tags refilled"))
    controller.entries_changed.emit()
    controller.set_current_node("gpu-1")
    assert seen == []
    assert [e.name for e in panel.model.rows] == ["mira", "neon", "plain"]


def test_hashes_arrive_in_the_background(qtbot, setup):
    _panel, controller, _cards, loras = setup
    neon = controller.catalog.find("neon")
    qtbot.waitUntil(lambda: neon.sha256 is not None, timeout=WAIT_MS)
    assert neon.sha256 == hashlib.sha256((loras / "style" / "neon.safetensors").read_bytes()).hexdigest()


def test_a_new_lora_in_a_watched_folder_appears_after_the_quiet_period(qtbot, setup):
    panel, controller, _cards, loras = setup
    write_model(loras / "character" / "newcomer.safetensors", {"modelspec.trigger_phrase": "newbie"})
    # Waits for the newcomer itself, not the next "entries changed": the hashes of the first
    # three files still trickle in after setup (a loaded machine hashes slowly), and their
    # repaint sends that signal too, before the folder is read again.
    qtbot.waitUntil(lambda: "newcomer" in [e.name for e in panel.model.rows], timeout=WAIT_MS)
    assert "Reading" not in panel.status.text()


def test_only_the_loras_the_server_lists(qtbot, setup):
    panel, controller, _cards, _loras = setup
    assert not panel.on_server.isEnabled()  # no server has answered yet
    controller.set_node_loras("127.0.0.1:7860", ["plain.safetensors", "elsewhere"])
    controller.set_current_node("127.0.0.1:7860")
    corner = panel.on_server.rect().topLeft() + QPoint(6, 6)  # on the box, not beside its words
    qtbot.mouseClick(panel.on_server, Qt.MouseButton.LeftButton, pos=corner)
    assert panel.on_server.isChecked()
    assert [e.name for e in panel.model.rows] == ["plain"]


def test_tag_and_favourite_filters_the_weight_slider_and_where_a_lora_is(qtbot, setup):
    panel, controller, _cards, loras = setup
    write_json(loras / "plain.metadata.json", {"tags": ["City", "night"], "favorite": True})
    write_json(loras / "style" / "neon.metadata.json", {"tags": ["city"]})
    controller.refresh()
    qtbot.waitUntil(lambda: panel.tag.count() == 3, timeout=WAIT_MS)  # All tags, city, night
    assert [panel.tag.itemText(i) for i in range(3)] == ["All tags", "city", "night"]
    panel.tag.setCurrentIndex(panel.tag.findData("city"))
    assert [e.name for e in panel.model.rows] == ["neon", "plain"]
    qtbot.mouseClick(panel.favourites, Qt.MouseButton.LeftButton)
    assert [e.name for e in panel.model.rows] == ["plain"]
    qtbot.mouseClick(panel.favourites, Qt.MouseButton.LeftButton)
    panel.tag.setCurrentIndex(0)
    assert len(panel.model.rows) == 3
    # The slider and the box follow each other.
    _click(qtbot, panel, "neon")
    assert panel.weight_slider.value() == 12  # 0.6
    panel.weight_slider.setValue(18)
    assert panel.weight.value() == pytest.approx(0.9)
    panel.weight.setValue(0.33)
    assert panel.weight_slider.value() == 7 and panel.weight.value() == pytest.approx(0.33)
    # Which nodes list it, once their servers have said.
    controller.set_node_loras("big-gpu", ["neon"])
    controller.set_node_loras("laptop", ["plain"])
    _click(qtbot, panel, "plain")
    _click(qtbot, panel, "neon")
    assert "on big-gpu" in panel.details.text() and "laptop" not in panel.details.text()


def test_try_this_lora_starts_a_learning_run_over_its_weight(qtbot, setup):
    panel, controller, cards, _loras = setup
    started = []

    def start(config, parameter, values):
        if not started:
            started.append((config, parameter, values))
            return ""
        return "A learning run is already going; wait for it or stop it."

    controller.runs.set_starter(start)
    _click(qtbot, panel, "neon")
    assert panel.try_button.isEnabled()
    with qtbot.waitSignal(controller.learning_run_started, timeout=WAIT_MS) as said:
        qtbot.mouseClick(panel.try_button, Qt.MouseButton.LeftButton)
    assert said.args == ["neon"]
    config, parameter, values = started[0]
    assert parameter == "lora:neon" and values == [0.2, 0.4, 0.6, 0.8, 1.0]
    # The run's prompt carries the LoRA and its first trigger word; the cards are untouched.
    assert config.txt2img.prompt == "a city at night, neonstyle, <lora:neon:1>"
    assert cards.config.txt2img.prompt == "a city at night"
    assert "rate the images in the Learning tab" in panel.status.text()
    qtbot.mouseClick(panel.try_button, Qt.MouseButton.LeftButton)
    assert panel.status.text() == "A learning run is already going; wait for it or stop it."


def test_checkpoints_show_in_the_same_grid_and_one_click_makes_it_the_model(qtbot, setup):
    """Models lists checkpoints too (the issue's "LoRAs and checkpoints"): the folder's file
    and the server's own list, by family; "Use this model" sets the Text-to-image model."""
    panel, controller, cards, _loras = setup
    controller.list_server("gpu1", "http://127.0.0.1:9", "a1111",
                           ("SD15/dreamshaper_8.safetensors", "flux1-dev-fp8.safetensors"))
    qtbot.waitUntil(lambda: len(controller.filtered(kind="checkpoint")) == 3, timeout=WAIT_MS)
    panel.kind.setCurrentIndex(panel.kind.findData("checkpoint"))
    assert sorted(e.name for e in panel.model.rows) == ["dreamshaper_8", "flux1-dev-fp8",
                                                         "juggernautXL"]
    assert panel.swatch_button.isHidden() and panel.try_button.isHidden()
    assert panel.add_button.text() == "Use this model"
    panel.family.setCurrentIndex(panel.family.findData("Flux"))
    assert [e.name for e in panel.model.rows] == ["flux1-dev-fp8"]
    _click(qtbot, panel, "flux1-dev-fp8")
    assert "Flux" in panel.details.text() and "gpu1" in panel.details.text()
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    assert cards.config.txt2img.checkpoint == "flux1-dev-fp8.safetensors"
    # A folder's own file goes by its file name, which both kinds of server find.
    panel.family.setCurrentIndex(0)
    _click(qtbot, panel, "juggernautXL")
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    assert cards.config.txt2img.checkpoint == "juggernautXL.safetensors"
    # Back to LoRAs: their actions return.
    panel.kind.setCurrentIndex(panel.kind.findData("lora"))
    assert [e.name for e in panel.model.rows] == ["mira", "neon", "plain"]
    assert not panel.try_button.isHidden() and panel.add_button.text() == "Add to prompt"


def test_an_empty_catalog_still_offers_all_categories_and_all_tags(qtbot, qloop, tmp_path):
    controller = CatalogController(tmp_path / "catalog.db")
    panel = ModelsPanel(controller)
    qtbot.addWidget(panel)
    assert panel.category.currentText() == "All categories" and panel.tag.currentText() == "All tags"
    controller.entries_changed.emit()
    assert panel.category.count() == 1 and panel.tag.count() == 1
