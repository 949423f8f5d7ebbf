"""App settings (server, folders, learning mode, theme): versioned YAML in the config folder.

A corrupt settings file never stops the app: it is moved aside (kept, never overwritten)
and the app starts with defaults and a message saying where the bad file went.

Settings are the one home of every choice the user makes once and keeps: version 2 took over
the packs folder (from `library.yaml`) and the learning mode (from `learning.yaml`); the first
start of version 2 reads those files once, and a damaged one only costs its own choice.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from stablenew.storage.atomic import atomic_write_text
from stablenew.storage.documents import (
    DocumentError,
    dump_yaml,
    load_yaml_model,
    parse_yaml,
    read_document_text,
)
from stablenew.storage.paths import AppPaths

log = logging.getLogger("stablenew.storage.settings")

SETTINGS_VERSION = 2


class Theme(StrEnum):
    system = "system"
    light = "light"
    dark = "dark"

    @property
    def label(self) -> str:
        """What Settings shows for it (the value is what the file keeps)."""
        return {"system": "Follow the system", "light": "Light", "dark": "Dark"}[self.value]


class ServerKind(StrEnum):
    auto = "auto"
    a1111 = "a1111"
    forge = "forge"
    sdnext = "sdnext"
    comfyui = "comfyui"

    @property
    def label(self) -> str:
        return {"auto": "Detect it", "a1111": "AUTOMATIC1111", "forge": "Forge",
                "sdnext": "SD.Next", "comfyui": "ComfyUI"}[self.value]


class LearningMode(StrEnum):
    """How much the learning room keeps of the images the user makes."""

    off = "off"  # nothing is written
    passive = "passive"  # every saved image is recorded; rating is optional
    active = "active"  # also offers guided learning runs

    @property
    def label(self) -> str:
        return self.value.capitalize()


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
    wildcards_dir: str = Field(
        "", title="Wildcards folder",
        description="Where your wildcard lists are: __animal__ in a prompt picks a line of "
                    "animal.txt. Empty: no wildcards.",
    )
    packs_dir: str = Field(
        "", title="Packs folder",
        description="Where your prompt packs are. Empty: StableNew's own packs folder.",
    )
    learning_mode: LearningMode = Field(
        LearningMode.passive, title="Learning",
        description="Off keeps nothing. Passive keeps every image's settings so you can rate "
                    "them. Active also runs guided comparisons of one setting at a time.",
    )
    theme: Theme = Field(Theme.system, title="Theme")
    request_timeout_s: float = Field(
        600.0, ge=5, le=7200, title="Generation timeout (seconds)",
        description="How long one image may take before StableNew gives up on the server.",
        json_schema_extra={"decimals": 0},  # whole seconds in the dialog; a file may say 90.5
    )
    live_previews: bool = Field(True, title="Live previews")
    # Prompt enhancement with a local LLM (stablenew.prompting); off while llm_url is empty.
    llm_url: str = Field(
        "", title="LLM address",
        description="Your local LLM server, e.g. http://127.0.0.1:1234 (LM Studio) or "
                    "http://127.0.0.1:11434 (Ollama). Empty: no LLM.")
    llm_model: str = Field("", title="LLM model", description="Empty: the server's first model.")
    llm_api_key: SecretStr = Field(SecretStr(""), title="LLM API key",
                                   description="Only if your LLM server asks for one.")
    llm_template: str = Field("general", title="Enhance style")
    llm_enhance: bool = Field(False, title="Enhance prompts before generating")
    llm_unload_before_generate: bool = Field(
        False, title="Unload the LLM before generating",
        description="Frees its memory for Stable Diffusion when both share one GPU (Ollama).")
    # LoRAs from the catalog added to each variant's prompt (after enhancing, before sending).
    lora_auto: bool = Field(
        False, title="Add matching LoRAs",
        description="Before each image is made, LoRAs from your catalog that fit its prompt "
                    "(and the model, and the server that makes it) are added with their "
                    "trigger word. The same prompt and seed always get the same LoRAs.")
    lora_auto_min: int = Field(1, ge=1, le=6, title="At least",
                               description="The fewest LoRAs to add when enough fit.")
    lora_auto_max: int = Field(2, ge=1, le=6, title="At most",
                               description="The most LoRAs to add to one prompt.")
    lora_auto_categories: str = Field(
        "", title="Only from categories",
        description="Categories (sub-folders) to pick from, separated by commas. Empty: any.")
    # Trending combos (stablenew.community).
    civitai_url: str = Field(
        "https://civitai.com", title="CivitAI address",
        description="Where trending images come from: CivitAI, or a mirror of its API.")
    civitai_api_key: SecretStr = Field(
        SecretStr(""), title="CivitAI API key",
        description="Optional: lets downloads that need an account work.")
    civitai_downloads: bool = Field(
        False, title="Download missing LoRAs",
        description="Offer to download a trending combo's missing LoRA into your LoRA folder "
                    "(each download asks first and is checked against CivitAI's sha256).")

    @field_validator("server_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("The server address must start with http:// or https://")
        return value

    @field_validator("llm_url")
    @classmethod
    def _llm_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("The LLM address must start with http:// or https://")
        return value

    @field_validator("civitai_url")
    @classmethod
    def _civitai_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("The CivitAI address must start with http:// or https://")
        return value

    @field_validator("output_dir", "wildcards_dir", "packs_dir")
    @classmethod
    def _folder(cls, value: str) -> str:
        return value.strip()

    @field_validator("learning_mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a hand-typed `learning_mode: off` as false.
        return LearningMode.off if value is False else value

    def output_path(self, paths: AppPaths) -> Path:
        return Path(self.output_dir).expanduser() if self.output_dir else paths.default_output_dir

    def wildcards_path(self) -> Path | None:
        return Path(self.wildcards_dir).expanduser() if self.wildcards_dir else None

    def packs_path(self, paths: AppPaths) -> Path:
        return Path(self.packs_dir).expanduser() if self.packs_dir else paths.packs_dir


#: Choices earlier versions kept in files of their own: file name → (key in it, settings field,
#: what it is in words, what holds when it cannot be read).
_OLD_CHOICE_FILES = {
    "library.yaml": ("packs_folder", "packs_dir", "packs folder",
                     "StableNew's own packs folder is used until you choose yours in Settings."),
    "learning.yaml": ("mode", "learning_mode", "learning mode",
                      "Learning stays Passive until you choose another mode in Settings."),
}


class _OldChoices:
    """The packs folder and learning mode earlier versions kept outside the settings file."""

    def __init__(self, paths: AppPaths) -> None:
        self.paths = paths
        self.found = False  # at least one of the old files exists (read or not)
        self.problems: list[str] = []

    def read(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, (key, field, words, fallback) in _OLD_CHOICE_FILES.items():
            file = self.paths.config_dir / name
            if not file.is_file():
                continue
            self.found = True
            try:
                value = _old_value(file, key)
                if value is None:
                    continue
                AppSettings.model_validate({field: value})  # this one value, before it joins the rest
            except (DocumentError, ValidationError) as exc:
                reason = exc.describe() if isinstance(exc, DocumentError) else _first_problem(exc)
                log.warning("settings: %s not taken over from %s: %s", words, file, reason)
                self.problems.append(f"Your earlier {words} could not be read ({reason}). {fallback} "
                                     f"The file was left as it is: {file}")
                continue
            values[field] = value
            log.info("settings: %s taken over from %s", words, file)
        return values


def _old_value(file: Path, key: str) -> Any:
    data, node = parse_yaml(read_document_text(file), file)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise DocumentError(file, "The file must hold named settings (a YAML mapping) at the top.",
                            line=node.start_mark.line + 1 if node else None)
    value = data.get(key)
    return None if value == "" else value


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    return str(errors[0]["msg"]) if errors else str(exc)


def _migrate(data: dict[str, Any], old_choices: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Upgrade settings of an older `version`; *old_choices* gives the values v2 took over."""
    data = dict(data)
    version = data.get("version", 0)
    if version == 0:
        # v0 (unreleased drafts) called the address "server".
        if "server" in data and "server_url" not in data:
            data["server_url"] = data.pop("server")
        version = data["version"] = 1
    if version == 1:
        # v2 keeps the packs folder and learning mode, which v1 kept in files of their own.
        for field, value in (old_choices() if old_choices is not None else {}).items():
            data.setdefault(field, value)
        version = data["version"] = 2
    return data


