"""The CivitAI address and key: saved and read back, the key owner-only and never shown."""

from __future__ import annotations

import os
import sys

import pytest
from pydantic import SecretStr, ValidationError

from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, load_settings, save_settings


def test_the_key_is_kept_owner_only_and_hidden():
    paths = AppPaths.default()
    settings = AppSettings(civitai_url="https://mirror.example/ ", civitai_api_key=SecretStr("cv-123"))
    assert settings.civitai_url == "https://mirror.example"
    assert "cv-123" not in repr(settings) and "cv-123" not in str(settings.model_dump())
    file = save_settings(paths, settings)
    assert "civitai_api_key: cv-123" in file.read_text()
    if sys.platform != "win32":
        assert os.stat(file).st_mode & 0o777 == 0o600
    loaded, problem = load_settings(paths)
    assert problem is None and loaded.civitai_api_key.get_secret_value() == "cv-123"


def test_civitai_is_the_default_and_not_written():
    file = save_settings(AppPaths.default(), AppSettings())
    assert "civitai" not in file.read_text()
    assert AppSettings().civitai_url == "https://civitai.com"
    with pytest.raises(ValidationError, match="CivitAI address must start with http"):
        AppSettings(civitai_url="civitai.com")
