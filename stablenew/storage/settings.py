"""App settings (server address, output folder, theme): versioned YAML in the config folder.

A corrupt settings file never stops the app: it is moved aside (kept, never overwritten)
and the app starts with defaults and a message saying where the bad file went.
"""

from __future__ import annotations

import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stablenew.storage.atomic import atomic_write_text
from stablenew.storage.documents import DocumentError, dump_yaml, load_yaml_model
from stablenew.storage.paths import AppPaths

SETTINGS_VERSION = 1


class Theme(StrEnum):
    system = "system"
    light = "light"
    dark = "dark"


class ServerKind(StrEnum):
    auto = "auto"
    a1111 = "a1111"
    forge = "forge"
    sdnext = "sdnext"
    comfyui = "comfyui"


class AppSettings(BaseModel):
    """What the user chose in Settings; only values that differ from these defaults are saved."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    version: int = SETTINGS_VERSION
    server_url: str = Field(
        "http://127.0.0.1:7860",
        title="Server address",
        description="Address of your A1111/Forge (port 7860) or ComfyUI (port 8188) server.",
    )
    server_kind: ServerKind = Field(
        ServerKind.auto, title="Server kind", description="Leave on auto to detect it."
    )
    username: str = Field("", title="User name", description="Only if the server uses --api-auth.")
    password: str = Field("", title="Password", description="Only if the server uses --api-auth.")
    output_dir: str = Field(
        "", title="Output folder", description="Where images are saved. Empty: your Pictures folder."
    )
    theme: Theme = Field(Theme.system, title="Theme")
    request_timeout_s: float = Field(
        600.0, ge=5, le=7200, title="Generation timeout (seconds)",
        description="How long one image may take before StableNew gives up on the server.",
    )
    live_previews: bool = Field(True, title="Live previews")

    @field_validator("server_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("The server address must start with http:// or https://")
        return value

    def output_path(self, paths: AppPaths) -> Path:
        return Path(self.output_dir).expanduser() if self.output_dir else paths.default_output_dir


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    version = data.get("version", 0)
    if version == 0:
        # v0 (unreleased drafts) called the address "server".
        data = dict(data)
        if "server" in data and "server_url" not in data:
            data["server_url"] = data.pop("server")
        data["version"] = 1
    return data


def load_settings(paths: AppPaths) -> tuple[AppSettings, str | None]:
    """Settings from disk, or defaults plus a plain message when the file was unusable."""
    file = paths.settings_file
    if not file.exists():
        return AppSettings(), None
    try:
        return load_yaml_model(file, AppSettings, migrate=_migrate), None
    except DocumentError as exc:
        aside = file.with_name(f"{file.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(file, aside)
            kept = f"The bad file was kept as {aside}."
        except OSError:
            kept = "The bad file was left where it is."
        return AppSettings(), f"Your settings could not be read ({exc}). Using defaults. {kept}"


def save_settings(paths: AppPaths, settings: AppSettings) -> Path:
    """Validate, then write atomically; owner-only permissions when a password is stored."""
    AppSettings.model_validate(settings.model_dump())
    data = settings.model_dump(mode="json", exclude_defaults=True)
    data = {"version": SETTINGS_VERSION, **data}
    mode = 0o600 if settings.password else None
    return atomic_write_text(paths.settings_file, dump_yaml(data), mode=mode)
