"""The local LLM in the window: Settings list its models, "Enhance" in the prompt editor and
"Refine prompt" under an opened image propose a prompt the user can take or leave, and undo.
Everything talks to the fake LLM and the fake A1111 over real HTTP."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import load_settings

WAIT_MS = 8000


def _card_prompt(window):
    return window.pipeline_panel.editor("txt2img.prompt").widget


def test_settings_list_the_llm_models_and_keep_the_key(qtbot, window_for, fake_sdwebui_thread,
                                                        fake_llm_thread):
    from stablenew.gui.settings_dialog import SettingsDialog

    window = window_for(fake_sdwebui_thread.url)
    dialog = SettingsDialog(window.session.app, window, prompts=window.session.prompts)
    qtbot.addWidget(dialog)
    editors = dialog.editors
    # The key is a password field; the address warns when prompts would leave home.
    assert editors["llm_api_key"].widget.echoMode() == editors["llm_api_key"].widget.EchoMode.Password
    # Judged once typing pauses, not at every key (each "http:" flashed it and laid the dialog
    # out again).
    editors["llm_url"].widget.setFocus()
    qtbot.keyClicks(editors["llm_url"].widget, "http://llm.example.com:1234")
    assert dialog.llm_warning.isHidden()
    qtbot.waitUntil(lambda: not dialog.llm_warning.isHidden(), timeout=WAIT_MS)
    assert "example.com" in dialog.llm_warning.text()
    editors["llm_url"].set_value(fake_llm_thread.url)
    qtbot.waitUntil(dialog.llm_warning.isHidden, timeout=WAIT_MS)
    # The styles shipped with the app fill the style picker.
    qtbot.waitUntil(lambda: editors["llm_template"].widget.count() > 1, timeout=WAIT_MS)
    styles = [editors["llm_template"].widget.itemText(i)
              for i in range(editors["llm_template"].widget.count())]
    assert "general" in styles and "cinematic" in styles
    qtbot.mouseClick(dialog.list_models, Qt.MouseButton.LeftButton)
    model = editors["llm_model"].widget
    qtbot.waitUntil(lambda: model.count() == 2, timeout=WAIT_MS)
    assert [model.itemText(i) for i in range(2)] == ["llama3.2:3b", "llava:7b"]
    assert "2 models on the server" in dialog.llm_status.text()
    model.setCurrentIndex(1)
    editors["llm_api_key"].widget.setText("sk-local-123")
    editors["llm_enhance"].widget.setChecked(True)
    qtbot.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save),
                     Qt.MouseButton.LeftButton)
    settings = window.session.app.settings
    assert settings.llm_url == fake_llm_thread.url and settings.llm_model == "llava:7b"
    assert settings.llm_enhance is True
    qtbot.waitUntil(lambda: load_settings(AppPaths.default())[0].llm_api_key.get_secret_value()
                    == "sk-local-123", timeout=WAIT_MS)
    # Opened again, the key is the real one (never the stars a JSON dump shows).
    again = SettingsDialog(window.session.app, window, prompts=window.session.prompts)
    qtbot.addWidget(again)
    assert again.editors["llm_api_key"].value() == "sk-local-123"


def test_list_models_says_plainly_when_the_llm_is_down(qtbot, window_for, fake_sdwebui_thread,
                                                       dead_url):
    from stablenew.gui.settings_dialog import SettingsDialog

    window = window_for(fake_sdwebui_thread.url)
    dialog = SettingsDialog(window.session.app, window, prompts=window.session.prompts)
    qtbot.addWidget(dialog)
    dialog.editors["llm_url"].set_value(dead_url)
    qtbot.mouseClick(dialog.list_models, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(dialog.list_models.isEnabled, timeout=WAIT_MS)
    assert dialog.llm_status.text() and "Traceback" not in dialog.llm_status.text()
    assert dialog.editors["llm_model"].widget.count() == 0


def test_enhance_in_the_editor_proposes_then_uses_and_undoes(qtbot, window_for, fake_sdwebui_thread,
                                                             fake_llm_thread):
    window = window_for(fake_sdwebui_thread.url, llm_url=fake_llm_thread.url)
    field = _card_prompt(window)
    field.setPlainText("a (red hair:1.2) woman")
    qtbot.mouseClick(window.commands.editor_button, Qt.MouseButton.LeftButton)
    overlay = window.prompt_overlay
    strip = overlay.enhance
    assert overlay.isVisible() and strip.isVisible() and strip.hint.text() == ""
    fake_llm_thread.reply("a (red hair:1.5) woman, 85mm, rim light", token_ms=5)
    qtbot.mouseClick(strip.enhance_button, Qt.MouseButton.LeftButton)
    box = strip.suggestion
    assert box.isVisible() and not strip.enhance_button.isEnabled()
    qtbot.waitUntil(lambda: box.use_button.isVisible(), timeout=WAIT_MS)
    # The proposal keeps the user's weight; nothing changed yet.
    assert box.text.toPlainText() == "a (red hair:1.2) woman, 85mm, rim light"
    assert "kept the weight (red hair:1.2)" in box.notes.text()
    assert overlay.editor.toPlainText() == "a (red hair:1.2) woman"
    qtbot.mouseClick(box.use_button, Qt.MouseButton.LeftButton)
    assert overlay.editor.toPlainText() == "a (red hair:1.2) woman, 85mm, rim light"
    assert strip.undo_button.isVisible() and strip.enhance_button.isEnabled()
    qtbot.mouseClick(strip.undo_button, Qt.MouseButton.LeftButton)
    assert overlay.editor.toPlainText() == "a (red hair:1.2) woman"
    # Ctrl+Z in the editor undoes a used proposal too.
    fake_llm_thread.reply("a (red hair:1.2) woman, soft light")
    qtbot.mouseClick(strip.enhance_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: box.use_button.isVisible(), timeout=WAIT_MS)
    qtbot.mouseClick(box.use_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(overlay.done_button, Qt.MouseButton.LeftButton)
    assert field.toPlainText() == "a (red hair:1.2) woman, soft light"
    body = fake_llm_thread.requests[-1][1]
    assert body["model"] == "llama3.2:3b" and body["stream"] is True


def test_a_failing_llm_leaves_the_prompt_and_says_why(qtbot, window_for, fake_sdwebui_thread,
                                                     fake_llm_thread):
    window = window_for(fake_sdwebui_thread.url, llm_url=fake_llm_thread.url, llm_model="missing:1b")
    _card_prompt(window).setPlainText("a cat")
    qtbot.mouseClick(window.commands.editor_button, Qt.MouseButton.LeftButton)
    strip = window.prompt_overlay.enhance
    qtbot.mouseClick(strip.enhance_button, Qt.MouseButton.LeftButton)
    box = strip.suggestion
    qtbot.waitUntil(lambda: not box.error.isHidden(), timeout=WAIT_MS)
    assert "missing:1b" in box.error.text() and box.use_button.isHidden()
    assert box.title.text() == "Your prompt is unchanged"
    assert window.prompt_overlay.editor.toPlainText() == "a cat"


def test_without_an_llm_the_editor_says_where_to_set_one_up(qtbot, window_for, dead_url):
    window = window_for(dead_url, connect=False)
    _card_prompt(window).setPlainText("a cat")
    window.open_prompt_editor()
    strip = window.prompt_overlay.enhance
    assert "Settings" in strip.hint.text()
    qtbot.mouseClick(strip.enhance_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not strip.suggestion.error.isHidden(), timeout=WAIT_MS)
    assert "Open Settings" in strip.suggestion.error.text()


@pytest.mark.parametrize("look", [False, True])
def test_refine_from_feedback_under_an_image(qtbot, window_for, fake_sdwebui_thread, fake_llm_thread,
                                             look):
    # Looking at the image needs a vision model (the fake's llava sees; llama does not).
    window = window_for(fake_sdwebui_thread.url, llm_url=fake_llm_thread.url,
                        llm_model="llava:7b" if look else "")
    field = _card_prompt(window)
    field.setPlainText("a woman, standing pose, daylight")
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    gallery = window.session.gallery
    qtbot.waitUntil(lambda: len(gallery.items) == 1 and window.session.pipeline.state == "idle",
                    timeout=20000)
    gallery.open(gallery.items[0].key)
    feedback = window.viewer.sidebar.feedback
    qtbot.waitUntil(feedback.isVisible, timeout=WAIT_MS)
    if look:
        fake_llm_thread.reply("woman under neon lights, wet street")
    fake_llm_thread.reply(json.dumps({"keep": ["standing pose"], "remove": ["daylight"],
                                      "add": ["rain"]}), fence=True)
    fake_llm_thread.reply("a woman, standing pose, rain, bokeh")
    feedback.look.setChecked(look)
    qtbot.keyClicks(feedback.words, "keep the pose, rain, no daylight")
    qtbot.mouseClick(feedback.refine_button, Qt.MouseButton.LeftButton)
    box = feedback.suggestion
    qtbot.waitUntil(lambda: box.use_button.isVisible(), timeout=WAIT_MS)
    assert box.text.toPlainText() == "a woman, standing pose, rain"
    assert "- daylight" in box.notes.text() and "+ rain" in box.notes.text()
    assert "dropped 'bokeh'" in box.notes.text()
    assert field.toPlainText() == "a woman, standing pose, daylight"
    qtbot.mouseClick(box.use_button, Qt.MouseButton.LeftButton)
    assert field.toPlainText() == "a woman, standing pose, rain"
    assert "1 round" in feedback.hint.text() and feedback.start_over.isVisible()
    if look:
        content = fake_llm_thread.requests[0][1]["messages"][0]["content"]
        assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    # The card field can take it back.
    field.undo()
    assert field.toPlainText() == "a woman, standing pose, daylight"
    qtbot.mouseClick(feedback.start_over, Qt.MouseButton.LeftButton)
    assert window.session.prompts.feedback_rounds == 0


def test_the_variants_count_says_prompts_will_be_enhanced(qtbot, qloop):
    from stablenew.controller.app_controller import AppController, start_up
    from stablenew.controller.randomizer_adapter import RandomizerAdapter
    from stablenew.storage.settings import AppSettings, save_settings

    save_settings(AppPaths.default(), AppSettings(llm_url="http://127.0.0.1:1234", llm_enhance=True))
    app = AppController(start_up())
    adapter = RandomizerAdapter(app=app, debounce_ms=0)
    try:
        adapter.set_enabled(True)
        with qtbot.waitSignal(adapter.summary_changed, timeout=WAIT_MS) as said:
            adapter.set_template("a {red|blue} cat")
        # The count is the same as without the LLM: one image per variant.
        assert said.args[0] == ("This will make 2 images in 2 variants. Prompts will be enhanced "
                                "by your local LLM before each variant runs.")
        with qtbot.waitSignal(adapter.summary_changed, timeout=WAIT_MS) as said:
            app.apply_settings({"llm_enhance": False})
        assert said.args[0] == "This will make 2 images in 2 variants."
        # Matching LoRAs are added per variant too: the count stays, the line says so.
        with qtbot.waitSignal(adapter.summary_changed, timeout=WAIT_MS) as said:
            app.apply_settings({"lora_auto": True})
        assert said.args[0] == ("This will make 2 images in 2 variants. Matching LoRAs from your "
                                "catalog will be added to each prompt.")
        # The settings are written off the Qt thread; the test ends after they are.
        qtbot.waitUntil(lambda: not app.tasks.busy, timeout=WAIT_MS)
    finally:
        adapter.close()
