"""Atomic writes and settings: a bad file is set aside, never overwritten; defaults still load."""

from __future__ import annotations

import os
import stat

import pytest

from stablenew.storage import AppPaths, atomic_write_text
from stablenew.storage.settings import AppSettings, ServerKind, load_settings, save_settings


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "good")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "bad")
    monkeypatch.undo()
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_paths_follow_stablenew_home(isolated_home):
    paths = AppPaths.default()
    assert paths.config_dir == isolated_home / "config"
    assert paths.settings_file.parent == paths.config_dir
    assert paths.database_file.parent == paths.data_dir


def test_settings_round_trip_saves_only_changes():
    paths = AppPaths.default()
    settings = AppSettings(server_url="http://10.0.0.5:7860/", server_kind=ServerKind.forge)
    save_settings(paths, settings)
    text = paths.settings_file.read_text()
    assert "theme" not in text  # defaults are not written
    loaded, message = load_settings(paths)
    assert message is None
    assert loaded.server_url == "http://10.0.0.5:7860"
    assert loaded.server_kind is ServerKind.forge


def test_password_makes_the_file_owner_only():
    paths = AppPaths.default()
    save_settings(paths, AppSettings(username="me", password="secret"))
    if os.name == "posix":
        mode = stat.S_IMODE(paths.settings_file.stat().st_mode)
        assert mode == 0o600


def test_corrupt_settings_are_kept_aside_and_defaults_used():
    paths = AppPaths.default()
    paths.config_dir.mkdir(parents=True)
    paths.settings_file.write_text("server_url: [unclosed\n")
    settings, message = load_settings(paths)
    assert settings == AppSettings()
    assert message and "could not be read" in message and "kept as" in message
    kept = [p for p in paths.config_dir.iterdir() if p.name.startswith("settings.yaml.bad-")]
    assert len(kept) == 1 and kept[0].read_text() == "server_url: [unclosed\n"
    assert not paths.settings_file.exists()


def test_bad_address_is_explained():
    paths = AppPaths.default()
    paths.config_dir.mkdir(parents=True)
    paths.settings_file.write_text("server_url: localhost:7860\n")
    settings, message = load_settings(paths)
    assert settings.server_url == "http://127.0.0.1:7860"
    assert "must start with http://" in message


def test_v0_settings_migrate():
    paths = AppPaths.default()
    paths.config_dir.mkdir(parents=True)
    paths.settings_file.write_text("server: http://box:7860\n")
    settings, message = load_settings(paths)
    assert message is None
    assert settings.server_url == "http://box:7860"
