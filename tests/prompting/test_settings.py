"""The LLM's settings: saved and read back, the API key owner-only and never shown."""

from __future__ import annotations

import os
import sys

import pytest
from pydantic import SecretStr, ValidationError

from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, load_settings, save_settings


def test_llm_settings_round_trip_with_the_key_kept_and_hidden():
    paths = AppPaths.default()
    settings = AppSettings(llm_url="http://127.0.0.1:11434/", llm_model="llama3.2:3b",
                           llm_api_key=SecretStr("sk-local-42"), llm_template="cinematic",
                           llm_enhance=True, llm_unload_before_generate=True)
    assert settings.llm_url == "http://127.0.0.1:11434"
    assert "sk-local-42" not in repr(settings) and "sk-local-42" not in str(settings.model_dump())
    file = save_settings(paths, settings)
    assert "llm_api_key: sk-local-42" in file.read_text()
    if sys.platform != "win32":
        assert os.stat(file).st_mode & 0o777 == 0o600
    loaded, problem = load_settings(paths)
    assert problem is None and loaded == settings
    assert loaded.llm_api_key.get_secret_value() == "sk-local-42"


def test_llm_is_off_by_default_and_not_written():
    paths = AppPaths.default()
    file = save_settings(paths, AppSettings())
    assert "llm" not in file.read_text()
    assert AppSettings().llm_url == "" and not AppSettings().llm_enhance


def test_a_bad_llm_address_is_explained():
    with pytest.raises(ValidationError, match="LLM address must start with http"):
        AppSettings(llm_url="ftp://box")