class SettingsUnreadable(DocumentError):
    """The settings file is unusable and a choice the caller cannot do without was lost with it."""


def load_settings(paths: AppPaths, *, needs: tuple[str, ...] = ()) -> tuple[AppSettings, str | None]:
    """Settings from disk, or defaults plus a plain message when the file was unusable.

    A bad file is set aside and every choice that can still be read from it is kept. When a
    field named in *needs* cannot be recovered, the file is left where it is and
    `SettingsUnreadable` is raised instead, so the caller can refuse rather than guess.
    The first time settings older than version 2 are read, the choices earlier versions kept
    in files of their own are taken over and the settings saved, so that happens only once.
    """
    settings, message, old = _read(paths, set_aside=True, needs=needs)
    if old.found:
        try:
            save_settings(paths, settings)
        except OSError as exc:  # the choices still hold for this session; the next start tries again
            log.warning("settings: could not save the taken-over choices: %s", exc)
    return settings, message


def peek_settings(paths: AppPaths) -> AppSettings:
    """The settings as `load_settings` would give them, without moving or writing any file
    (defaults when the file is unusable): for tools and rooms that only read a choice."""
    return _read(paths, set_aside=False)[0]


def _read(paths: AppPaths, *, set_aside: bool,
          needs: tuple[str, ...] = ()) -> tuple[AppSettings, str | None, _OldChoices]:
    file = paths.settings_file
    old = _OldChoices(paths)

    def migrate(data: dict[str, Any]) -> dict[str, Any]:
        return _migrate(data, old.read)

    if not file.exists():
        settings = AppSettings.model_validate(migrate({}))
        return settings, " ".join(old.problems) or None, old
    try:
        settings = load_yaml_model(file, AppSettings, migrate=migrate)
    except DocumentError as exc:
        old.found = False  # nothing is taken over from beside a settings file that cannot be read
        saved, unknown = _salvage(file)
        settings = AppSettings.model_validate(saved)
        if not set_aside:
            return settings, None, old
        lost = [name for name in needs if name in unknown or unknown == {"*"}]
        if lost:
            words = ", ".join(str(AppSettings.model_fields[n].title).lower() for n in lost)
            raise SettingsUnreadable(file, f"{exc.reason} Your {words} cannot be read from it, so "
                                     "StableNew left the file as it is.",
                                     line=exc.line, field=exc.field) from None
        aside = file.with_name(f"{file.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(file, aside)
            kept = f"The bad file was set aside and kept as {aside}."
        except OSError:
            kept = "The bad file was left where it is."
        if saved:
            titles = ", ".join(str(AppSettings.model_fields[n].title).lower() for n in saved)
            using = f"Kept what could be read ({titles}); the rest are defaults."
        else:
            using = "Using defaults."
        log.warning("settings: %s set aside as %s: %s", file, aside, exc)
        return settings, f"Your settings could not be read: {exc} {using} {kept}", old
    return settings, " ".join(old.problems) or None, old


def _salvage(file: Path) -> tuple[dict[str, Any], set[str]]:
    """The choices of a bad settings file that are valid each on its own, and the names of
    those that are not ({"*"}: the file is not readable YAML, so any choice may be lost)."""
    try:
        data, _node = parse_yaml(read_document_text(file), file)
    except DocumentError:
        return {}, {"*"}
    if not isinstance(data, dict):
        return {}, {"*"}
    kept: dict[str, Any] = {}
    bad: set[str] = set()
    for name, value in data.items():
        if name == "version" or name not in AppSettings.model_fields:
            continue
        try:
            AppSettings.model_validate({name: value})
        except ValidationError:
            bad.add(name)
            continue
        kept[name] = value
    return kept, bad


def save_settings(paths: AppPaths, settings: AppSettings) -> Path:
    """Validate, then write atomically; owner-only permissions when a password is stored."""
    AppSettings.model_validate(settings.model_dump())
    data = settings.model_dump(mode="json", exclude_defaults=True)
    secrets = False
    for name in ("llm_api_key", "civitai_api_key"):
        secret = getattr(settings, name).get_secret_value()
        if secret:
            data[name] = secret  # a JSON dump masks secrets; the file must keep it
            secrets = True
    data = {"version": SETTINGS_VERSION, **data}
    mode = 0o600 if settings.password or secrets else None
    return atomic_write_text(paths.settings_file, dump_yaml(data), mode=mode)
