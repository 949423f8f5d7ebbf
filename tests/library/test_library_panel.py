"""The library sidebar through the GUI: save, rename, apply, delete and undo, packs, broken files."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

from stablenew.controller.library_controller import ItemKind, LibraryController
from stablenew.gui.panels.library_panel import LibraryPanel
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.paths import AppPaths

WAIT_MS = 5000


class Cards:
    """Stands in for the pipeline cards: holds the current config and loads applied ones."""

    def __init__(self) -> None:
        self.config = PipelineConfig().with_changes({
            "txt2img.prompt": "a lighthouse", "txt2img.steps": 37, "txt2img.width": 640})
        self.loaded: list[PipelineConfig] = []

    def load(self, config: PipelineConfig) -> None:
        self.loaded.append(config)
        self.config = config


@pytest.fixture
def setup(qtbot, qloop):
    paths = AppPaths.default()
    controller = LibraryController(poll_ms=50)
    cards = Cards()
    controller.set_current_config_provider(lambda: cards.config)
    controller.config_applied.connect(cards.load)
    panel = LibraryPanel(controller)
    qtbot.addWidget(panel)
    controller.start()
    qtbot.waitUntil(lambda: panel.presets.count() >= 3, timeout=WAIT_MS)
    yield panel, controller, cards, paths
    controller.stop()
    # A file read still in its worker thread would call back into the loop after it closed.
    qtbot.waitUntil(lambda: not controller.tasks.busy, timeout=WAIT_MS)


def names(widget) -> list[str]:
    return [widget.item(i).text() for i in range(widget.count())]


def select(widget, text: str) -> None:
    for i in range(widget.count()):
        if widget.item(i).text() == text:
            widget.setCurrentRow(i)
            return
    raise AssertionError(f"{text!r} not in {names(widget)}")


def test_save_rename_apply_delete_and_undo(qtbot, setup):
    panel, controller, cards, paths = setup
    assert "SDXL quality  (shipped)" in names(panel.presets)

    panel.save_current("My look")
    qtbot.waitUntil(lambda: "My look" in names(panel.presets), timeout=WAIT_MS)
    saved = paths.presets_dir / "My look.yaml"
    assert saved.exists() and "steps: 37" in saved.read_text(encoding="utf-8")
    assert panel.status.text() == "Saved preset 'My look'."
    # A sampler only some servers have is saved, with a note and a warning mark in the list.
    cards.config = cards.config.with_changes({"txt2img.sampler": "Eulr a"})
    panel.save_current("Odd sampler")
    qtbot.waitUntil(lambda: "Odd sampler" in names(panel.presets), timeout=WAIT_MS)
    assert "Note: 'Eulr a' is not a sampler" in panel.status.text() and "'Euler a'" in panel.status.text()
    odd = panel.presets.findItems("Odd sampler", Qt.MatchFlag.MatchExactly)[0]
    assert "Warning:" in odd.toolTip() and not odd.icon().isNull()
    cards.config = cards.config.with_changes({"txt2img.sampler": "DPM++ 2M"})

    select(panel.presets, "My look")
    panel.rename_selected(ItemKind.preset, new_name="Night look")
    qtbot.waitUntil(lambda: "Night look" in names(panel.presets), timeout=WAIT_MS)
    assert "My look" not in names(panel.presets) and not saved.exists()

    # Apply a shipped preset: its settings land on the cards, the prompt stays.
    select(panel.presets, "SDXL quality  (shipped)")
    panel.apply_selected(ItemKind.preset)
    assert cards.loaded[-1].txt2img.width == 1024 and cards.loaded[-1].txt2img.steps == 30
    assert cards.loaded[-1].txt2img.prompt == "a lighthouse"
    # Apply the saved one: back to the settings it captured.
    select(panel.presets, "Night look")
    panel.apply_selected(ItemKind.preset)
    assert (cards.loaded[-1].txt2img.width, cards.loaded[-1].txt2img.steps) == (640, 37)

    select(panel.presets, "Night look")
    panel.delete_selected(ItemKind.preset)
    qtbot.waitUntil(lambda: "Night look" not in names(panel.presets), timeout=WAIT_MS)
    assert not (paths.presets_dir / "Night look.yaml").exists()
    assert not panel.undo_button.isHidden()
    qtbot.mouseClick(panel.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Night look" in names(panel.presets), timeout=WAIT_MS)
    assert (paths.presets_dir / "Night look.yaml").exists()
    qtbot.waitUntil(lambda: panel.undo_button.isHidden(), timeout=WAIT_MS)


def test_shipped_preset_cannot_be_deleted_and_the_error_is_shown(qtbot, setup):
    panel, controller, _cards, _paths = setup
    select(panel.presets, "SDXL quality  (shipped)")
    panel.delete_selected(ItemKind.preset)
    qtbot.waitUntil(lambda: panel.notice.isVisible() or not panel.notice.isHidden(), timeout=WAIT_MS)
    assert "ships with StableNew" in panel.notice.message
    assert controller.error is not None
    assert "SDXL quality  (shipped)" in names(panel.presets)


def test_broken_preset_is_listed_with_its_error_as_tooltip(qtbot, setup):
    panel, controller, cards, paths = setup
    paths.presets_dir.mkdir(parents=True, exist_ok=True)
    bad = paths.presets_dir / "bad.yaml"
    bad.write_text("version: 1\nname: Bad\nconfig:\n  txt2img:\n    steps: many\n", encoding="utf-8")
    controller.refresh()
    qtbot.waitUntil(lambda: "bad" in names(panel.presets), timeout=WAIT_MS)
    item = panel.presets.findItems("bad", Qt.MatchFlag.MatchExactly)[0]
    assert "line 5" in item.toolTip() and "config.txt2img.steps" in item.toolTip()
    assert "cannot be used" in item.toolTip()
    select(panel.presets, "bad")
    before = len(cards.loaded)
    panel.apply_selected(ItemKind.preset)
    assert len(cards.loaded) == before and "cannot be used" in panel.notice.message
    assert bad.read_text(encoding="utf-8").endswith("steps: many\n")


def test_search_filters_every_list(qtbot, setup):
    panel, _controller, _cards, _paths = setup
    qtbot.keyClicks(panel.search, "adetailer")
    qtbot.waitUntil(lambda: panel.presets.count() == 1, timeout=WAIT_MS)
    assert names(panel.presets) == ["SDXL + hires + ADetailer faces  (shipped)"]
    panel.search.clear()
    qtbot.waitUntil(lambda: panel.presets.count() >= 3, timeout=WAIT_MS)


def test_packs_show_prompts_apply_with_default_preset_and_follow_the_disk(qtbot, setup):
    panel, controller, cards, paths = setup
    folder = paths.packs_dir
    folder.mkdir(parents=True)
    (folder / "harbour.txt").write_text("negative: fog\na harbour at dawn\na harbour at night\n",
                                        encoding="utf-8")
    qtbot.waitUntil(lambda: "harbour" in names(panel.packs), timeout=WAIT_MS)  # found by polling
    select(panel.packs, "harbour")
    qtbot.waitUntil(lambda: panel.prompts.count() == 2, timeout=WAIT_MS)
    assert "Negative: fog" in panel.prompts.item(0).toolTip()

    index = panel.default_preset.findText("SDXL quality")
    panel.default_preset.setCurrentIndex(index)
    panel.default_preset.activated.emit(index)
    qtbot.waitUntil(lambda: "default preset SDXL quality" in controller.packs()[0].detail, timeout=WAIT_MS)

    panel.prompts.setCurrentRow(1)
    panel.apply_selected(ItemKind.pack)
    applied = cards.loaded[-1]
    assert (applied.txt2img.prompt, applied.txt2img.negative_prompt) == ("a harbour at night", "fog")
    assert applied.txt2img.width == 1024  # the default preset came with it

    configs, wildcards = controller.pack_actions.pack_run_configs(controller.packs()[0].key)
    assert [c.txt2img.prompt for c in configs] == ["a harbour at dawn", "a harbour at night"]
    assert wildcards is None

    (folder / "harbour.txt").unlink()
    (folder / "broken.yaml").write_text("version: 1\nname: B\nprompts: 3\n", encoding="utf-8")
    qtbot.waitUntil(lambda: names(panel.packs) == ["broken"], timeout=WAIT_MS)
    assert "prompts" in panel.packs.item(0).toolTip()


def test_profiles_apply_and_emit_the_bias(qtbot, setup):
    panel, controller, cards, paths = setup
    paths.profiles_dir.mkdir(parents=True)
    (paths.profiles_dir / "mira.yaml").write_text(
        "version: 1\nname: Mira\ncharacter: a captain\nloras:\n  - name: mira\n    weight: 0.8\n"
        "wildcard_weights:\n  hair:\n    silver: 3\n", encoding="utf-8")
    controller.refresh()
    qtbot.waitUntil(lambda: names(panel.profiles) == ["Mira"], timeout=WAIT_MS)
    select(panel.profiles, "Mira")
    with qtbot.waitSignal(controller.preset_actions.bias_changed, timeout=WAIT_MS) as blocker:
        panel.apply_selected(ItemKind.profile)
    assert cards.loaded[-1].txt2img.prompt == "a captain <lora:mira:0.8>"
    assert blocker.args[0].wildcard_weights == {"hair": {"silver": 3.0}}


def test_packs_folder_is_kept_in_settings_and_follows_them(qtbot, qloop, tmp_path):
    from stablenew.storage.settings import peek_settings
    from tests.storage.helpers import app_controller_for

    paths = AppPaths.default()
    app = app_controller_for(paths)
    controller = LibraryController(poll_ms=50, app=app)
    panel = LibraryPanel(controller)
    qtbot.addWidget(panel)
    controller.start()
    other = tmp_path / "my packs"
    other.mkdir()
    (other / "birds.txt").write_text("a heron\n", encoding="utf-8")
    panel.choose_packs_folder(str(other))
    qtbot.waitUntil(lambda: names(panel.packs) == ["birds"], timeout=WAIT_MS)
    assert controller.packs_folder == other and app.settings.packs_dir == str(other)
    qtbot.waitUntil(lambda: "my packs" in panel.status.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: paths.settings_file.exists() and peek_settings(paths).packs_dir == str(other),
                    timeout=WAIT_MS)
    assert not (paths.config_dir / "library.yaml").exists(), "settings are the one home of the folder"
    # The next start reads the same folder.
    assert LibraryController(app=app_controller_for(paths)).packs_folder == other

    # A folder chosen in the Settings dialog reaches the sidebar; empty is StableNew's own.
    third = tmp_path / "third"
    third.mkdir()
    (third / "cats.txt").write_text("a cat\n", encoding="utf-8")
    assert app.apply_settings({"packs_dir": str(third)}) == ""
    qtbot.waitUntil(lambda: names(panel.packs) == ["cats"], timeout=WAIT_MS)
    assert app.apply_settings({"packs_dir": ""}) == ""
    assert controller.packs_folder == paths.packs_dir
    qtbot.waitUntil(lambda: "cats" not in names(panel.packs), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not app.tasks.busy, timeout=WAIT_MS)  # the last save is written
    controller.stop()


def test_packs_folder_without_settings_holds_for_the_session(qtbot, setup, tmp_path):
    """A library built on its own (a tool, a test) reads the folder in Settings and keeps no choice."""
    panel, controller, _cards, paths = setup
    other = tmp_path / "my packs"
    other.mkdir()
    (other / "birds.txt").write_text("a heron\n", encoding="utf-8")
    panel.choose_packs_folder(str(other))
    qtbot.waitUntil(lambda: names(panel.packs) == ["birds"], timeout=WAIT_MS)
    assert controller.packs_folder == other
    assert LibraryController().packs_folder == paths.packs_dir
    assert not paths.settings_file.exists()


def test_update_a_preset_with_current_settings_and_refuse_impossible_combinations(qtbot, setup):
    panel, controller, cards, paths = setup
    paths.presets_dir.mkdir(parents=True)
    (paths.presets_dir / "big.yaml").write_text(
        "# my notes\nversion: 1\nname: Big\ndescription: keep me\nconfig:\n  upscale:\n"
        "    enabled: true\n    scale: 4\n", encoding="utf-8")
    controller.refresh()
    qtbot.waitUntil(lambda: "Big" in names(panel.presets), timeout=WAIT_MS)

    # The cards already have hires 4x: with the preset's 4x upscale that is 16x, over the limit.
    cards.config = cards.config.with_changes({"txt2img.hires.enabled": True, "txt2img.hires.scale": 4})
    select(panel.presets, "Big")
    before = len(cards.loaded)
    panel.apply_selected(ItemKind.preset)
    assert len(cards.loaded) == before
    assert "With preset 'Big'" in panel.notice.message and "16×" in panel.notice.message

    cards.config = PipelineConfig().with_changes({"txt2img.steps": 44})
    panel.update_selected()
    qtbot.waitUntil(lambda: "Updated preset 'Big'" in panel.status.text(), timeout=WAIT_MS)
    text = (paths.presets_dir / "Big.yaml").read_text(encoding="utf-8")
    assert "steps: 44" in text and "description: keep me" in text and "scale: 4" not in text
    assert not (paths.presets_dir / "big.yaml").exists() or (paths.presets_dir / "big.yaml").samefile(
        paths.presets_dir / "Big.yaml")
    select(panel.presets, "SDXL quality  (shipped)")
    panel.update_selected()
    assert "cannot be changed" in panel.notice.message


def test_create_and_edit_a_profile_through_the_editor_fields(qtbot, setup):
    from stablenew.gui.panels.profile_dialog import ProfileDialog

    panel, controller, cards, paths = setup
    form = controller.preset_actions.profile_form()
    assert form["character"] == "a lighthouse"  # a new profile starts from the current prompt
    dialog = ProfileDialog(form)
    qtbot.addWidget(dialog)
    dialog.fields["name"].setText("Keeper")
    dialog.fields["loras"].setText("oldman:0.6, film")
    dialog.fields["wildcard_weights"].setPlainText("weather: storm=3, sun=0")
    panel.edit_profile(new=True, form=dialog.values())
    qtbot.waitUntil(lambda: names(panel.profiles) == ["Keeper"], timeout=WAIT_MS)
    saved = (paths.profiles_dir / "Keeper.yaml").read_text(encoding="utf-8")
    assert "character: a lighthouse" in saved and "storm: 3.0" in saved

    select(panel.profiles, "Keeper")
    form = controller.preset_actions.profile_form(controller.profiles()[0].key)
    assert (form["loras"], form["wildcard_weights"]) == ("oldman:0.6, film:1", "weather: storm=3, sun=0")
    bad = dict(form, loras="oldman:lots")
    panel.edit_profile(form=bad)
    assert "must be a number" in panel.notice.message
    panel.edit_profile(form=dict(form, name="Lighthouse keeper", style="etching"))
    qtbot.waitUntil(lambda: names(panel.profiles) == ["Lighthouse keeper"], timeout=WAIT_MS)
    assert not (paths.profiles_dir / "Keeper.yaml").exists()
    select(panel.profiles, "Lighthouse keeper")
    panel.apply_selected(ItemKind.profile)
    assert cards.loaded[-1].txt2img.prompt == "a lighthouse, etching <lora:oldman:0.6> <lora:film:1>"


def test_import_export_and_a_file_removed_behind_the_apps_back(qtbot, setup, tmp_path):
    panel, controller, _cards, paths = setup
    source = tmp_path / "shared.yaml"
    source.write_text("version: 1\nname: Shared\ntags: [friend]\nconfig:\n  txt2img:\n    steps: 12\n",
                      encoding="utf-8")
    panel.import_file(ItemKind.preset, str(source))
    qtbot.waitUntil(lambda: "Shared" in names(panel.presets), timeout=WAIT_MS)
    select(panel.presets, "Shared")
    out = tmp_path / "out" / "again.yaml"
    panel.export_selected(ItemKind.preset, str(out))
    qtbot.waitUntil(out.exists, timeout=WAIT_MS)
    assert out.read_bytes() == source.read_bytes()

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: Bad\nconfig:\n  txt2img:\n    steps: 0\n", encoding="utf-8")
    panel.import_file(ItemKind.preset, str(bad))
    qtbot.waitUntil(lambda: "Steps must be between 1 and 150" in panel.notice.message, timeout=WAIT_MS)
    assert not (paths.presets_dir / "Bad.yaml").exists()

    (paths.presets_dir / "Shared.yaml").unlink()
    select(panel.presets, "Shared")
    panel.rename_selected(ItemKind.preset, new_name="Renamed")
    qtbot.waitUntil(lambda: "already gone from disk" in panel.notice.message, timeout=WAIT_MS)
    assert not (paths.presets_dir / "Renamed.yaml").exists()


def test_keyboard_delete_and_undo_and_use_a_preset_with_a_pack(qtbot, setup):
    panel, controller, _cards, paths = setup
    panel.show()
    qtbot.waitExposed(panel, timeout=WAIT_MS)
    panel.save_current("Keys")
    qtbot.waitUntil(lambda: "Keys" in names(panel.presets), timeout=WAIT_MS)
    select(panel.presets, "Keys")
    panel.presets.setFocus()
    qtbot.keyClick(panel.presets, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: "Keys" not in names(panel.presets), timeout=WAIT_MS)
    qtbot.keyClick(panel.presets, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: "Keys" in names(panel.presets), timeout=WAIT_MS)

    paths.packs_dir.mkdir(parents=True)
    (paths.packs_dir / "p.txt").write_text("a kite\n", encoding="utf-8")
    controller.refresh()
    qtbot.waitUntil(lambda: names(panel.packs) == ["p"], timeout=WAIT_MS)
    select(panel.presets, "Keys")
    panel.use_with_pack(controller.packs()[0].key)
    qtbot.waitUntil(lambda: controller.packs()[0].default_preset == "Keys", timeout=WAIT_MS)


def test_import_a1111_styles_as_presets_and_apply_one(qtbot, setup):
    from tests.library.conftest import DATA

    panel, _controller, cards, _paths = setup
    panel.import_styles(str(DATA / "styles.csv"))
    qtbot.waitUntil(lambda: {"Cinematic", "Watercolor", "Quote, comma"} <= set(names(panel.presets)),
                    timeout=WAIT_MS)
    select(panel.presets, "Cinematic")
    panel.apply_selected(ItemKind.preset)
    assert cards.loaded[-1].txt2img.prompt == (
        "cinematic still of a lighthouse, shallow depth of field, film grain")
    assert cards.loaded[-1].txt2img.negative_prompt == "cartoon, painting"
    assert cards.loaded[-1].txt2img.steps == 37  # a style preset changes only the prompts


def button(panel, text: str):
    from PySide6.QtWidgets import QToolButton

    found = [b for b in panel.findChildren(QToolButton) if b.text() == text and b.isVisibleTo(panel)]
    assert len(found) == 1, f"{text!r}: {[b.text() for b in panel.findChildren(QToolButton)]}"
    return found[0]


def test_save_current_asks_for_a_name_when_its_button_is_pressed(qtbot, setup):
    """The button's clicked(bool) never reaches the slot as the name (issue 16 item 3)."""
    panel, controller, _cards, _paths = setup
    panel.show()
    qtbot.mouseClick(button(panel, "Save current…"), Qt.MouseButton.LeftButton)
    dialog = panel.name_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=WAIT_MS)
    qtbot.keyClicks(dialog.findChild(QLineEdit), "From the button")
    qtbot.keyClick(dialog.findChild(QLineEdit), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "From the button" in names(panel.presets), timeout=WAIT_MS)
    assert controller.error is None and panel.notice.isHidden()


def test_the_folder_button_asks_for_the_packs_folder(qtbot, setup, tmp_path):
    panel, controller, _cards, _paths = setup
    panel.show()
    panel.tabs.setCurrentIndex(1)
    other = tmp_path / "other packs"
    other.mkdir()
    (other / "owls.txt").write_text("an owl\n", encoding="utf-8")
    qtbot.mouseClick(button(panel, "Folder…"), Qt.MouseButton.LeftButton)
    dialog = panel.folder_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=WAIT_MS)
    assert controller.packs_folder != other, "nothing chosen yet"
    dialog.selectFile(str(other))
    dialog.accept()  # the dialog's Choose
    qtbot.waitUntil(lambda: names(panel.packs) == ["owls"], timeout=WAIT_MS)
    assert controller.packs_folder == other and controller.error is None

