"""Settings v2 take over the packs folder (library.yaml) and learning mode (learning.yaml) once."""

from __future__ import annotations

from stablenew.storage import AppPaths
from stablenew.storage.settings import (
    SETTINGS_VERSION,
    AppSettings,
    LearningMode,
    load_settings,
    peek_settings,
    save_settings,
)

V1_SETTINGS = "version: 1\nserver_url: http://box:7860\ntheme: dark\n"


def _write(paths: AppPaths, *, settings: str | None = V1_SETTINGS, library: str | None = None,
           learning: str | None = None) -> None:
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("settings.yaml", settings), ("library.yaml", library), ("learning.yaml", learning)):
        if text is not None:
            (paths.config_dir / name).write_text(text, encoding="utf-8")


def test_v1_settings_take_over_the_old_choices_once(tmp_path):
    paths = AppPaths.default()
    packs = tmp_path / "my packs"
    _write(paths, library=f"version: 1\npacks_folder: {packs}\n", learning="version: 1\nmode: active\n")
    settings, message = load_settings(paths)
    assert message is None
    assert settings.server_url == "http://box:7860" and settings.theme == "dark"  # v1 values kept
    assert settings.packs_path(paths) == packs
    assert settings.learning_mode is LearningMode.active
    # Saved at once, so the old files are read only this one time.
    text = paths.settings_file.read_text(encoding="utf-8")
    assert f"version: {SETTINGS_VERSION}" in text and "learning_mode: active" in text
    (paths.config_dir / "learning.yaml").write_text("version: 1\nmode: off\n", encoding="utf-8")
    again, message = load_settings(paths)
    assert message is None and again.learning_mode is LearningMode.active
    # The old files are left for an older StableNew.
    assert (paths.config_dir / "library.yaml").exists()


def test_old_choices_without_a_settings_file_are_taken_over():
    paths = AppPaths.default()
    _write(paths, settings=None, learning="version: 1\nmode: \"off\"\n")
    settings, message = load_settings(paths)
    assert message is None and settings.learning_mode is LearningMode.off
    assert settings.packs_path(paths) == paths.packs_dir
    assert "learning_mode: 'off'" in paths.settings_file.read_text(encoding="utf-8")


def test_a_fresh_install_writes_nothing():
    paths = AppPaths.default()
    settings, message = load_settings(paths)
    assert settings == AppSettings() and message is None
    assert not paths.settings_file.exists()


def test_a_corrupt_old_file_costs_only_its_own_choice_and_is_kept(tmp_path):
    paths = AppPaths.default()
    broken = "mode: [active\n"
    packs = tmp_path / "packs"
    _write(paths, library=f"packs_folder: {packs}\n", learning=broken)
    settings, message = load_settings(paths)
    assert settings.server_url == "http://box:7860"
    assert settings.packs_path(paths) == packs  # the readable file still counts
    assert settings.learning_mode is LearningMode.passive
    assert message is not None
    assert "Your earlier learning mode could not be read" in message
    assert "Learning stays Passive" in message and "learning.yaml" in message
    assert (paths.config_dir / "learning.yaml").read_text(encoding="utf-8") == broken
    # Said once: the settings are version 2 now and no longer look at the old files.
    assert load_settings(paths) == (settings, None)


def test_an_old_value_settings_do_not_accept_is_explained():
    paths = AppPaths.default()
    _write(paths, library="- not\n- a mapping\n", learning="version: 1\nmode: eager\n")
    settings, message = load_settings(paths)
    assert settings.learning_mode is LearningMode.passive
    assert settings.packs_path(paths) == paths.packs_dir
    assert "earlier packs folder could not be read" in message and "mapping" in message
    assert "earlier learning mode could not be read" in message and "'passive'" in message
    assert settings.server_url == "http://box:7860", "a bad old choice never costs the settings"


def test_v2_settings_ignore_the_old_files():
    paths = AppPaths.default()
    save_settings(paths, AppSettings(learning_mode=LearningMode.off))
    _write(paths, settings=None, learning="mode: active\n")
    settings, _message = load_settings(paths)
    assert settings.learning_mode is LearningMode.off


def test_peek_reads_like_load_without_touching_any_file(tmp_path):
    paths = AppPaths.default()
    _write(paths, learning="mode: active\n")
    before = paths.settings_file.read_text(encoding="utf-8")
    assert peek_settings(paths).learning_mode is LearningMode.active
    assert paths.settings_file.read_text(encoding="utf-8") == before
    paths.settings_file.write_text("server_url: [\n", encoding="utf-8")
    assert peek_settings(paths) == AppSettings()
    assert paths.settings_file.read_text(encoding="utf-8") == "server_url: [\n"  # not set aside


def test_folders_are_trimmed_and_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = AppSettings(wildcards_dir="  ~/wildcards ", packs_dir=" ")
    assert settings.wildcards_dir == "~/wildcards"
    assert settings.wildcards_path() == tmp_path / "wildcards"
    assert AppSettings().wildcards_path() is None
    assert settings.packs_path(AppPaths.default()) == AppPaths.default().packs_dir


def test_a_hand_typed_off_is_the_off_mode():
    paths = AppPaths.default()
    _write(paths, settings="version: 2\nlearning_mode: off\n")
    settings, message = load_settings(paths)
    assert message is None and settings.learning_mode is LearningMode.off
