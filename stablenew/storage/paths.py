"""Where StableNew keeps its files, from platformdirs (never hard-coded POSIX paths)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "StableNew"

# Tests and portable installs point every folder below one root with this variable.
HOME_ENV = "STABLENEW_HOME"


@dataclass(frozen=True)
class AppPaths:
    """The config, data and default output folders of one StableNew installation."""

    config_dir: Path
    data_dir: Path
    default_output_dir: Path

    @classmethod
    def default(cls) -> AppPaths:
        root = os.environ.get(HOME_ENV)
        if root:
            base = Path(root)
            return cls(base / "config", base / "data", base / "outputs")
        return cls(
            config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
            data_dir=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            default_output_dir=Path(platformdirs.user_pictures_dir()) / APP_NAME,
        )

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.yaml"

    @property
    def nodes_file(self) -> Path:
        return self.config_dir / "nodes.yaml"

    @property
    def presets_dir(self) -> Path:
        return self.config_dir / "presets"

    @property
    def profiles_dir(self) -> Path:
        return self.config_dir / "profiles"

    @property
    def packs_dir(self) -> Path:
        return self.data_dir / "packs"

    @property
    def database_file(self) -> Path:
        return self.data_dir / "stablenew.db"

    @property
    def thumbnails_dir(self) -> Path:
        return self.data_dir / "thumbnails"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"
