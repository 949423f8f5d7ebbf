"""Journey: the user sets up a local LLM in Settings by clicking (address, List models, a model,
the API key), restarts, and the prompt editor's Enhance uses that LLM with that key; the
Settings dialog shows the key as typed, never masked stars."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from tests.fakes.llm import FakeLLM
from tests.journeys.conftest import save_server


def test_the_llm_set_up_in_settings_is_there_after_a_restart(qtbot, journey, fake_process):
    from stablenew.gui.settings_dialog import SettingsDialog

    fake = fake_process(step_ms=5)
    save_server(fake.url)
    with FakeLLM(api_key="sk-home").running_in_thread() as llm:
        window = journey.open()
        qtbot.mouseClick(window.commands.settings_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.findChild(SettingsDialog) is not None, timeout=5000)
        dialog = window.findChild(SettingsDialog)
        editors = dialog.editors
        address = editors["llm_url"].widget
        address.setFocus()
        qtbot.keyClicks(address, llm.url)
        qtbot.keyClicks(editors["llm_api_key"].widget, "sk-home")
        qtbot.mouseClick(dialog.list_models, Qt.MouseButton.LeftButton)
        model = editors["llm_model"].widget
        qtbot.waitUntil(lambda: model.count() == 2, timeout=8000)
        model.setCurrentIndex(model.findText("llava:7b"))
        qtbot.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save),
                         Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not window.session.app.tasks.busy, timeout=5000)

        window = journey.restart()
        qtbot.mouseClick(window.commands.settings_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.findChild(SettingsDialog) is not None, timeout=5000)
        again = window.findChild(SettingsDialog)
        assert again.editors["llm_url"].value() == llm.url
        assert again.editors["llm_model"].value() == "llava:7b"
        assert again.editors["llm_api_key"].value() == "sk-home"  # the key, not "**********"
        again.reject()

        window.pipeline_panel.editor("txt2img.prompt").set_value("a lighthouse")
        qtbot.mouseClick(window.commands.editor_button, Qt.MouseButton.LeftButton)
        strip = window.prompt_overlay.enhance
        llm.reply("a lighthouse, stormy sea, rim light")
        qtbot.mouseClick(strip.enhance_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: strip.suggestion.use_button.isVisible(), timeout=8000)
        qtbot.mouseClick(strip.suggestion.use_button, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(window.prompt_overlay.done_button, Qt.MouseButton.LeftButton)
        assert window.pipeline_panel.values()["txt2img.prompt"] == "a lighthouse, stormy sea, rim light"
        # The saved model, with the saved key (the fake answers 401 without it).
        assert llm.requests[-1][1]["model"] == "llava:7b"
