"""The Trending tab in the real window: fetch from the fake CivitAI, see which combos run here,
use one in the cards, and queue a batch whose images remember their source image."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.catalog.factory import SD1_KEYS, write_model
from tests.fakes.civitai import FakeCivitai, wild_items


@pytest.fixture
def fake_civitai_thread():
    with FakeCivitai().running_in_thread() as fake:
        yield fake


def _press_fetch(qtbot, panel):
    """Press Fetch as a user can: once it is enabled again. The list and status of a fetch show
    a turn of the loop before its task ends and re-enables the button; a click in between is
    dropped by the disabled button (a loaded machine lands there)."""
    qtbot.waitUntil(panel.fetch_button.isEnabled, timeout=10000)
    qtbot.mouseClick(panel.fetch_button, Qt.MouseButton.LeftButton)


def _click_item(qtbot, panel, image_id):
    for row in range(panel.list.count()):
        item = panel.list.item(row)
        if item.data(Qt.ItemDataRole.UserRole) == image_id:
            rect = panel.list.visualItemRect(item)
            qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
            return item
    raise AssertionError(f"image {image_id} is not listed")


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 2.0}], indirect=True)
def test_fetch_use_a_combo_and_queue_a_batch(qtbot, window_for, fake_sdwebui_thread,
                                             fake_civitai_thread, tmp_path):
    loras = tmp_path / "models" / "Lora"
    write_model(loras / "NeonGlow_v2.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS,
                tensor_bytes=64, fill=b"\x05")
    write_model(loras / "add_detail.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS,
                tensor_bytes=64, fill=b"\x06")
    sd, civitai = fake_sdwebui_thread, fake_civitai_thread
    sd.lora_dir = loras  # the server uses the same folder, as on one PC
    window = window_for(sd.url, civitai_url=civitai.url)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=15000)
    catalog = window.session.catalog
    catalog.add_folder(loras)
    qtbot.waitUntil(lambda: (e := catalog.catalog.find("NeonGlow_v2")) is not None and bool(e.sha256),
                    timeout=10000)
    civitai.items = wild_items(civitai, neon_hash=catalog.catalog.find("NeonGlow_v2").autov3,
                               detail_hash="ffffffffffff")

    panel = window.trending_panel
    assert type(panel).__name__ == "TrendingPanel"
    window.work_tabs.setCurrentWidget(panel)
    assert panel.list.count() == 0 and "press Fetch" in panel.status.text()
    _press_fetch(qtbot, panel)
    qtbot.waitUntil(lambda: panel.list.count() == 3, timeout=10000)
    assert panel.status.text().startswith("8 images fetched just now. 3 combos you can use; 5 left out.")
    texts = [panel.list.item(r).text() for r in range(3)]
    assert texts[0].startswith("#101 · 93 reactions · SD 1.5")
    assert "NeonGlow_v2 0.7 (✓ here)" in texts[0]
    qtbot.waitUntil(lambda: not panel.list.item(0).icon().isNull(), timeout=10000)  # its thumbnail

    qtbot.mouseClick(panel.runnable_only, Qt.MouseButton.LeftButton)  # show the others too
    qtbot.waitUntil(lambda: panel.list.count() == 6, timeout=5000)
    assert any("xl_magic 1 (✗ missing)" in panel.list.item(r).text() for r in range(6))
    qtbot.mouseClick(panel.runnable_only, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.list.count() == 3, timeout=5000)

    _click_item(qtbot, panel, 101)
    assert "by its hash" in panel.details.text() and panel.use_button.isEnabled()
    qtbot.mouseClick(panel.with_settings, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.use_button, Qt.MouseButton.LeftButton)
    values = window.pipeline_panel.values()
    assert values["txt2img.prompt"] == "a neon city at night, masterpiece, <lora:NeonGlow_v2:0.7>"
    assert (values["txt2img.negative_prompt"], values["txt2img.steps"], values["txt2img.cfg_scale"]) == (
        "blurry", 28, 6.5)
    assert (values["txt2img.width"], values["txt2img.height"]) == (512, 768)

    qtbot.mouseClick(panel.favourite_button, Qt.MouseButton.LeftButton)
    packs = window.session.app.settings.packs_path(window.session.app.paths)
    favourites = packs / "trending-favourites.yaml"
    qtbot.waitUntil(favourites.exists, timeout=5000)
    assert "<lora:NeonGlow_v2:0.7>" in favourites.read_text()

    qtbot.mouseClick(panel.reroll_button, Qt.MouseButton.LeftButton)
    assert window.session.trending.current in (103, 106)
    assert panel.current_id() == window.session.trending.current

    for path, value in {"txt2img.steps": 2, "txt2img.width": 64, "txt2img.height": 64}.items():
        window.pipeline_panel.editor(path).set_value(value)
    saved = []
    window.session.queued_image_saved.connect(saved.append)
    panel.batch_count.setValue(2)
    qtbot.mouseClick(panel.queue_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(saved) == 2, timeout=30000)
    assert sorted(r.tags.variant_id for r in saved) == ["civitai:101", "civitai:103"]
    prompts = {r.tags.variant_id: r.config.txt2img.prompt for r in saved}
    assert prompts["civitai:103"] == "portrait, <lora:add_detail:0.5>"


@pytest.mark.parametrize("fake_sdwebui_thread", [
    {"step_ms": 2.0, "checkpoints": ("sd15.safetensors", "juggernautXL.safetensors")}], indirect=True)
def test_choosing_a_model_of_another_family_keeps_only_combos_that_fit(
        qtbot, window_for, fake_sdwebui_thread, fake_civitai_thread, tmp_path):
    from tests.catalog.factory import SDXL_CHECKPOINT_KEYS

    loras, ckpts = tmp_path / "Lora", tmp_path / "Stable-diffusion"
    write_model(loras / "add_detail.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS)
    write_model(ckpts / "juggernautXL.safetensors", None, SDXL_CHECKPOINT_KEYS)
    sd, civitai = fake_sdwebui_thread, fake_civitai_thread
    sd.lora_dir = loras
    civitai.items = wild_items(civitai, neon_hash="0123456789ab", detail_hash="ffffffffffff")
    window = window_for(sd.url, civitai_url=civitai.url)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=15000)
    catalog = window.session.catalog
    catalog.add_folder(loras)
    catalog.add_folder(ckpts, "checkpoint")
    # Hashed, and the catalog's last "entries changed" sent: from here only the cards can regroup.
    # The folders' files (the server's own listing joins the catalog too, unhashed: no file here).
    entries = lambda: [e for e in catalog.catalog.entries if not e.origin]  # noqa: E731
    qtbot.waitUntil(lambda: len(entries()) == 2 and all(e.sha256 for e in entries())
                    and not catalog._hash_flush.isActive(), timeout=10000)
    panel = window.trending_panel
    window.work_tabs.setCurrentWidget(panel)
    _press_fetch(qtbot, panel)
    qtbot.waitUntil(lambda: panel.list.count() == 1, timeout=10000)  # image 103: add_detail is here
    panel.base_model.setFocus()  # the user asks CivitAI for SDXL images only
    qtbot.keyClicks(panel.base_model, "SDXL")
    assert panel.base_model.currentData() == "SDXL 1.0"
    _press_fetch(qtbot, panel)
    qtbot.waitUntil(lambda: civitai.image_requests()[-1].query.get("baseModels") == "SDXL 1.0", timeout=10000)
    qtbot.waitUntil(lambda: panel.list.count() == 0 and "1 image fetched" in panel.status.text(),
                    timeout=10000)
    panel.base_model.setCurrentIndex(0)
    _press_fetch(qtbot, panel)
    qtbot.waitUntil(lambda: panel.list.count() == 1, timeout=10000)

    model = window.pipeline_panel.editor("txt2img.checkpoint").widget
    qtbot.waitUntil(lambda: model.findText("juggernautXL", Qt.MatchFlag.MatchStartsWith) >= 0, timeout=5000)
    model.showPopup()  # the user opens the model list and clicks the SDXL one
    view = model.view()
    row = view.model().index(model.findText("juggernautXL", Qt.MatchFlag.MatchStartsWith), 0)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(row).center())
    assert window.pipeline_panel.values()["txt2img.checkpoint"].startswith("juggernautXL")
    qtbot.waitUntil(lambda: panel.list.count() == 0, timeout=5000)
    reasons = dict((c.image.id, why) for c, why in window.session.trending.left_out())
    assert reasons[103] == "it was made for SD1, your model is SDXL"


@pytest.mark.parametrize("fake_sdwebui_thread", [{"step_ms": 2.0}], indirect=True)
def test_a_missing_lora_is_looked_up_and_downloaded_after_a_yes(
        qtbot, window_for, fake_sdwebui_thread, fake_civitai_thread, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from tests.catalog.factory import safetensors_bytes

    loras = tmp_path / "Lora"
    write_model(loras / "add_detail.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS)
    sd, civitai = fake_sdwebui_thread, fake_civitai_thread
    sd.lora_dir = loras
    civitai.items = wild_items(civitai, neon_hash="0123456789ab", detail_hash="ffffffffffff")
    civitai.add_version(555001, "Watercolor", data=safetensors_bytes(
        {"ss_base_model_version": "sd_v1"}, SD1_KEYS, tensor_bytes=2048, fill=b"\x07"))
    window = window_for(sd.url, civitai_url=civitai.url, civitai_downloads=True)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=15000)
    window.session.catalog.add_folder(loras)
    qtbot.waitUntil(lambda: window.session.catalog.catalog.find("add_detail") is not None, timeout=10000)
    panel = window.trending_panel
    window.work_tabs.setCurrentWidget(panel)
    qtbot.mouseClick(panel.runnable_only, Qt.MouseButton.LeftButton)
    _press_fetch(qtbot, panel)
    qtbot.waitUntil(lambda: panel.list.count() == 6, timeout=10000)
    _click_item(qtbot, panel, 102)
    assert not panel.download_button.isEnabled()  # nothing known about it yet

    qtbot.mouseClick(panel.lookup_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Watercolor" in panel.details.text(), timeout=10000)
    assert f"{civitai.url}/models/655001?modelVersionId=555001" in panel.details.text()
    assert panel.download_button.isEnabled()

    asked = []

    def answer(_parent, _title, text, *_args):
        asked.append(text)
        return QMessageBox.StandardButton.No if len(asked) == 1 else QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)  # first: No
    assert asked == [f"Download Watercolor (4 KB) from CivitAI into {loras}? Its sha256 is checked "
                     "before it is kept."]
    assert not (loras / "Watercolor.safetensors").exists()
    assert not any(r.path.startswith("/api/download/") for r in civitai.requests)
    qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)  # then: Yes
    qtbot.waitUntil((loras / "Watercolor.safetensors").exists, timeout=10000)
    # The catalog reads it; the combo runs here now, found by the hash CivitAI gave.
    trending = window.session.trending
    qtbot.waitUntil(lambda: (c := trending.find(102)) is not None and c.runnable, timeout=15000)
    assert window.session.trending.find(102).loras[0].matched_by == "its hash"


def test_settings_keep_the_civitai_address_and_key(qtbot, window_for, fake_sdwebui_thread):
    import os
    import sys

    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QDialogButtonBox

    from stablenew.gui.settings_dialog import SettingsDialog
    from stablenew.storage.paths import AppPaths
    from stablenew.storage.settings import load_settings

    window = window_for(fake_sdwebui_thread.url)
    dialog = SettingsDialog(window.session.app, window, prompts=window.session.prompts)
    qtbot.addWidget(dialog)
    editors = dialog.editors
    key = editors["civitai_api_key"].widget
    assert key.echoMode() == key.EchoMode.Password
    editors["civitai_url"].widget.clear()
    qtbot.keyClicks(editors["civitai_url"].widget, "https://mirror.example")
    qtbot.keyClicks(editors["civitai_api_key"].widget, "cv-key-9")
    box = editors["civitai_downloads"].widget  # a click on its tick box, not the empty row beside it
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    qtbot.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save),
                     Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: load_settings(AppPaths.default())[0].civitai_api_key.get_secret_value()
                    == "cv-key-9", timeout=8000)
    saved = load_settings(AppPaths.default())[0]
    assert saved.civitai_url == "https://mirror.example" and saved.civitai_downloads is True
    if sys.platform != "win32":
        assert os.stat(AppPaths.default().settings_file).st_mode & 0o777 == 0o600
    assert window.session.trending.base_url == "https://mirror.example"
    assert window.session.trending.downloads_allowed
    again = SettingsDialog(window.session.app, window, prompts=window.session.prompts)
    qtbot.addWidget(again)
    assert again.editors["civitai_api_key"].value() == "cv-key-9"  # the key, never stars
